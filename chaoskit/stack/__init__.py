"""Stacks chaoskit runs against: target files, backends (local, docker, attach), endpoints."""

from chaoskit.stack.backend import (
    ProgressCallback,
    ServiceStatus,
    StackBackend,
    StackStatus,
    StartupUpdate,
    open_backend,
)
from chaoskit.stack.endpoints import DEPENDENCIES, SERVICES, ProxyRef, StackEndpoints
from chaoskit.stack.local import LocalStack, find_toxiproxy, write_stack_config
from chaoskit.stack.state import ProcessRecord, StackState, chaoskit_home, default_state_dir
from chaoskit.stack.target import (
    AttachTarget,
    DockerImageSettings,
    DockerTarget,
    LocalTarget,
    PortLayout,
    StackSettings,
    Target,
    load_target,
    parse_target,
    port_layout,
    with_kind,
)

__all__ = [
    "DEPENDENCIES",
    "SERVICES",
    "AttachTarget",
    "DockerImageSettings",
    "DockerTarget",
    "LocalStack",
    "LocalTarget",
    "PortLayout",
    "ProcessRecord",
    "ProgressCallback",
    "ProxyRef",
    "ServiceStatus",
    "StackBackend",
    "StackEndpoints",
    "StackSettings",
    "StackState",
    "StackStatus",
    "StartupUpdate",
    "Target",
    "chaoskit_home",
    "default_state_dir",
    "find_toxiproxy",
    "load_target",
    "open_backend",
    "parse_target",
    "port_layout",
    "with_kind",
    "write_stack_config",
]
