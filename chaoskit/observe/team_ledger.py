"""The team's ledger: this run's order ids read from an HTTP export or a PostgreSQL query.

Readers return ``LedgerRecords`` (order ids, credit ids); ``reconcile_team_ledger`` turns
them into the audit's typed records and runs the one reconciliation
(``chaoskit.observe.ledger.reconcile``).
Secrets (header values, the DSN) come from ``${ENV}`` at read time and never appear in a
message: errors name the URL or the database host, never the DSN.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from chaoskit.errors import InputError, TargetUnreachable
from chaoskit.journey.paths import parse_json_path, select
from chaoskit.observe.audit import AuditResult
from chaoskit.observe.ledger import CreditRecord, InvariantResult, OrderRecord, reconcile
from chaoskit.observe.metrics import AUDIT_METRICS
from chaoskit.observe.outcomes import read_outcomes
from chaoskit.stack.target import HttpLedger, LedgerSource, SqlLedger, TeamLedger, env_refs

__all__ = [
    "LedgerRecords",
    "TeamLedgerReader",
    "ledger_hosts",
    "read_source",
    "reconcile_team_ledger",
]

_TEMPLATE = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")


@dataclass(frozen=True, slots=True)
class LedgerRecords:
    """What the team's ledger holds for this run: order ids, and credit rows when named."""

    order_ids: tuple[str, ...]
    credit_order_ids: tuple[str, ...] | None = None  # one per credit row; None: not named
    sources: tuple[str, ...] = ()  # where they came from (URL, postgresql://host:port)


def _expand(value: str, environ: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise InputError(f"environment variable {name} is not set (the ledger needs it)")
        return environ[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", one, value)


def _fill(template: str, run_id: str) -> str:
    return _TEMPLATE.sub(lambda m: run_id if m.group(1) == "run_id" else m.group(0), template)


def read_http(
    ledger: HttpLedger,
    *,
    run_id: str,
    environ: Mapping[str, str],
    timeout_s: float = 30.0,
) -> list[str]:
    """GET the export for this run and pick the order ids with the JSONPath."""
    url = _fill(ledger.url, run_id)
    headers = {name: _expand(value, environ) for name, value in ledger.headers.items()}
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout_s, connect=5.0), trust_env=False) as c:
            response = c.get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise TargetUnreachable(f"ledger export {url} cannot be read: {exc}") from exc
    if response.status_code != 200:
        raise TargetUnreachable(f"ledger export {url} answered HTTP {response.status_code}")
    try:
        document = response.json()
    except ValueError as exc:
        raise TargetUnreachable(f"ledger export {url} did not answer JSON: {exc}") from exc
    ids = select(document, parse_json_path(ledger.order_ids))
    bad = [v for v in ids if not isinstance(v, str | int) or isinstance(v, bool)]
    if bad:
        raise TargetUnreachable(
            f"ledger export {url}: {ledger.order_ids} reaches {type(bad[0]).__name__} values, "
            "expected order ids (text or integers)"
        )
    return [str(v) for v in ids]


def dsn_host(dsn: str) -> str:
    """The database host a DSN names (URL or key=value form), lower case; '' for a socket."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(dsn)
    except Exception as exc:  # psycopg's ProgrammingError: never echo the DSN itself
        raise InputError(f"the ledger DSN cannot be read ({type(exc).__name__})") from None
    host = str(params.get("hostaddr") or params.get("host") or "")
    return "" if host.startswith("/") else host.lower()


def read_sql(
    ledger: SqlLedger,
    *,
    run_id: str,
    environ: Mapping[str, str],
    timeout_s: float = 30.0,
) -> list[str]:
    """Run the query in a read-only transaction; the first column of each row is an id."""
    import psycopg

    dsn = _expand(ledger.dsn, environ)
    where = f"postgresql://{dsn_host(dsn) or 'local socket'}"
    try:
        with psycopg.connect(dsn, connect_timeout=max(1, int(timeout_s)), autocommit=False) as conn:
            conn.read_only = True
            with conn.cursor() as cursor:
                cursor.execute(
                    f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}"  # a number we made
                )
                params = {"run_id": run_id} if "%(run_id)s" in ledger.query else None
                cursor.execute(ledger.query, params)
                rows = cursor.fetchall()
            conn.rollback()  # read-only: nothing to keep
    except psycopg.errors.ReadOnlySqlTransaction as exc:
        raise InputError(f"audit.ledger.sql: the query tried to write ({where})") from exc
    except (psycopg.ProgrammingError, psycopg.errors.SyntaxError) as exc:
        raise InputError(
            f"audit.ledger.sql: the query failed on {where}: {_first_line(exc)}"
        ) from None
    except psycopg.Error as exc:
        raise TargetUnreachable(
            f"ledger database {where} cannot be read: {_first_line(exc)}"
        ) from None
    return [str(row[0]) for row in rows if row and row[0] is not None]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def read_source(
    source: LedgerSource, *, run_id: str, environ: Mapping[str, str]
) -> tuple[list[str], list[str]]:
    """Order ids from a source's HTTP export and/or SQL query, and where they came from."""
    ids: list[str] = []
    where: list[str] = []
    if source.http is not None:
        ids.extend(read_http(source.http, run_id=run_id, environ=environ))
        where.append(urlsplit(_fill(source.http.url, run_id))._replace(query="").geturl())
    if source.sql is not None:
        ids.extend(read_sql(source.sql, run_id=run_id, environ=environ))
        host = dsn_host(_expand(source.sql.dsn, environ))
        where.append(f"postgresql://{host or 'local socket'}")
    return ids, where


@dataclass(frozen=True, slots=True, kw_only=True)
class TeamLedgerReader:
    """Reads a target's ``audit.ledger`` for one run."""

    ledger: TeamLedger
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    def read(self, run_id: str) -> LedgerRecords:
        """The ledger's records for ``run_id``."""
        orders, where = read_source(self.ledger, run_id=run_id, environ=self.environ)
        credits: tuple[str, ...] | None = None
        if self.ledger.credits is not None:
            credit_ids, credit_where = read_source(
                self.ledger.credits, run_id=run_id, environ=self.environ
            )
            credits = tuple(credit_ids)
            where.extend(w for w in credit_where if w not in where)
        # Both sources of one list: an order in either is in the ledger.
        return LedgerRecords(tuple(dict.fromkeys(orders)), credits, tuple(where))

    def audit(self, run_id: str, outcomes_dir: Path) -> AuditResult:
        """Read the ledger and reconcile it with what clients were told."""
        return reconcile_team_ledger(self.read(run_id), outcomes_dir)


def ledger_hosts(ledger: TeamLedger, environ: Mapping[str, str]) -> dict[str, str]:
    """Role -> URL of every ledger endpoint, for the allow-list (the DSN as host only)."""
    hosts: dict[str, str] = {}
    for role, source in (("audit.ledger", ledger), ("audit.ledger.credits", ledger.credits)):
        if source is None:
            continue
        if source.http is not None:
            hosts[f"{role}.http"] = _TEMPLATE.sub("x", source.http.url)
        if source.sql is not None:
            names = env_refs(source.sql.dsn)
            if all(name in environ for name in names):
                host = dsn_host(_expand(source.sql.dsn, environ))
                hosts[f"{role}.sql"] = f"postgresql://{host or 'localhost'}"
    return hosts


def reconcile_team_ledger(
    records: LedgerRecords,
    outcomes_dir: Path,
    *,
    clock: Callable[[], float] = time.time,
) -> AuditResult:
    """Lost and phantom orders (and double credits where credits are named), with ids.

    The team's ids become the audit's typed records (``chaoskit.observe.ledger``) and go
    through the one ``reconcile``; what a list of ids cannot tell (which orders are owed a
    credit, credit times, stock, entitlements) is skipped with why, never passed.
    """
    told = read_outcomes(outcomes_dir)
    if told.records == 0:
        return AuditResult(
            "skipped", f"no outcome records in {outcomes_dir}", bad_lines=told.bad_lines
        )
    orders = (
        OrderRecord(order_id=o, user_id="", created_at=0.0, eligible=False, live=True)
        for o in records.order_ids
    )
    credits = (
        CreditRecord(order_id=o, order_time=0.0, credited_at=0.0)
        for o in records.credit_order_ids or ()
    )
    found = reconcile(
        told,
        orders=orders,
        credits=credits,
        queue=None,
        grants=None,
        items=(),
        credit_slo_s=None,
        now=clock(),
        no_grants_note="the team's ledger names no entitlements",
    )
    invariants = dict(found.invariants)
    untold = {
        "missing_credits": "the team's ledger does not say which orders are owed a credit",
        "late_credits": "the team's ledger has no credit times",
        "oversold": "the target names no stock ledger",
    }
    if records.credit_order_ids is None:
        untold["double_credits"] = "the target names no credits ledger (audit.ledger.credits)"
    for name, why in untold.items():
        invariants[name] = InvariantResult.skip(why)
    return AuditResult.judged(
        {name: invariants[name] for name in AUDIT_METRICS if name in invariants}, told
    )
