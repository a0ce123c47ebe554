"""stack.json: where each service listens, how the gateway reaches each dependency, settings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .settings import SETTINGS_TYPES, ServiceSettings, SettingsError, apply_patch

__all__ = ["DEPENDENCIES", "SERVICES", "ConfigError", "StackConfig", "load_config"]

# The order chain in call order (as chaoskit.stack.endpoints; this package imports no chaoskit).
DEPENDENCIES: tuple[str, ...] = (
    "inventory",
    "lbs",
    "eligibility",
    "orders",
    "store",
    "rider",
    "coupon",
)
SERVICES: tuple[str, ...] = ("gateway", *DEPENDENCIES)


class ConfigError(ValueError):
    """stack.json is missing, unreadable or invalid; the message is one line."""


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    """A parsed, validated stack.json."""

    name: str
    host: str
    ports: dict[str, int]
    upstreams: dict[str, str]
    data_dir: Path
    seed: int
    settings: dict[str, ServiceSettings]  # every service, defaults filled in


def _want(cond: bool, where: str, expected: str, value: object) -> None:
    if not cond:
        raise ConfigError(f"{where}: expected {expected}, got {json.dumps(value, default=repr)}")


def parse_config(raw: Any, *, service: str | None = None) -> StackConfig:
    """Validate a stack.json document; `service` names the one that must have a port."""
    _want(isinstance(raw, dict), "config", "a JSON object", raw)
    name = raw.get("name", "local")
    _want(isinstance(name, str), "name", "a string", name)
    host = raw.get("host", "127.0.0.1")
    _want(isinstance(host, str) and bool(host), "host", "a bind address", host)

    ports = raw.get("ports", {})
    _want(isinstance(ports, dict), "ports", "an object of service -> port", ports)
    for key, port in ports.items():
        _want(key in SERVICES, f"ports.{key}", f"a service ({', '.join(SERVICES)})", key)
        ok = isinstance(port, int) and not isinstance(port, bool) and 0 <= port <= 65535
        _want(ok, f"ports.{key}", "a port 0..65535", port)
    if service is not None:
        _want(service in ports, f"ports.{service}", "a port for this service", None)

    upstreams = raw.get("upstreams", {})
    _want(isinstance(upstreams, dict), "upstreams", "an object of dependency -> URL", upstreams)
    for key, url in upstreams.items():
        deps = ", ".join(DEPENDENCIES)
        _want(key in DEPENDENCIES, f"upstreams.{key}", f"a dependency ({deps})", key)
        ok = isinstance(url, str) and url.startswith(("http://", "https://"))
        _want(ok, f"upstreams.{key}", "an http:// URL", url)
    if service == "gateway":
        for dep in DEPENDENCIES:
            _want(dep in upstreams, f"upstreams.{dep}", "the gateway's URL for it", None)

    data_dir = raw.get("data_dir", ".")
    _want(isinstance(data_dir, str) and bool(data_dir), "data_dir", "a directory path", data_dir)
    seed = raw.get("seed", 0)
    _want(isinstance(seed, int) and not isinstance(seed, bool), "seed", "an integer", seed)

    given = raw.get("settings", {})
    _want(isinstance(given, dict), "settings", "an object of service -> settings", given)
    settings: dict[str, ServiceSettings] = {}
    for svc, cls in SETTINGS_TYPES.items():
        try:
            settings[svc] = apply_patch(cls(), given.get(svc, {}), prefix=f"settings.{svc}.")
        except SettingsError as exc:
            raise ConfigError(str(exc)) from exc
    for key in given:
        _want(key in SETTINGS_TYPES, f"settings.{key}", f"a service ({', '.join(SERVICES)})", key)

    return StackConfig(
        name=name,
        host=host,
        ports={k: int(v) for k, v in ports.items()},
        upstreams={k: str(v).rstrip("/") for k, v in upstreams.items()},
        data_dir=Path(data_dir),
        seed=seed,
        settings=settings,
    )


def load_config(path: Path, *, service: str | None = None) -> StackConfig:
    """Read and validate stack.json from `path`."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from exc
    return parse_config(raw, service=service)
