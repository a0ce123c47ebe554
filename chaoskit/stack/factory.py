"""The one place that picks a stack backend for a target (backends import ``backend``;
only this module imports the backends, so there is no cycle between them)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import cast

from chaoskit.errors import InputError
from chaoskit.stack.backend import StackBackend
from chaoskit.stack.target import LocalTarget, Target

__all__ = ["open_backend"]

# Backends other than local live in their own modules and are imported only when used,
# so a missing optional dependency (docker SDK) never breaks `chaoskit up` for local.
_BACKEND_MODULES: dict[str, tuple[str, str]] = {
    "docker": ("chaoskit.stack.docker", "DockerStack"),
    "attach": ("chaoskit.stack.attach", "AttachStack"),
}


def open_backend(target: Target, *, state_dir: Path | None = None) -> StackBackend:
    """The backend for ``target``'s kind: LocalStack, DockerStack (lazy) or AttachStack (lazy)."""
    if isinstance(target, LocalTarget):
        from chaoskit.stack.local import LocalStack

        return LocalStack(target, state_dir=state_dir)
    module_name, class_name = _BACKEND_MODULES[target.kind]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise InputError(f"the {target.kind} backend is not available in this chaoskit") from exc
    backend_class = getattr(module, class_name)
    return cast(StackBackend, backend_class(target, state_dir=state_dir))
