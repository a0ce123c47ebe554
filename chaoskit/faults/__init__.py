"""Faults: the Toxiproxy client, domain faults through /admin, the timeline applying them."""

from chaoskit.faults.toxiproxy import (
    Proxy,
    ProxySpec,
    Toxic,
    ToxicName,
    ToxiproxyClient,
    is_chaoskit_toxic,
    parse_toxic_name,
    toxic_name,
)

__all__ = [
    "Proxy",
    "ProxySpec",
    "Toxic",
    "ToxicName",
    "ToxiproxyClient",
    "is_chaoskit_toxic",
    "parse_toxic_name",
    "toxic_name",
]
