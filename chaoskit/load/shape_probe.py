"""Trying a custom LoadTestShape before a run: import it and ask its tick() in a child process.

A user's shape file is code: it may raise on import, call ``sys.exit``, loop forever, eat
memory, lack the class or answer ``tick()`` with strings. All of that happens in a child
Python with a time and memory limit, so ``validate`` (and ``run``, before it starts anything)
can name the real cause in one line instead of failing mid-run.

The child is ``python -m chaoskit.load.shape_probe CLASS BASE_DIR DURATION_S RESULT_FILE``;
it writes one JSON object to RESULT_FILE (stdout belongs to the user's code).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ShapeProbe", "ShapeProbeFailed", "probe_custom_shape"]

_MEMORY_LIMIT_BYTES = 2 * 1024**3  # address space; importing locust (gevent) needs a few 100 MB
_MAX_TICKS = 2000
_MIN_STEP_S = 0.25


@dataclass(frozen=True, slots=True)
class ShapeProbe:
    """What the probe saw: the most users ``tick()`` asked for, and when it returned None."""

    peak_users: float
    ended_at: float | None


class ShapeProbeFailed(Exception):
    """The shape cannot drive a run; the message says why in one line."""


def probe_custom_shape(
    class_spec: str, *, base_dir: Path, duration_s: float, timeout_s: float
) -> ShapeProbe:
    """Import ``class_spec`` and sample its tick() over ``duration_s`` in a child process."""
    with tempfile.TemporaryDirectory(prefix="chaoskit-shape-") as scratch:
        result_file = Path(scratch) / "result.json"
        argv = [
            sys.executable,
            "-m",
            "chaoskit.load.shape_probe",
            class_spec,
            str(base_dir),
            repr(duration_s),
            str(result_file),
        ]
        try:
            child = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=timeout_s,
                cwd=base_dir if base_dir.is_dir() else None,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ShapeProbeFailed(
                f"{class_spec} did not import and answer tick() within {timeout_s:g}s "
                "(an endless loop, or a slow import?)"
            ) from None
        try:
            answer: dict[str, Any] = json.loads(result_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            tail = child.stderr.decode("utf-8", "replace").strip().splitlines()
            last = tail[-1] if tail else f"exit status {child.returncode}"
            raise ShapeProbeFailed(
                f"trying {class_spec} ended without an answer ({last})"
            ) from None
    if "error" in answer:
        raise ShapeProbeFailed(str(answer["error"]))
    ended = answer.get("ended_at")
    return ShapeProbe(
        peak_users=float(answer["peak"]), ended_at=None if ended is None else float(ended)
    )


def _limit_memory() -> None:
    """Cap this (child) process's address space before any user code runs.

    Set by the child itself rather than through ``preexec_fn``, which is unsafe when the
    parent has threads (a pytest run, a dashboard).
    """
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = (
        _MEMORY_LIMIT_BYTES if hard == resource.RLIM_INFINITY else min(hard, _MEMORY_LIMIT_BYTES)
    )
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


# ---------------------------------------------------------------- the child


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _import_class(spec: str, base_dir: Path) -> Any:
    import importlib
    import importlib.util

    module_ref, _, name = spec.rpartition(":")
    try:
        if module_ref.endswith(".py"):
            path = Path(module_ref)
            path = path if path.is_absolute() else base_dir / path
            loader = importlib.util.spec_from_file_location(f"chaoskit_shape_{path.stem}", path)
            if loader is None or loader.loader is None:
                raise ShapeProbeFailed(f"cannot load {path} as Python")
            module = importlib.util.module_from_spec(loader)
            sys.modules[loader.name] = module
            loader.loader.exec_module(module)
        else:
            sys.path.insert(0, str(base_dir))
            module = importlib.import_module(module_ref)
    except ShapeProbeFailed:
        raise
    except SystemExit as exc:
        raise ShapeProbeFailed(f"importing {module_ref} calls sys.exit({exc.code!r})") from None
    except BaseException as exc:  # a user's file can fail in any way  # noqa: BLE001
        raise ShapeProbeFailed(f"importing {module_ref} raises {_short(exc)}") from None
    cls = getattr(module, name, None)
    if cls is None:
        raise ShapeProbeFailed(f"{module_ref} has no class {name!r}")
    if not isinstance(cls, type):
        raise ShapeProbeFailed(f"{module_ref}:{name} is not a class")
    if not callable(getattr(cls, "tick", None)):
        raise ShapeProbeFailed(f"{module_ref}:{name} has no tick() method (a LoadTestShape has)")
    return cls


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _sample(cls: Any, spec: str, duration_s: float) -> dict[str, Any]:
    try:
        shape = cls()
    except SystemExit as exc:
        raise ShapeProbeFailed(f"{spec}() calls sys.exit({exc.code!r})") from None
    except BaseException as exc:  # noqa: BLE001
        raise ShapeProbeFailed(f"{spec}() raises {_short(exc)}") from None
    step = max(duration_s / _MAX_TICKS, _MIN_STEP_S)
    peak, t = 0.0, 0.0
    while t < duration_s:
        shape.get_run_time = lambda t=t: t  # the engine asks tick() on chaoskit's clock
        try:
            result = shape.tick()
        except SystemExit as exc:
            raise ShapeProbeFailed(
                f"{spec}.tick() at {t:g}s calls sys.exit({exc.code!r})"
            ) from None
        except BaseException as exc:  # noqa: BLE001
            raise ShapeProbeFailed(f"{spec}.tick() at {t:g}s raises {_short(exc)}") from None
        if result is None:
            return {"peak": peak, "ended_at": t}
        if (
            not isinstance(result, tuple | list)
            or len(result) < 2
            or not _is_number(result[0])
            or not _is_number(result[1])
        ):
            shown = repr(result)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise ShapeProbeFailed(
                f"{spec}.tick() at {t:g}s returned {shown}: expected (users, spawn_rate) "
                "as numbers, or None to end"
            )
        if result[0] < 0 or result[1] <= 0:
            raise ShapeProbeFailed(
                f"{spec}.tick() at {t:g}s returned {tuple(result[:2])!r}: expected users >= 0 "
                "and spawn_rate > 0"
            )
        peak = max(peak, float(result[0]))
        t += step
    return {"peak": peak, "ended_at": None}


def main(argv: list[str]) -> int:
    """The child: probe argv's shape and write the answer as JSON."""
    spec, base_dir, duration, result_file = argv
    _limit_memory()
    try:
        answer = _sample(_import_class(spec, Path(base_dir)), spec, float(duration))
    except ShapeProbeFailed as exc:
        answer = {"error": str(exc)}
    except MemoryError:
        answer = {"error": f"{spec} ran out of memory (limit {_MEMORY_LIMIT_BYTES >> 20} MiB)"}
    Path(result_file).write_text(json.dumps(answer), encoding="utf-8")
    # Leave at once: a user's shape may have started threads that would keep us alive.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
