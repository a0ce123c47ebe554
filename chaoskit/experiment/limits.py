"""What an experiment may ask for: one table, checked before anything starts.

Far above any real rehearsal, far below what would hurt the machine running it. The file
limits (size, depth, aliases) are in ``chaoskit._yaml``; these bound what a valid file
resolves to.
"""

from __future__ import annotations

__all__ = [
    "MAX_PEAK_RATE",
    "MAX_PEAK_USERS",
    "MAX_REPLAY_BYTES",
    "MAX_RUN_S",
    "MAX_SEGMENTS",
    "SHAPE_PROBE_TIMEOUT_S",
]

MAX_RUN_S = 24 * 3600.0
"""The longest load shape: a rehearsal is hours, not days (an 11-year shape is a typo)."""

MAX_SEGMENTS = 10_000
"""The most pieces a shape resolves to: steps, stages, milestones, replay rows."""

MAX_REPLAY_BYTES = 4 * 1024 * 1024
"""The largest replay CSV read."""

MAX_PEAK_RATE = 100_000.0
"""The highest scheduled arrival rate (open model), arrivals/s, whatever the machine."""

MAX_PEAK_USERS = 100_000.0
"""The most concurrent users (closed model), whatever the machine."""

SHAPE_PROBE_TIMEOUT_S = 20.0
"""How long `validate` lets a custom LoadTestShape import and answer tick() before refusing."""
