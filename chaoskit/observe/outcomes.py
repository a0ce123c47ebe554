"""What clients were told: the load engine's ``outcomes/*.jsonl``, read for the audit.

One line per HTTP attempt, written by the engine as
``{"intent": .., "order_id": .., "told": "ok"|"failed"|"timeout", ..., "t": 12.345}``
(``t``: seconds since the run's start). Outcome files can hold millions of lines: they are
streamed, and only sets of order ids are kept (and, when asked, when each was first told ok).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from chaoskit.observe.ledger import ClientOutcomes

__all__ = ["read_outcomes"]

# The engine writes {"intent":..,"order_id":..,"told":..,..,"t":..}; these read a line ~8x
# faster than json.loads. Lines they do not fit (escapes, other layouts) go through json.loads.
_ORDER_ID = re.compile(r'"order_id"\s*:\s*"([^"\\]*)"')
_TOLD = re.compile(r'"told"\s*:\s*"(ok|failed|timeout)"')
_T = re.compile(r'"t"\s*:\s*(-?[0-9][0-9.eE+-]*)')


def read_outcomes(outcomes_dir: Path, *, started_at: float | None = None) -> ClientOutcomes:
    """Every outcome line of ``outcomes_dir``; ``started_at`` (the run's start, epoch s) also
    keeps when each order was first told ok (``ClientOutcomes.ok_at``)."""
    told = ClientOutcomes()
    if not outcomes_dir.is_dir():
        return told
    for path in sorted(outcomes_dir.glob("*.jsonl")):
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                _read_line(line, told, started_at)
    return told


def _read_line(line: str, told: ClientOutcomes, started_at: float | None) -> None:
    id_match = _ORDER_ID.search(line)
    told_match = _TOLD.search(line)
    t: object = None
    if id_match is not None and told_match is not None:
        order_id, verdict = id_match.group(1), told_match.group(1)
        if started_at is not None and verdict == "ok":
            t_match = _T.search(line)
            t = None if t_match is None else _float(t_match.group(1))
    else:
        if not line.strip():
            return
        try:
            record = json.loads(line)
            order_id, verdict = record["order_id"], record["told"]
        except (ValueError, KeyError, TypeError):
            told.bad_lines += 1
            return
        if not isinstance(order_id, str) or verdict not in ("ok", "failed", "timeout"):
            told.bad_lines += 1
            return
        t = record.get("t")
    told.records += 1
    told.attempted.add(order_id)
    if verdict == "ok":
        told.ok.add(order_id)
        if started_at is not None and isinstance(t, int | float) and not isinstance(t, bool):
            at = started_at + t
            told.ok_at[order_id] = min(at, told.ok_at.get(order_id, at))


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
