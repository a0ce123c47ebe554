"""Connecting to the Docker engine, with its failures told as one actionable line."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from typing import Any

import docker
import docker.errors
import requests

from chaoskit.errors import DockerUnavailable

__all__ = [
    "LABEL_HEALTH",
    "LABEL_RUN",
    "LABEL_SERVICE",
    "LABEL_STACK",
    "ClientFactory",
    "connect",
    "engine_errors",
    "explain",
    "hang_up",
    "is_missing",
]

# Labels on everything chaoskit creates in the engine; `down` and `cleanup` select by them.
LABEL_STACK = "chaoskit.stack"
LABEL_RUN = "chaoskit.run"
LABEL_SERVICE = "chaoskit.service"
# Where a service container answers /healthz from the host (for recovery checks).
LABEL_HEALTH = "chaoskit.health"

ClientFactory = Callable[[], Any]  # returns a docker.DockerClient (the SDK is untyped)


def connect() -> Any:
    """A docker.DockerClient that has answered a ping; DockerUnavailable otherwise."""
    _probe_socket()
    client = None
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        hang_up(client)
        raise explain(exc) from exc
    return client


def _probe_socket() -> None:
    """Fail fast, with a plain socket, when the engine's unix socket is absent or refuses us.

    The SDK leaks the socket of a failed first contact (while detecting the API version).
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(5.0)
        try:
            probe.connect(host.removeprefix("unix://"))
        except OSError as exc:
            raise explain(exc) from exc


def explain(exc: BaseException) -> DockerUnavailable:
    """Turn an SDK connection failure into DockerUnavailable saying what to do."""
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    text = str(exc)
    if "Permission denied" in text or "PermissionError" in text:
        return DockerUnavailable(
            f"permission denied on the Docker socket ({where}): add your user to the "
            "'docker' group (then log in again) or run as root"
        )
    return DockerUnavailable(
        f"no Docker engine answers at {where}: start one (`make setup-docker` or "
        "`sudo dockerd &`) and try again"
    )


def hang_up(client: Any) -> None:
    """Close the client's connections (it reconnects on its next call)."""
    if client is not None:
        with contextlib.suppress(Exception):  # closing is best effort by nature
            client.close()


def is_missing(exc: BaseException) -> bool:
    """True when ``exc`` is the SDK's 404 for a container, image, network or volume."""
    return isinstance(exc, docker.errors.NotFound)


def engine_errors() -> tuple[type[BaseException], ...]:
    """The SDK's exception types, for ``except`` clauses at the boundary."""
    # requests errors escape the SDK when the engine goes away mid-call.
    return (docker.errors.DockerException, requests.exceptions.RequestException)
