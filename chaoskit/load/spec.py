"""What the runner tells the load engine process: ``LoadSpec``, written as JSON, read back.

This module never imports locust (importing it gevent-patches the process); the runner
imports it freely.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chaoskit.errors import InputError, SafetyRefusal
from chaoskit.experiment.models import Behaviour
from chaoskit.journey.models import JourneyConfig

__all__ = [
    "LOCAL_HOSTS",
    "Caps",
    "LoadSpec",
    "check_gateway_host",
    "read_spec",
    "write_spec",
]

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Caps(_Model):
    """Upper bounds the engine clamps the shape to (attach targets pass theirs)."""

    max_users: int | None = Field(default=None, ge=0)
    max_rate: float | None = Field(default=None, ge=0)


class LoadSpec(_Model):
    """Everything one engine run needs; see the contract "Load engine <-> runner protocol"."""

    run_id: str
    run_dir: str
    gateway_url: str
    headers: dict[str, str] = Field(default_factory=dict)
    t0: float
    duration_s: float = Field(gt=0)
    seed: int = 0
    model: Literal["open", "closed"] = "open"
    shape: dict[str, Any]
    behaviour: Behaviour = Field(default_factory=Behaviour)
    workers: int = Field(default=0, ge=0)
    master_port: int = Field(default=0, ge=0, le=65535)
    max_inflight: int = Field(default=2000, ge=1)
    caps: Caps = Field(default_factory=Caps)
    # Additions beyond the contract's list, all optional:
    base_dir: str | None = None  # where relative shape paths (replay CSV, custom class) live
    allowed_hosts: list[str] = Field(default_factory=list)  # gateway hosts besides localhost
    expect_workers: bool = False  # workers join from elsewhere; the master spawns none
    # Where the master listens: loopback unless workers on other machines must reach it.
    master_bind: str = "127.0.0.1"
    expect_workers_timeout_s: float = Field(default=60.0, gt=0)
    stop_on_worker_loss: bool = False
    arrivals: Literal["uniform", "poisson"] = "uniform"  # open model spacing
    orders_path: str = "/orders"
    # text: {"text": "help me buy ..."}; fields: {item, spec, deadline_min, place} (attach targets
    # whose order API takes structured intents).
    intent_format: Literal["text", "fields"] = "text"
    # What one attempt is; None: the built-in agent-buyer on orders_path / intent_format.
    # A Python journey's file is absolute here (the runner resolves it).
    journey: JourneyConfig | None = None


def check_gateway_host(spec: LoadSpec) -> None:
    """Refuse a gateway outside localhost unless the spec's allow-list names its host."""
    parts = urlsplit(spec.gateway_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"gateway_url: expected an http(s) URL, got {spec.gateway_url!r}")
    host = parts.hostname
    if host not in LOCAL_HOSTS and host not in spec.allowed_hosts:
        raise SafetyRefusal(
            f"gateway_url host {host!r} is not 127.0.0.1/localhost and not in allowed_hosts"
        )


def write_spec(spec: LoadSpec, path: Path | str) -> Path:
    """Write ``spec`` as JSON to ``path`` (parents created); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(spec.model_dump_json(indent=2), encoding="utf-8")
    return target


def read_spec(path: Path | str) -> LoadSpec:
    """Read a spec file; a missing, unreadable or invalid file raises ``InputError``."""
    source = Path(path)
    try:
        raw = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{source}: cannot read load spec: {exc}") from exc
    try:
        return LoadSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise InputError(f"{source}: {where}: {first['msg']}") from exc
