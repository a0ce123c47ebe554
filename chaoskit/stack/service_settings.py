"""A target file's stub-service ``settings``, checked by the rules the services themselves apply.

The stub stack (``targets/orderstack``) owns its settings table (``orderstack.settings``):
names, types, ranges, choices. Reading that same table here means a target file with
``riders: -5`` or an unknown key is refused before Toxiproxy or any service starts, with the
message the service would have given, and no second copy of the rules to drift.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["SettingsProblem", "check_service_settings"]

_ORDERSTACK_SETTINGS = (
    Path(__file__).resolve().parent.parent.parent / "targets" / "orderstack" / "orderstack"
) / "settings.py"


class SettingsProblem(ValueError):
    """One refused setting: ``message`` starts with its dotted name, ``loc`` is that name."""

    def __init__(self, message: str) -> None:
        self.message = message
        name = message.split(":", 1)[0].strip()
        self.loc: tuple[str, ...] = tuple(name.split(".")) if name else ()
        self.unknown_key = message.endswith("got an unknown key")
        super().__init__(message)


@cache
def _settings_module() -> ModuleType | None:
    """orderstack's settings module: installed, or from this checkout; None if neither."""
    try:
        return importlib.import_module("orderstack.settings")
    except ImportError:
        pass
    if not _ORDERSTACK_SETTINGS.is_file():
        return None
    spec = importlib.util.spec_from_file_location(
        "_chaoskit_orderstack_settings", _ORDERSTACK_SETTINGS
    )
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def check_service_settings(service: str, values: dict[str, Any]) -> None:
    """Raise SettingsProblem if ``service`` would refuse ``values`` as its /admin settings.

    Without the orderstack package (an installed chaoskit, no checkout) the services are
    left to judge their own settings when they start.
    """
    module = _settings_module()
    if module is None:
        return
    types: dict[str, Any] = module.SETTINGS_TYPES
    settings_type = types.get(service)
    if settings_type is None:
        return
    try:
        module.apply_patch(settings_type(), values)
    except module.SettingsError as exc:
        raise SettingsProblem(str(exc)) from None
