"""Reading what clients were told: the engine's outcome lines, fast path and fallback."""

from __future__ import annotations

import json
from pathlib import Path

from chaoskit.observe.outcomes import read_outcomes


def test_the_first_ok_time_of_each_order_is_kept_when_asked(tmp_path: Path) -> None:
    folder = tmp_path / "outcomes"
    folder.mkdir()
    lines = [
        # the engine's own layout (the fast path) ...
        '{"intent":"i1","order_id":"o1","told":"timeout","step":null,"status":null,"t":1.000}',
        '{"intent":"i1","order_id":"o1","told":"ok","step":null,"status":200,"t":4.500}',
        '{"intent":"i1","order_id":"o1","told":"ok","step":null,"status":200,"t":3.250}',
        # ... and any other JSON layout (json.loads)
        json.dumps({"t": 2.0, "told": "ok", "order_id": 'q"uote'}),
        '{"intent":"i3","order_id":"o3","told":"failed","step":"pay","status":502,"t":1.5}',
        '{"intent":"i4","order_id":"o4","told":"ok"}',  # no time: told ok, when unknown
        '{"intent":"i5","order_id":"o5","to',  # cut off by a kill
    ]
    (folder / "w0.jsonl").write_text("\n".join(lines) + "\n")
    told = read_outcomes(folder, started_at=1000.0)
    assert told.ok == {"o1", 'q"uote', "o4"}
    assert told.attempted == {"o1", 'q"uote', "o3", "o4"}
    assert told.ok_at == {"o1": 1003.25, 'q"uote': 1002.0}
    assert (told.records, told.bad_lines) == (6, 1)
    # Without the run's start the times are not kept (the stub audit does not need them).
    assert read_outcomes(folder).ok_at == {}


def test_no_folder_is_no_outcomes(tmp_path: Path) -> None:
    told = read_outcomes(tmp_path / "missing", started_at=0.0)
    assert (told.records, told.ok, told.ok_at) == (0, set(), {})
