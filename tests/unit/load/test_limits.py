"""Machine limits: refused before anything starts, with one line that says why."""

from __future__ import annotations

import math

import pytest

from chaoskit.errors import InputError
from chaoskit.load.limits import MAX_RATE_PER_PROCESS, check_load_limits, max_local_workers


def test_workers_beyond_the_machine_are_refused() -> None:
    limit = max_local_workers()
    check_load_limits(workers=limit, expect_workers=0, model="open", peak=10, unit="arrivals/s")
    with pytest.raises(InputError, match=rf"--workers: at most {limit} .* got {limit + 1}"):
        check_load_limits(
            workers=limit + 1, expect_workers=0, model="open", peak=10, unit="arrivals/s"
        )


def test_a_rate_no_load_process_can_schedule_is_refused() -> None:
    with pytest.raises(InputError, match="peak 1,000,000,000,000 arrivals/s is more than 1"):
        check_load_limits(workers=0, expect_workers=0, model="open", peak=1e12, unit="arrivals/s")
    # Spread over remote workers, the same peak per process is fine.
    check_load_limits(
        workers=0,
        expect_workers=4,
        model="open",
        peak=4 * MAX_RATE_PER_PROCESS,
        unit="arrivals/s",
    )


def test_an_unknown_peak_is_left_to_the_run() -> None:
    check_load_limits(workers=0, expect_workers=0, model="open", peak=math.nan, unit="arrivals/s")
