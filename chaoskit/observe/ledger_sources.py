"""Reading one source of a team's ledger: an HTTP export (JSON) or a PostgreSQL query.

``fetch_json`` GETs an export for a run; ``query_rows`` runs a query in a read-only
transaction and returns its column names with its rows. The values in them become typed
values here too (``order_id``, ``epoch``, ``count``), with one clear line naming the key of
the target file when a value is not what that key promised.
Secrets (header values, the DSN) come from ``${ENV}`` at read time and never appear in a
message: errors name the URL or the database host, never the DSN.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from chaoskit._secrets import expand as expand_secret
from chaoskit._secrets import expand_headers
from chaoskit.errors import InputError, TargetUnreachable
from chaoskit.stack.target import HttpExport, SqlLedger

__all__ = [
    "count",
    "dsn_host",
    "epoch",
    "expand",
    "fetch_json",
    "fill",
    "order_id",
    "query_rows",
    "sql_where",
    "url_where",
]

_TEMPLATE = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")


def expand(value: str, environ: Mapping[str, str]) -> str:
    """``${NAME}`` in a ledger's DSN replaced by its value (unset: InputError naming it)."""
    return expand_secret(value, environ, needed_by="the ledger")


def fill(template: str, run_id: str) -> str:
    """``{{run_id}}`` in a URL template filled in."""
    return _TEMPLATE.sub(lambda m: run_id if m.group(1) == "run_id" else m.group(0), template)


def url_where(url_template: str, run_id: str) -> str:
    """The export's URL without its query, for the report's list of sources."""
    return urlsplit(fill(url_template, run_id))._replace(query="").geturl()


def fetch_json(
    export: HttpExport,
    *,
    run_id: str,
    environ: Mapping[str, str],
    timeout_s: float = 30.0,
) -> tuple[Any, str]:
    """GET the export for this run: (the JSON document, the URL asked)."""
    url = fill(export.url, run_id)
    headers = expand_headers(export.headers, environ, needed_by="the ledger")
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout_s, connect=5.0), trust_env=False) as c:
            response = c.get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise TargetUnreachable(f"ledger export {url} cannot be read: {exc}") from exc
    if response.status_code != 200:
        raise TargetUnreachable(f"ledger export {url} answered HTTP {response.status_code}")
    try:
        return response.json(), url
    except ValueError as exc:
        raise TargetUnreachable(f"ledger export {url} did not answer JSON: {exc}") from exc


def _dsn_params(dsn: str) -> dict[str, Any]:
    from psycopg.conninfo import conninfo_to_dict

    try:
        return conninfo_to_dict(dsn)
    except Exception as exc:  # psycopg's ProgrammingError: never echo the DSN itself
        raise InputError(f"the ledger DSN cannot be read ({type(exc).__name__})") from None


def dsn_host(dsn: str) -> str:
    """The database host a DSN names (URL or key=value form), lower case; '' for a socket."""
    params = _dsn_params(dsn)
    host = str(params.get("hostaddr") or params.get("host") or "")
    return "" if host.startswith("/") else host.lower()


def sql_where(ledger: SqlLedger, environ: Mapping[str, str]) -> str:
    """``postgresql://host:port`` of the query's database (the port when the DSN names one):
    never the DSN (it holds the secret)."""
    dsn = expand(ledger.dsn, environ)
    host = dsn_host(dsn)
    if not host:
        return "postgresql://local socket"
    port = str(_dsn_params(dsn).get("port") or "")
    host = f"[{host}]" if ":" in host else host  # an IPv6 address
    return f"postgresql://{host}:{port}" if port else f"postgresql://{host}"


def query_rows(
    ledger: SqlLedger,
    *,
    role: str,
    run_id: str,
    environ: Mapping[str, str],
    timeout_s: float = 30.0,
) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """Run the query in a read-only transaction: (its column names, its rows).

    ``role`` is where the query is in the target file (``audit.ledger.credits.sql``).
    """
    import psycopg

    dsn = expand(ledger.dsn, environ)
    where = sql_where(ledger, environ)
    try:
        with psycopg.connect(dsn, connect_timeout=max(1, int(timeout_s)), autocommit=False) as conn:
            conn.read_only = True
            with conn.cursor() as cursor:
                cursor.execute(
                    f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}"  # a number we made
                )
                params = {"run_id": run_id} if "%(run_id)s" in ledger.query else None
                cursor.execute(ledger.query, params)
                columns = tuple(c.name for c in cursor.description or ())
                rows = cursor.fetchall()
            conn.rollback()  # read-only: nothing to keep
    except psycopg.errors.ReadOnlySqlTransaction as exc:
        raise InputError(f"{role}: the query tried to write ({where})") from exc
    except (psycopg.ProgrammingError, psycopg.errors.SyntaxError) as exc:
        raise InputError(f"{role}: the query failed on {where}: {_first_line(exc)}") from None
    except psycopg.Error as exc:
        raise TargetUnreachable(
            f"ledger database {where} cannot be read: {_first_line(exc)}"
        ) from None
    return columns, rows


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ---- values as the audit's types: ``what`` names the key and the row, for the message ----


def order_id(value: Any, what: str) -> str:
    """An order id: text or an integer."""
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value)
    raise InputError(f"{what}: expected an order id (text or an integer), got {_kind(value)}")


def epoch(value: Any, what: str) -> float:
    """A time as epoch seconds: a number, a timestamp with a time zone, or ISO 8601 text
    with an offset. A time without a zone is refused: guessing one would shift every credit."""
    if isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool):
        return float(value)
    at = value
    if isinstance(value, str):
        try:
            at = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InputError(
                f"{what}: expected epoch seconds or an ISO 8601 time, got {value[:40]!r}"
            ) from None
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise InputError(
                f"{what}: a time without a time zone ({at.isoformat()}); give it one (SQL: "
                "a timestamptz, or AT TIME ZONE 'UTC'; JSON: an offset like Z)"
            )
        return at.timestamp()
    raise InputError(f"{what}: expected a time (epoch seconds or ISO 8601), got {_kind(value)}")


def count(value: Any, what: str) -> float:
    """A quantity: a number."""
    if isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool):
        return float(value)
    raise InputError(f"{what}: expected a number, got {_kind(value)}")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
