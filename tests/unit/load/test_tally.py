"""The tally's first-try counters: what first_try_failure_rate is computed from."""

from __future__ import annotations

from chaoskit.load.tally import Tally, merge_deltas


def test_first_tries_count_live_and_by_start_second_and_merge() -> None:
    tally = Tally()
    tally.first_try(ok=False, started_t=3.7)
    tally.first_try(ok=True, started_t=3.2)
    tally.first_try(ok=False)  # no start time: live counts only
    delta = tally.take()
    assert (delta["first_tries"], delta["first_try_failed"]) == (3, 2)
    assert delta["by_start"] == {"3:t": 2, "3:1": 1}
    assert tally.take()["first_tries"] == 0
    merged = merge_deltas([delta, delta])
    assert (merged["first_tries"], merged["first_try_failed"]) == (6, 4)
    assert merged["by_start"] == {"3:t": 4, "3:1": 2}
