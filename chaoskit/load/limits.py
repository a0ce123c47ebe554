"""Limits that follow from the machine, checked before anything starts (exit 2, one line).

Each local load worker is one Locust process: one core's worth of scheduling at best, and
some 60-100 MB of memory. More workers than the machine can hold do not add load, they
swap or get OOM-killed and leave a run without data; an arrival rate far beyond what the
load processes can schedule runs with no data at all. Both are refused up front.
"""

from __future__ import annotations

import math
import os

from chaoskit.errors import InputError

__all__ = [
    "MAX_RATE_PER_PROCESS",
    "MAX_USERS_PER_PROCESS",
    "WORKER_MEMORY_MB",
    "check_load_limits",
    "max_local_workers",
]

# What one Locust process can schedule, generously: the stub chain tops out near 1,000
# orders/s on two cores, so ten times that is never a rehearsal, only a machine in trouble.
MAX_RATE_PER_PROCESS = 10_000.0
MAX_USERS_PER_PROCESS = 10_000.0
WORKER_MEMORY_MB = 100


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _available_mb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def max_local_workers() -> int:
    """How many local worker processes this machine can hold: 2 per core, memory allowing."""
    by_cores = 2 * _cores()
    memory = _available_mb()
    if memory is None:
        return by_cores
    return max(1, min(by_cores, int(memory // WORKER_MEMORY_MB)))


def check_load_limits(
    *, workers: int, expect_workers: int, model: str, peak: float, unit: str
) -> None:
    """:class:`InputError` when the run asks more than this machine (or its workers) can do."""
    if workers > 0:
        limit = max_local_workers()
        if workers > limit:
            raise InputError(
                f"--workers: at most {limit} local load workers on this machine "
                f"({_cores()} cores, 2 per core, ~{WORKER_MEMORY_MB} MB each), got {workers}"
            )
    if math.isnan(peak) or peak <= 0:
        return  # a custom shape's peak is unknown until it runs
    processes = max(1, expect_workers or workers)
    per_process = MAX_RATE_PER_PROCESS if model == "open" else MAX_USERS_PER_PROCESS
    if peak > per_process * processes:
        local = max_local_workers()
        if peak <= per_process * local:
            how = f"--workers {math.ceil(peak / per_process)} (this machine holds {local})"
        else:
            how = f"--expect-workers {math.ceil(peak / per_process)} on other machines"
        raise InputError(
            f"load: peak {peak:,.0f} {unit} is more than {processes} load process"
            f"{'es' if processes > 1 else ''} can schedule (at most {per_process:,.0f} {unit} "
            f"each); lower the shape or use {how}"
        )
