"""A small typed client for Toxiproxy's REST API, one instance per server, never hanging.

chaoskit talks to several Toxiproxy servers at once (a local one, a staging one), so the
address lives on the instance; every request has connect and read timeouts; every failure
becomes a chaoskit error: no answer -> ``TargetUnreachable``, a refusal -> ``ToxiproxyError``
carrying the server's own message and status.

Toxics chaoskit adds are named ``chaoskit.<run_id>.<fault>.<stream>`` so cleanup removes
only its own (see ``toxic_name`` and ``is_chaoskit_toxic``). The ``down`` fault is not a
toxic: it disables the proxy (``set_enabled(name, False)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, cast

import httpx

from chaoskit.errors import TargetUnreachable, ToxiproxyError

__all__ = [
    "TOXIC_PREFIX",
    "Proxy",
    "ProxySpec",
    "Stream",
    "Toxic",
    "ToxicName",
    "ToxiproxyClient",
    "is_chaoskit_toxic",
    "parse_toxic_name",
    "toxic_name",
]

Stream = Literal["upstream", "downstream"]
STREAMS: tuple[Stream, ...] = ("upstream", "downstream")
TOXIC_PREFIX = "chaoskit"


@dataclass(frozen=True, slots=True, kw_only=True)
class Toxic:
    """One toxic on a proxy: its type, direction, probability and type-specific attributes."""

    name: str
    type: str
    stream: Stream = "downstream"
    toxicity: float = 1.0
    attributes: Mapping[str, float | int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The toxic as Toxiproxy's API expects it."""
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": dict(self.attributes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Toxic:
        """A toxic from Toxiproxy's JSON."""
        stream = data.get("stream", "downstream")
        return cls(
            name=str(data["name"]),
            type=str(data["type"]),
            stream="upstream" if stream == "upstream" else "downstream",
            toxicity=float(data.get("toxicity", 1.0)),
            attributes=dict(data.get("attributes") or {}),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxySpec:
    """What a proxy should be: a name, where it listens and where it forwards to."""

    name: str
    listen: str  # "host:port"
    upstream: str  # "host:port"
    enabled: bool = True

    def to_json(self) -> dict[str, Any]:
        """The proxy as Toxiproxy's API expects it."""
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Proxy:
    """A proxy as the server reports it, with its active toxics."""

    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: tuple[Toxic, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Proxy:
        """A proxy from Toxiproxy's JSON."""
        return cls(
            name=str(data["name"]),
            listen=str(data["listen"]),
            upstream=str(data["upstream"]),
            enabled=bool(data.get("enabled", True)),
            toxics=tuple(Toxic.from_json(t) for t in data.get("toxics") or ()),
        )


@dataclass(frozen=True, slots=True)
class ToxicName:
    """The parts of a chaoskit toxic name."""

    run_id: str
    fault: str
    stream: Stream


def toxic_name(run_id: str, fault_name: str, stream: Stream) -> str:
    """The name chaoskit gives a toxic: ``chaoskit.<run_id>.<fault>.<stream>``."""
    if not run_id or "." in run_id:
        raise ValueError(f"run_id must be non-empty and contain no '.', got {run_id!r}")
    if not fault_name:
        raise ValueError("fault_name must be non-empty")
    if stream not in STREAMS:
        raise ValueError(f"stream must be upstream or downstream, got {stream!r}")
    return f"{TOXIC_PREFIX}.{run_id}.{fault_name}.{stream}"


def parse_toxic_name(name: str) -> ToxicName | None:
    """The parts of a chaoskit toxic name, or None for a name chaoskit did not make."""
    prefix, sep, rest = name.partition(".")
    if prefix != TOXIC_PREFIX or not sep:
        return None
    run_id, sep, rest = rest.partition(".")
    # The fault name may itself contain dots; the stream is always the last part.
    fault, sep2, stream = rest.rpartition(".")
    if not run_id or not sep or not sep2 or not fault or stream not in STREAMS:
        return None
    return ToxicName(run_id, fault, stream)


def is_chaoskit_toxic(name: str, run_id: str | None = None) -> bool:
    """True when chaoskit made this toxic (for ``run_id``, when given)."""
    parsed = parse_toxic_name(name)
    return parsed is not None and (run_id is None or parsed.run_id == run_id)


class ToxiproxyClient:
    """Talks to one Toxiproxy server; safe to use from one thread at a time."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
        # trust_env=False: a proxy from the environment must never sit between us and 127.0.0.1.
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout, transport=transport, trust_env=False
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> ToxiproxyClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ToxiproxyClient({self.url!r})"

    # -- server ------------------------------------------------------------------------------

    def version(self) -> str:
        """The server's version ("git" for a ``go install``ed server)."""
        response = self._request("GET", "/version")
        try:
            data = response.json()
        except ValueError:
            return response.text.strip()
        if isinstance(data, dict):
            return str(data.get("version", ""))
        return str(data)

    def reset(self) -> None:
        """Enable every proxy and remove every toxic on the server (everyone's, not only ours)."""
        self._request("POST", "/reset")

    # -- proxies -----------------------------------------------------------------------------

    def proxies(self) -> dict[str, Proxy]:
        """Every proxy on the server, by name."""
        data = self._json("GET", "/proxies")
        return {name: Proxy.from_json(p) for name, p in cast(dict[str, Any], data).items()}

    def proxy(self, name: str) -> Proxy:
        """One proxy with its toxics; ``ToxiproxyError`` (404) when there is none."""
        return Proxy.from_json(self._json("GET", f"/proxies/{name}"))

    def populate(self, specs: Iterable[ProxySpec]) -> list[Proxy]:
        """Create or replace the given proxies in one call; others are left alone."""
        data = self._json("POST", "/populate", json=[s.to_json() for s in specs])
        # Toxiproxy >= 2.1 wraps the list in {"proxies": [...]}; older servers return the list.
        items = data.get("proxies", []) if isinstance(data, dict) else data
        return [Proxy.from_json(p) for p in items]

    def create(self, spec: ProxySpec) -> Proxy:
        """Create one proxy; ``ToxiproxyError`` (409) when the name is taken."""
        return Proxy.from_json(self._json("POST", "/proxies", json=spec.to_json()))

    def delete(self, name: str) -> None:
        """Delete one proxy and its toxics."""
        self._request("DELETE", f"/proxies/{name}")

    def set_enabled(self, name: str, enabled: bool) -> Proxy:
        """Enable or disable a proxy; a disabled proxy refuses and drops every connection."""
        return Proxy.from_json(self._json("POST", f"/proxies/{name}", json={"enabled": enabled}))

    # -- toxics ------------------------------------------------------------------------------

    def toxics(self, proxy: str) -> list[Toxic]:
        """The active toxics on a proxy."""
        data = self._json("GET", f"/proxies/{proxy}/toxics")
        return [Toxic.from_json(t) for t in data or ()]

    def add_toxic(self, proxy: str, toxic: Toxic) -> Toxic:
        """Add a toxic; ``ToxiproxyError`` (409) when one with its name exists."""
        return Toxic.from_json(self._json("POST", f"/proxies/{proxy}/toxics", json=toxic.to_json()))

    def update_toxic(
        self,
        proxy: str,
        name: str,
        attributes: Mapping[str, float | int] | None = None,
        *,
        toxicity: float | None = None,
    ) -> Toxic:
        """Change an active toxic's attributes or toxicity in place."""
        body: dict[str, Any] = {}
        if attributes is not None:
            body["attributes"] = dict(attributes)
        if toxicity is not None:
            body["toxicity"] = toxicity
        return Toxic.from_json(self._json("POST", f"/proxies/{proxy}/toxics/{name}", json=body))

    def remove_toxic(self, proxy: str, name: str, *, missing_ok: bool = False) -> None:
        """Remove an active toxic; a missing one is a 404 ``ToxiproxyError`` unless missing_ok."""
        try:
            self._request("DELETE", f"/proxies/{proxy}/toxics/{name}")
        except ToxiproxyError as exc:
            if not (missing_ok and exc.status == 404):
                raise

    # -- plumbing ----------------------------------------------------------------------------

    def _json(self, method: str, path: str, *, json: Any = None) -> Any:
        response = self._request(method, path, json=json)
        try:
            return response.json()
        except ValueError as exc:
            raise ToxiproxyError(
                f"Toxiproxy at {self.url}: {method} {path} answered {response.status_code} "
                f"with a body that is not JSON: {response.text[:200]!r}",
                status=response.status_code,
            ) from exc

    def _request(self, method: str, path: str, *, json: Any = None) -> httpx.Response:
        try:
            response = self._http.request(method, path, json=json)
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise TargetUnreachable(f"Toxiproxy at {self.url} does not answer: {reason}") from exc
        if response.status_code >= 400:
            raise ToxiproxyError(
                f"Toxiproxy at {self.url}: {method} {path} failed "
                f"({response.status_code}): {_server_message(response)}",
                status=response.status_code,
            )
        return response


def _server_message(response: httpx.Response) -> str:
    """The server's own error text: ``{"error": "...", "status": N}`` or the raw body."""
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:200] if text else response.reason_phrase
    if isinstance(data, dict) and "error" in data:
        return str(data["error"])
    return str(data)[:200]
