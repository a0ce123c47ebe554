"""The team's ledger: what its records say about this run, reconciled like the stub's.

``TeamLedgerReader`` reads a target's ``audit.ledger`` (the orders, and where the target names
them: the credits, the orders entitled to a credit, the stock) into ``LedgerRecords``;
``reconcile_team_ledger`` turns them into the audit's typed records and runs the one
reconciliation (``chaoskit.observe.ledger.reconcile``). ``audit_gaps`` is the one table of
what cannot be judged without which key: the audit's notes and the run's review read it.
Reading a source (HTTP, SQL, typed values) is ``chaoskit.observe.ledger_sources``.

``check_ledger`` is the preflight: before any load, each source is read once for the run's id
(no rows yet), so a wrong column, DSN, password or URL stops the run before it starts instead
of after the whole surge; ``ledger_checks`` says what it will check, for the review.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaoskit.errors import InputError
from chaoskit.journey.paths import parse_json_path, select
from chaoskit.observe.audit import AuditResult
from chaoskit.observe.ledger import (
    CreditRecord,
    InvariantResult,
    InventoryRecord,
    OrderRecord,
    reconcile,
)
from chaoskit.observe.ledger_sources import (
    count,
    dsn_host,
    epoch,
    expand,
    fetch_json,
    fill,
    order_id,
    query_rows,
    sql_where,
    url_where,
)
from chaoskit.observe.metrics import AUDIT_METRICS
from chaoskit.observe.outcomes import read_outcomes
from chaoskit.stack.target import (
    CreditsLedger,
    HttpLedger,
    LedgerSource,
    SqlLedger,
    StockLedger,
    TeamLedger,
    env_refs,
)

__all__ = [
    "CreditRow",
    "LedgerRecords",
    "TeamLedgerReader",
    "audit_gaps",
    "check_ledger",
    "ledger_checks",
    "ledger_hosts",
    "planned_gaps",
    "read_credits",
    "read_order_ids",
    "read_stock",
    "reconcile_team_ledger",
]

_STOCK_COLUMNS = ("item", "stock", "reserved")
# A key of the target file, as a path: ("audit", "ledger", "credits", "sql", "query").
KeyPath = tuple[str, ...]
ErrorAt = Callable[[KeyPath, str], InputError]
NO_GRANTS = (
    "a team's ledger gives no per-buyer grants (who was granted a free order, what was given back)"
)


@dataclass(frozen=True, slots=True)
class CreditRow:
    """One credit the team's ledger holds."""

    order_id: str
    credited_at: float | None = None
    """When it landed (epoch s); None: the ledger gives no credit times."""


@dataclass(frozen=True, slots=True)
class LedgerRecords:
    """What the team's ledger holds for this run; None where the target names no ledger."""

    order_ids: tuple[str, ...]
    credits: tuple[CreditRow, ...] | None = None
    """One per credit row."""
    credit_times: bool = False
    """The credits ledger says when each credit landed."""
    entitled: frozenset[str] | None = None
    """The orders owed a coupon credit."""
    stock: tuple[InventoryRecord, ...] | None = None
    """One per item."""
    sources: tuple[str, ...] = ()
    """Where they came from (URL without its query, postgresql://host)."""


# ---- what is judged: one table --------------------------------------------------------------


def audit_gaps(
    *,
    credits: bool,
    credit_times: bool | None,
    entitled: bool,
    stock: bool,
    credit_slo: bool,
    told_times: bool = True,
) -> dict[str, str]:
    """Invariant -> why a team's ledger cannot judge it; the rest are judged.

    ``credit_times`` None: known only when the credits query has run (a ``credited_at``
    column or not), so late_credits is not listed here. ``told_times``: the run's start is
    known, so when each client was told ok is too.
    """
    gaps = {"lost_entitlements": NO_GRANTS}
    no_credits = "the target names no credits ledger (audit.ledger.credits)"
    if not credits:
        gaps.update(double_credits=no_credits, missing_credits=no_credits)
        gaps["late_credits"] = no_credits
    else:
        if not entitled:
            gaps["missing_credits"] = (
                "the target does not say which orders are owed a credit (audit.ledger.entitled)"
            )
        if credit_times is False:
            gaps["late_credits"] = (
                "the credits ledger gives no credit times (credited_at in audit.ledger.credits)"
            )
        elif not credit_slo:
            gaps["late_credits"] = "no audit.credit_slo in the experiment"
        elif not told_times:
            gaps["late_credits"] = "the run's start is unknown, so when clients were told ok is"
    if not stock:
        gaps["oversold"] = "the target names no stock ledger (audit.ledger.stock)"
    return gaps


def planned_gaps(ledger: TeamLedger, *, credit_slo: bool) -> tuple[dict[str, str], str | None]:
    """``audit_gaps`` of a target's ledger before it is read, and what is known only then."""
    credit_times: bool | None = None
    later = None
    if ledger.credits is not None and ledger.credits.http is not None:
        http = ledger.credits.http
        credit_times = http.rows is not None and http.row_fields.credited_at is not None
    elif ledger.credits is not None and credit_slo:
        later = "late_credits: judged if audit.ledger.credits.sql returns a credited_at column"
    gaps = audit_gaps(
        credits=ledger.credits is not None,
        credit_times=credit_times,
        entitled=ledger.entitled is not None,
        stock=ledger.stock is not None,
        credit_slo=credit_slo,
    )
    return gaps, later


# ---- reading ----------------------------------------------------------------------------------


def read_order_ids(
    source: LedgerSource, *, role: str, run_id: str, environ: Mapping[str, str]
) -> tuple[list[str], list[str]]:
    """Order ids from a source's HTTP export and/or SQL query (first column), and where from."""
    ids: list[str] = []
    where: list[str] = []
    if source.http is not None:
        found, url = _http_ids(source.http, role=role, run_id=run_id, environ=environ)
        ids.extend(found)
        where.append(url)
    if source.sql is not None:
        found, database = _sql_ids(source.sql, role=role, run_id=run_id, environ=environ)
        ids.extend(found)
        where.append(database)
    return ids, where


def _http_ids(
    http: HttpLedger, *, role: str, run_id: str, environ: Mapping[str, str]
) -> tuple[list[str], str]:
    document, url = fetch_json(http, run_id=run_id, environ=environ)
    what = f"{role}.http.order_ids: {http.order_ids} in {url}"
    ids = [order_id(v, what) for v in select(document, parse_json_path(http.order_ids))]
    return ids, url_where(http.url, run_id)


def _sql_ids(
    sql: SqlLedger, *, role: str, run_id: str, environ: Mapping[str, str]
) -> tuple[list[str], str]:
    columns, rows = query_rows(sql, role=f"{role}.sql", run_id=run_id, environ=environ)
    if not columns:
        raise InputError(
            f"{role}.sql: the query returns no column; expected the order ids in its first column"
        )
    ids = [str(row[0]) for row in rows if row and row[0] is not None]
    return ids, sql_where(sql, environ)


def read_credits(
    source: CreditsLedger, *, run_id: str, environ: Mapping[str, str]
) -> tuple[list[CreditRow], bool, str]:
    """Every credit row, whether they carry times, and where they came from."""
    role = "audit.ledger.credits"
    if source.http is not None:
        http = source.http
        document, url = fetch_json(http, run_id=run_id, environ=environ)
        where = url_where(http.url, run_id)
        if http.rows is None:  # the list form: one order id per credit
            path = http.order_ids or "$[*]"
            what = f"{role}.http.order_ids: {path} in {url}"
            found = select(document, parse_json_path(path))
            return [CreditRow(order_id(v, what)) for v in found], False, where
        fields = http.row_fields
        paths = {"order_id": fields.order_id}
        if fields.credited_at is not None:
            paths["credited_at"] = fields.credited_at
        credits = [
            CreditRow(
                order_id(row["order_id"], at("order_id")),
                None if "credited_at" not in row else epoch(row["credited_at"], at("credited_at")),
            )
            for row, at in _rows(document, http.rows, paths, f"{role}.http", url)
        ]
        return credits, "credited_at" in paths, where
    assert source.sql is not None  # the model takes exactly one
    sql = source.sql
    columns, rows = query_rows(sql, role=f"{role}.sql", run_id=run_id, environ=environ)
    where = sql_where(sql, environ)
    if "order_id" in columns:
        id_at = columns.index("order_id")
    elif len(columns) == 1:
        id_at = 0  # one column: the order ids (the list form)
    else:
        raise InputError(
            f"{role}.sql: the query returns columns {', '.join(columns)}; expected an order_id "
            "column (and optionally credited_at)"
        )
    time_at = columns.index("credited_at") if "credited_at" in columns else None
    credits = []
    for index, row in enumerate(rows):
        what = f"{role}.sql: row {index + 1} from {where}"
        credited = None if time_at is None else epoch(row[time_at], f"{what}, credited_at")
        credits.append(CreditRow(order_id(row[id_at], f"{what}, order_id"), credited))
    return credits, time_at is not None, where


def read_stock(
    source: StockLedger, *, run_id: str, environ: Mapping[str, str]
) -> tuple[list[InventoryRecord], str]:
    """One record per item, and where it came from."""
    role = "audit.ledger.stock"
    if source.http is not None:
        http = source.http
        document, url = fetch_json(http, run_id=run_id, environ=environ)
        paths = http.fields.model_dump()
        items = [
            InventoryRecord(
                item=order_id(row["item"], at("item")),
                stock=count(row["stock"], at("stock")),
                reserved=count(row["reserved"], at("reserved")),
            )
            for row, at in _rows(document, http.rows, paths, f"{role}.http", url)
        ]
        return items, url_where(http.url, run_id)
    assert source.sql is not None  # the model takes exactly one
    columns, rows = query_rows(source.sql, role=f"{role}.sql", run_id=run_id, environ=environ)
    where = sql_where(source.sql, environ)
    missing = [name for name in _STOCK_COLUMNS if name not in columns]
    if missing:
        raise InputError(
            f"{role}.sql: the query returns columns {', '.join(columns) or 'none'}; expected "
            f"item, stock and reserved (no {', '.join(missing)}: name them with AS)"
        )
    at = {name: columns.index(name) for name in _STOCK_COLUMNS}
    records = []
    for index, row in enumerate(rows):
        what = f"{role}.sql: row {index + 1} from {where}"
        records.append(
            InventoryRecord(
                item=order_id(row[at["item"]], f"{what}, item"),
                stock=count(row[at["stock"]], f"{what}, stock"),
                reserved=count(row[at["reserved"]], f"{what}, reserved"),
            )
        )
    return records, where


def _rows(
    document: Any, rows_path: str, paths: Mapping[str, str], role: str, url: str
) -> Iterator[tuple[dict[str, Any], Callable[[str], str]]]:
    """Each row's fields by name (one value each), and how to name a field of it in a message."""
    compiled = {name: parse_json_path(path) for name, path in paths.items()}
    for index, row in enumerate(select(document, parse_json_path(rows_path))):

        def at(name: str, index: int = index) -> str:
            return f"{role}.fields.{name}: {paths[name]} in row {index + 1} of {url}"

        values: dict[str, Any] = {}
        for name, path in compiled.items():
            found = select(row, path)
            if len(found) != 1:
                raise InputError(
                    f"{at(name)}: expected one value, found "
                    + ("none" if not found else str(len(found)))
                )
            values[name] = found[0]
        yield values, at


# ---- the preflight: each source read once before any load -------------------------------------

# What each SQL source must return, in words for the review (the readers above enforce it).
_SQL_NEEDS = {
    "audit.ledger": "the order ids in its first column",
    "audit.ledger.entitled": "the order ids in its first column",
    "audit.ledger.credits": "an order_id column (or one column), credited_at optional",
    "audit.ledger.stock": "columns item, stock and reserved",
}


def ledger_checks(ledger: TeamLedger) -> dict[str, str]:
    """Key -> what the preflight checks there before any load (for the review; reads nothing)."""
    checks: dict[str, str] = {}
    for role, source in ledger.sources().items():
        if source.http is not None:
            checks[f"{role}.http"] = f"GET {source.http.url}: answers 200 with JSON"
        if source.sql is not None:
            checks[f"{role}.sql"] = (
                f"the query runs read-only on {source.sql.dsn} and returns {_SQL_NEEDS[role]}"
            )
    return checks


def check_ledger(
    ledger: TeamLedger,
    *,
    run_id: str,
    environ: Mapping[str, str],
    error_at: ErrorAt | None = None,
) -> None:
    """Read every source the ledger names once for ``run_id``, before any load.

    The run has no rows yet, so this proves the plumbing, not the data: a database that
    refuses the connection or the password, an export that is not 200 or not JSON, is
    ``TargetUnreachable`` (exit 4, naming host:port or the URL, never the DSN); a query that
    fails or lacks a column the audit needs is an ``InputError`` (exit 2), which
    ``error_at(key, message)`` may turn into one located at that key of the target file.
    """
    for role, source in ledger.sources().items():
        parts = {"http": "http", "sql": "sql.query"}  # part -> the key a problem is put at
        for part, at in parts.items():
            if getattr(source, part) is None:
                continue
            try:
                _read_one(role, source, part, run_id=run_id, environ=environ)
            except InputError as exc:
                if error_at is None:
                    raise
                raise error_at((*role.split("."), *at.split(".")), str(exc)) from None


def _read_one(
    role: str,
    source: LedgerSource | CreditsLedger | StockLedger,
    part: str,
    *,
    run_id: str,
    environ: Mapping[str, str],
) -> None:
    """Read one part (http or sql) of one source the way the audit will."""
    if isinstance(source, CreditsLedger):
        read_credits(source, run_id=run_id, environ=environ)  # one part only (the model's rule)
    elif isinstance(source, StockLedger):
        read_stock(source, run_id=run_id, environ=environ)
    elif part == "http" and source.http is not None:
        _http_ids(source.http, role=role, run_id=run_id, environ=environ)
    elif part == "sql" and source.sql is not None:
        _sql_ids(source.sql, role=role, run_id=run_id, environ=environ)


@dataclass(frozen=True, slots=True, kw_only=True)
class TeamLedgerReader:
    """Reads a target's ``audit.ledger`` for one run."""

    ledger: TeamLedger
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ), repr=False)
    error_at: ErrorAt | None = None
    """Locates a problem the preflight finds at a key of the target file (file:line)."""

    def check(self, run_id: str) -> None:
        """The preflight: every source read once for ``run_id`` before any load."""
        check_ledger(self.ledger, run_id=run_id, environ=self.environ, error_at=self.error_at)

    def read(self, run_id: str) -> LedgerRecords:
        """The ledger's records for ``run_id``."""
        env = self.environ
        ledger = self.ledger
        orders, where = read_order_ids(ledger, role="audit.ledger", run_id=run_id, environ=env)
        credits: tuple[CreditRow, ...] | None = None
        credit_times = False
        if ledger.credits is not None:
            rows, credit_times, source = read_credits(ledger.credits, run_id=run_id, environ=env)
            credits = tuple(rows)
            where.append(source)
        entitled: frozenset[str] | None = None
        if ledger.entitled is not None:
            owed, sources = read_order_ids(
                ledger.entitled, role="audit.ledger.entitled", run_id=run_id, environ=env
            )
            entitled = frozenset(owed)
            where.extend(sources)
        stock: tuple[InventoryRecord, ...] | None = None
        if ledger.stock is not None:
            items, source = read_stock(ledger.stock, run_id=run_id, environ=env)
            stock = tuple(items)
            where.append(source)
        return LedgerRecords(
            # Both sources of one list: an order in either is in the ledger.
            order_ids=tuple(dict.fromkeys(orders)),
            credits=credits,
            credit_times=credit_times,
            entitled=entitled,
            stock=stock,
            sources=tuple(dict.fromkeys(where)),
        )

    def audit(
        self,
        run_id: str,
        outcomes_dir: Path,
        *,
        credit_slo_s: float | None = None,
        started_at: float | None = None,
    ) -> AuditResult:
        """Read the ledger and reconcile it with what clients were told.

        ``started_at``: the run's start (epoch s), from which the outcome files count time.
        """
        return reconcile_team_ledger(
            self.read(run_id), outcomes_dir, credit_slo_s=credit_slo_s, started_at=started_at
        )


def ledger_hosts(ledger: TeamLedger, environ: Mapping[str, str]) -> dict[str, str]:
    """Role -> URL of every ledger endpoint, for the allow-list (the DSN as host only)."""
    hosts: dict[str, str] = {}
    for role, source in ledger.sources().items():
        if source.http is not None:
            hosts[f"{role}.http"] = fill(source.http.url, "x")
        if source.sql is not None:
            names = env_refs(source.sql.dsn)
            if all(name in environ for name in names):
                host = dsn_host(expand(source.sql.dsn, environ))
                hosts[f"{role}.sql"] = f"postgresql://{host or 'localhost'}"
    return hosts


def reconcile_team_ledger(
    records: LedgerRecords,
    outcomes_dir: Path,
    *,
    credit_slo_s: float | None = None,
    started_at: float | None = None,
    clock: Callable[[], float] = time.time,
) -> AuditResult:
    """Every invariant the team's ledger can tell, with ids; the rest skipped with why.

    The team's rows become the audit's typed records (``chaoskit.observe.ledger``) and go
    through the one ``reconcile``. A credit is late when it landed more than
    ``credit_slo_s`` after its order was first told ok (the outcome files count from
    ``started_at``); a team's ledger has no durable queue, so an owed credit that has not
    landed by the audit is missing.
    """
    timed = records.credit_times and credit_slo_s is not None and started_at is not None
    told = read_outcomes(outcomes_dir, started_at=started_at if timed else None)
    if told.records == 0:
        return AuditResult(
            "skipped", f"no outcome records in {outcomes_dir}", bad_lines=told.bad_lines
        )
    entitled = records.entitled or frozenset()
    orders = (
        OrderRecord(order_id=o, user_id="", created_at=0.0, eligible=o in entitled, live=True)
        for o in records.order_ids
    )
    found = reconcile(
        told,
        orders=orders,
        credits=_credit_records(records.credits or (), told.ok_at),
        queue=None,
        grants=None,
        items=records.stock or (),
        credit_slo_s=credit_slo_s if timed else None,
        now=clock(),
        no_grants_note=NO_GRANTS,
    )
    invariants = dict(found.invariants)
    gaps = audit_gaps(
        credits=records.credits is not None,
        credit_times=records.credit_times,
        entitled=records.entitled is not None,
        stock=records.stock is not None,
        credit_slo=credit_slo_s is not None,
        told_times=started_at is not None,
    )
    for name, why in gaps.items():
        invariants[name] = InvariantResult.skip(why)
    return AuditResult.judged(
        {name: invariants[name] for name in AUDIT_METRICS if name in invariants},
        told,
        credit_slo_s=credit_slo_s,
    )


def _credit_records(
    credits: Sequence[CreditRow], told_ok_at: Mapping[str, float]
) -> Iterator[CreditRecord]:
    for credit in credits:
        landed = credit.credited_at or 0.0
        # The delay runs from when the buyer was told ok; a credit of an order no client was
        # told ok about has no such moment, so none is counted (its own time: 0 s late).
        yield CreditRecord(
            order_id=credit.order_id,
            order_time=told_ok_at.get(credit.order_id, landed),
            credited_at=landed,
        )
