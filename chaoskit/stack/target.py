"""Target files (``targets/*.yaml``): which stack an experiment runs against, and its layout.

    version: 1
    kind: local            # local | docker | attach
    name: local
    base_port: 18400       # toxiproxy API base+74, gateway base+10, services base+11..,
                           # proxies base+21.. (see ``PortLayout``)
    settings: {store: {capacity_per_s: 50}, rider: {riders: 200}}

Built-in names ``local`` and ``docker`` resolve to ``targets/local.yaml`` and
``targets/docker.yaml``. Mistakes become ``TargetFileError`` with file:line:col.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from chaoskit._secrets import HEADER_NAME, env_refs, header_problem
from chaoskit._yaml import Loc, Place, did_you_mean, load_yaml, plain, read_input
from chaoskit.errors import TargetFileError
from chaoskit.experiment.durations import PositiveDuration
from chaoskit.journey.models import JourneyConfig
from chaoskit.observe.prometheus import MetricsSettings, base_url_problem
from chaoskit.stack.endpoints import DEPENDENCIES, SERVICES, ProxyRef
from chaoskit.stack.service_settings import SettingsProblem, check_service_settings

__all__ = [
    "BUILTIN_TARGETS",
    "AttachCaps",
    "AttachGateway",
    "AttachTarget",
    "AuditSettings",
    "CreditFields",
    "CreditsLedger",
    "DockerImageSettings",
    "DockerTarget",
    "HttpCredits",
    "HttpExport",
    "HttpLedger",
    "HttpStock",
    "LedgerSource",
    "LocalTarget",
    "PortLayout",
    "RunTag",
    "SqlLedger",
    "StackSettings",
    "StockFields",
    "StockLedger",
    "Target",
    "TeamLedger",
    "ToxiproxyServer",
    "WatchdogSettings",
    "env_refs",
    "find_builtin_target",
    "load_target",
    "parse_target",
    "port_layout",
    "with_kind",
]

BUILTIN_TARGETS: tuple[str, ...] = ("local", "docker")

# Offsets from base_port (see the module docstring and the shared contract).
TOXIPROXY_API_OFFSET = 74
GATEWAY_OFFSET = 10
SERVICE_OFFSET = 11
PROXY_OFFSET = 21
_HIGHEST_OFFSET = TOXIPROXY_API_OFFSET

ServiceSettings = dict[str, dict[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class PortLayout:
    """Every port a local or docker stack binds on 127.0.0.1, derived from ``base_port``."""

    base_port: int
    toxiproxy_api: int
    services: dict[str, int]  # service -> its own listen port (gateway first)
    proxies: dict[str, int]  # dependency -> its Toxiproxy proxy's listen port

    def all_ports(self) -> dict[int, str]:
        """Port -> what needs it, for port-in-use messages."""
        owners: dict[int, str] = {self.toxiproxy_api: "toxiproxy API"}
        owners.update({port: f"service {name}" for name, port in self.services.items()})
        owners.update({port: f"toxiproxy proxy {name}" for name, port in self.proxies.items()})
        return owners


def port_layout(base_port: int) -> PortLayout:
    """The port layout for ``base_port``: see the module docstring."""
    services = {"gateway": base_port + GATEWAY_OFFSET}
    services.update({dep: base_port + SERVICE_OFFSET + i for i, dep in enumerate(DEPENDENCIES)})
    proxies = {dep: base_port + PROXY_OFFSET + i for i, dep in enumerate(DEPENDENCIES)}
    return PortLayout(
        base_port=base_port,
        toxiproxy_api=base_port + TOXIPROXY_API_OFFSET,
        services=services,
        proxies=proxies,
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StackSettings(_Strict):
    """Initial /admin settings per service; orderstack validates the values themselves."""

    gateway: dict[str, Any] = Field(default_factory=dict)
    inventory: dict[str, Any] = Field(default_factory=dict)
    lbs: dict[str, Any] = Field(default_factory=dict)
    eligibility: dict[str, Any] = Field(default_factory=dict)
    orders: dict[str, Any] = Field(default_factory=dict)
    store: dict[str, Any] = Field(default_factory=dict)
    rider: dict[str, Any] = Field(default_factory=dict)
    coupon: dict[str, Any] = Field(default_factory=dict)

    def by_service(self) -> ServiceSettings:
        """The settings of every service that has any, as stack.json's ``settings``."""
        return {name: dict(values) for name, values in self.model_dump().items() if values}


class _TargetBase(_Strict):
    version: Literal[1]
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", max_length=64)
    _source: Path | None = PrivateAttr(default=None)
    _tree: Any = PrivateAttr(default=None)  # the parsed YAML, which knows each key's line

    def metric_names(self) -> tuple[str, ...]:
        """The metric names this target's PromQL queries add (none for a stub stack)."""
        return ()

    @property
    def source(self) -> Path | None:
        """The file this target was loaded from, if any."""
        return self._source

    def error_at(self, key: Sequence[str | int], message: str) -> TargetFileError:
        """A problem found after loading (a ledger query the database refuses), located at
        ``key`` of this target's file: ``file:line:col: message``."""
        if self._tree is None:
            return TargetFileError(message, path=self._source)
        place = Place(self._tree, tuple(key), model=None)
        return TargetFileError(message, path=self._source, line=place.line, col=place.col)


class _StackTarget(_TargetBase):
    """A target whose stack chaoskit starts itself (local processes or containers)."""

    base_port: int = Field(default=18400, ge=1024, le=65535 - _HIGHEST_OFFSET)
    seed: int = 7
    settings: StackSettings = Field(default_factory=lambda: StackSettings())
    # Seconds to wait for every service to answer /healthz.
    start_timeout_s: float = Field(default=30.0, gt=0, le=600)

    @property
    def ports(self) -> PortLayout:
        """This target's port layout."""
        return port_layout(self.base_port)


class LocalTarget(_StackTarget):
    """The stub stack as local processes behind a local toxiproxy-server."""

    kind: Literal["local"]


class DockerImageSettings(_Strict):
    """How the docker backend gets its image."""

    name: str = "chaoskit/orderstack:latest"
    build: bool = True  # build from targets/orderstack when missing
    base: str | None = None  # base image to build from; None = the project's own base


class DockerTarget(_StackTarget):
    """The stub stack as containers; Toxiproxy in its own container."""

    kind: Literal["docker"]
    image: DockerImageSettings = Field(default_factory=DockerImageSettings)


_HOST = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$"
    r"|^[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*$"  # IPv6, written without brackets
)


class AttachGateway(_Strict):
    """Where synthetic orders go on an attached stack, and in which request format."""

    url: str
    orders_path: str = Field(default="/orders", pattern=r"^/[^?#\s]*$")
    # text: {"text": "help me buy ..."}; fields: {"item", "spec", "deadline_min", "place"}
    intent_format: Literal["text", "fields"] = "text"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value)


class ToxiproxyServer(_Strict):
    """One Toxiproxy API server of an attached stack and the proxy it has per dependency."""

    url: str
    proxies: dict[str, str] = Field(min_length=1)  # dependency -> proxy name on this server

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value)

    @field_validator("proxies")
    @classmethod
    def _known_dependencies(cls, proxies: dict[str, str]) -> dict[str, str]:
        for dependency, name in proxies.items():
            if dependency not in DEPENDENCIES:
                raise _problem(
                    f"unknown dependency {dependency!r}: expected one of {', '.join(DEPENDENCIES)}",
                    dependency,
                )
            if not name or "/" in name:
                raise _problem("expected a Toxiproxy proxy name", dependency)
        return proxies


class AttachCaps(_Strict):
    """Upper bounds an attached run must stay under; a plan beyond them is refused."""

    max_users: int | None = Field(default=None, ge=1)  # closed model: concurrent users
    max_rate: float | None = Field(default=None, gt=0)  # open model: arrivals per second
    max_fault_duration: PositiveDuration | None = None  # seconds; "until the end" is refused


class RunTag(_Strict):
    """The header put on every synthetic order, so the target can tell them apart."""

    header: str = Field(default="X-Chaoskit-Run", pattern=HEADER_NAME)
    value: str = Field(default="chaoskit", min_length=1, pattern=r"^[\x21-\x7e ]+$")


class WatchdogSettings(_Strict):
    """The dead-man's switch: faults are removed once the run stops heartbeating this long."""

    ttl: PositiveDuration = Field(default=30.0, le=3600.0)


def _check_header_templates(headers: dict[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        message = header_problem(name, value)
        if message:
            raise _problem(message, name)
    return headers


_TEMPLATE_VARS = ("run_id",)
_TEMPLATE = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")


def _check_template_url(value: str) -> str:
    """A URL template: {{run_id}} may stand in the path or query; no credentials, no ${...}."""
    for name in _TEMPLATE.findall(value):
        if name not in _TEMPLATE_VARS:
            raise ValueError(
                f"unknown template variable {{{{{name}}}}}; expected one of: "
                + ", ".join(_TEMPLATE_VARS)
            )
    sample = _TEMPLATE.sub("x", value)
    message = base_url_problem(sample)
    if message:
        raise ValueError(message)
    return value


def _json_path(value: str) -> str:
    from chaoskit.journey.paths import parse_json_path

    parse_json_path(value)  # raises ValueError with what is wrong
    return value


class HttpExport(_Strict):
    """GET ``url`` (``{{run_id}}`` filled in) with ``headers`` (values may name ``${ENV}``)."""

    url: str
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_template_url(value)

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        return _check_header_templates(headers)


class HttpLedger(HttpExport):
    """An HTTP export of order ids: a JSONPath to them in the answer, e.g. "$.orders[*].id"."""

    order_ids: str = Field(default="$[*]", min_length=1)

    @field_validator("order_ids")
    @classmethod
    def _path(cls, value: str) -> str:
        return _json_path(value)


class CreditFields(_Strict):
    """Where a credit row keeps each field: JSONPaths relative to the row."""

    order_id: str = Field(default="$.order_id", min_length=1)
    # When the credit landed: epoch seconds or ISO 8601 with a time zone. None: no times.
    credited_at: str | None = Field(default=None, min_length=1)

    @field_validator("order_id", "credited_at")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else _json_path(value)


class HttpCredits(HttpExport):
    """An HTTP export of credits: one order id per credit (``order_ids``, the list form), or
    one object per credit (``rows``) with its ``fields`` read relative to each row."""

    order_ids: str | None = Field(default=None, min_length=1)
    rows: str | None = Field(default=None, min_length=1)
    fields: CreditFields | None = None

    @field_validator("order_ids", "rows")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else _json_path(value)

    @model_validator(mode="after")
    def _one_form(self) -> HttpCredits:
        if self.order_ids is not None and self.rows is not None:
            raise _problem(
                "expected order_ids (one id per credit) or rows with fields, not both", "rows"
            )
        if self.fields is not None and self.rows is None:
            raise _problem("fields are read relative to each row: give rows too", "fields")
        return self

    @property
    def row_fields(self) -> CreditFields:
        """The fields of a row (the defaults when none are named)."""
        return self.fields or CreditFields()


class StockFields(_Strict):
    """Where a stock row keeps each field: JSONPaths relative to the row."""

    item: str = Field(default="$.item", min_length=1)  # the item's id (sku)
    stock: str = Field(default="$.stock", min_length=1)  # how many there were to sell
    reserved: str = Field(default="$.reserved", min_length=1)  # how many were sold or held

    @field_validator("item", "stock", "reserved")
    @classmethod
    def _path(cls, value: str) -> str:
        return _json_path(value)


class HttpStock(HttpExport):
    """An HTTP export of stock: one object per item (``rows``), its ``fields`` in each row."""

    rows: str = Field(min_length=1)
    fields: StockFields = Field(default_factory=StockFields)

    @field_validator("rows")
    @classmethod
    def _path(cls, value: str) -> str:
        return _json_path(value)


class SqlLedger(_Strict):
    """A query against the team's PostgreSQL, run in a read-only transaction.

    ``dsn`` must come from the environment (``${LEDGER_DSN}``); ``query`` may use
    ``%(run_id)s``. Order ids (orders, entitled): the first column of each row. Credits and
    stock: columns by name (credits: ``order_id``, optional ``credited_at``; stock: ``item``,
    ``stock``, ``reserved``); a credits query of one column is its order ids.
    """

    dsn: str
    query: str = Field(min_length=1)

    @field_validator("dsn")
    @classmethod
    def _from_env(cls, value: str) -> str:
        # Never quote the value: it may be the secret itself.
        if not re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", value.strip()):
            raise ValueError("dsn must name an environment variable, like ${LEDGER_DSN}")
        return value.strip()

    @property
    def env_var(self) -> str:
        """The environment variable holding the DSN."""
        return self.dsn.strip()[2:-1]


class LedgerSource(_Strict):
    """Where a list of order ids comes from: an HTTP export and/or a SQL query (their union)."""

    http: HttpLedger | None = None
    sql: SqlLedger | None = None

    @model_validator(mode="after")
    def _one(self) -> LedgerSource:
        if self.http is None and self.sql is None:
            raise _problem("expected http or sql (or both)")
        return self


class _RowsSource(_Strict):
    # Rows from two exports of one ledger would count each credit (or sale) twice: one only.
    @model_validator(mode="after")
    def _exactly_one(self) -> _RowsSource:
        given = [name for name in ("http", "sql") if getattr(self, name) is not None]
        if len(given) != 1:
            raise _problem(
                "expected http or sql, not both: each row is counted, so two exports of one "
                "ledger would count it twice"
                if given
                else "expected http or sql"
            )
        return self


class CreditsLedger(_RowsSource):
    """`audit.ledger.credits`: one row per coupon credit that landed."""

    http: HttpCredits | None = None
    sql: SqlLedger | None = None


class StockLedger(_RowsSource):
    """`audit.ledger.stock`: one row per item: its stock and how many were reserved."""

    http: HttpStock | None = None
    sql: SqlLedger | None = None


class TeamLedger(LedgerSource):
    """`audit.ledger`: this run's order ids in the team's records, and the ledgers that let
    the audit judge credits and stock (each optional: what is not named is skipped)."""

    # One row per credit: double credits; with credited_at, late credits.
    credits: CreditsLedger | None = None
    # The orders owed a coupon credit (free orders): with credits, missing credits.
    entitled: LedgerSource | None = None
    # Per item stock and reservations: oversold.
    stock: StockLedger | None = None

    def sources(self) -> dict[str, LedgerSource | CreditsLedger | StockLedger]:
        """Every source this ledger names, by its place in the target file."""
        named = {
            "audit.ledger": self,
            "audit.ledger.credits": self.credits,
            "audit.ledger.entitled": self.entitled,
            "audit.ledger.stock": self.stock,
        }
        return {role: source for role, source in named.items() if source is not None}


class AuditSettings(_Strict):
    """`audit`: how the run is reconciled with a ledger chaoskit did not write."""

    ledger: TeamLedger


class AttachTarget(_TargetBase):
    """A stack someone else runs (staging); chaoskit never starts, stops or reconfigures it.

    Header values may name environment variables as ``${NAME}``; they stay templates in
    everything chaoskit writes and are expanded only by the load engine when it sends.
    """

    kind: Literal["attach"]
    gateway: AttachGateway
    toxiproxy: list[ToxiproxyServer] = Field(min_length=1)
    # service -> base URL serving /healthz /stats /admin /ledger; without it domain faults,
    # stack settings, server metrics and the audit are not available.
    services: dict[str, str] = Field(default_factory=dict)
    allowed_hosts: list[str] = Field(min_length=1)
    caps: AttachCaps = Field(default_factory=AttachCaps)
    headers: dict[str, str] = Field(default_factory=dict)
    tag: RunTag = Field(default_factory=RunTag)
    watchdog: WatchdogSettings = Field(default_factory=WatchdogSettings)
    # What one buyer's order is on this stack; None: the built-in agent-buyer on
    # gateway.orders_path (the stub stack's contract). An experiment may override it.
    journey: JourneyConfig | None = None
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    audit: AuditSettings | None = None

    @field_validator("services")
    @classmethod
    def _known_services(cls, services: dict[str, str]) -> dict[str, str]:
        checked = {}
        for service, url in services.items():
            if service not in SERVICES:
                raise _problem(
                    f"unknown service {service!r}: expected one of {', '.join(SERVICES)}", service
                )
            try:
                checked[service] = _check_url(url)
            except ValueError as exc:
                raise _problem(str(exc), service) from None
        return checked

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, hosts: list[str]) -> list[str]:
        for index, host in enumerate(hosts):
            if not _HOST.match(host):
                raise _problem(
                    f"expected a host name or IP address (no scheme or port), got {host!r}", index
                )
        return [host.lower() for host in hosts]

    @field_validator("headers")
    @classmethod
    def _header_templates(cls, headers: dict[str, str]) -> dict[str, str]:
        return _check_header_templates(headers)

    @model_validator(mode="after")
    def _consistent(self) -> AttachTarget:
        owner: dict[str, int] = {}
        for index, server in enumerate(self.toxiproxy):
            for dependency in server.proxies:
                if dependency in owner:
                    raise _problem(
                        f"dependency {dependency!r} already has a proxy on "
                        f"toxiproxy[{owner[dependency]}]",
                        "toxiproxy",
                        index,
                        "proxies",
                        dependency,
                    )
                owner[dependency] = index
        if self.tag.header.lower() in {name.lower() for name in self.headers}:
            raise _problem(
                f"{self.tag.header!r} is the run tag's header; it cannot also be in headers",
                "headers",
                next(n for n in self.headers if n.lower() == self.tag.header.lower()),
            )
        return self

    def env_vars(self) -> list[str]:
        """The environment variables the header values (and the ledger) name, in file order."""
        names: list[str] = []
        values = list(self.headers.values())
        for source in self._ledger_sources():
            if source.http is not None:
                values.extend(source.http.headers.values())
            if source.sql is not None:
                values.append(source.sql.dsn)
        for value in values:
            names.extend(n for n in env_refs(value) if n not in names)
        return names

    def _ledger_sources(self) -> list[LedgerSource | CreditsLedger | StockLedger]:
        return [] if self.audit is None else list(self.audit.ledger.sources().values())

    def metric_names(self) -> tuple[str, ...]:
        """The metric names this target's PromQL queries add."""
        return self.metrics.names()

    def hosts(self) -> dict[str, str]:
        """Every URL chaoskit would talk to, by what it is (gateway, toxiproxy[0], store ...)."""
        urls = {"gateway": self.gateway.url}
        urls.update({f"toxiproxy[{i}]": s.url for i, s in enumerate(self.toxiproxy)})
        urls.update({f"services.{name}": url for name, url in self.services.items()})
        return urls

    def proxy_refs(self) -> dict[str, ProxyRef]:
        """Dependency -> the Toxiproxy server and proxy name in front of it."""
        return {
            dependency: ProxyRef(server.url, name)
            for server in self.toxiproxy
            for dependency, name in server.proxies.items()
        }

    def request_headers(self) -> dict[str, str]:
        """Headers for every synthetic order: the file's (templates unexpanded) plus the tag."""
        return {**self.headers, self.tag.header: self.tag.value}


def _problem(message: str, *loc: str | int) -> PydanticCustomError:
    """A validation problem at ``loc`` below the field (or model) that raises it."""
    return PydanticCustomError("target", "{message}", {"message": message, "loc": loc})


def _check_url(value: str) -> str:
    """An http(s) base URL with a host, no credentials, query or fragment; no trailing slash."""
    if "${" in value:
        raise ValueError("${...} is expanded in headers only; give the URL itself")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError("expected an http(s) URL like http://host:port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http(s) URL like http://host:port")
    if parts.username is not None or parts.password is not None:
        # Never echo it: the URL holds a credential.
        raise ValueError("a URL must not carry credentials; put them in headers as ${ENV_VAR}")
    if parts.query or parts.fragment:
        raise ValueError("expected a base URL without ?query or #fragment")
    del port
    return value.rstrip("/")


Target = Annotated[LocalTarget | DockerTarget | AttachTarget, Field(discriminator="kind")]
_TARGET_ADAPTER: TypeAdapter[LocalTarget | DockerTarget | AttachTarget] = TypeAdapter(Target)


def with_kind(target: LocalTarget | DockerTarget, kind: Literal["local", "docker"]) -> Target:
    """The same stack as another backend kind (``chaoskit up --backend docker``)."""
    if target.kind == kind:
        return target
    data = target.model_dump(exclude={"image"})
    data["kind"] = kind
    converted = _TARGET_ADAPTER.validate_python(data)
    converted._source = target.source
    return converted


def find_builtin_target(name: str) -> Path | None:
    """The file of a built-in target: ./targets/<name>.yaml, then next to the chaoskit package."""
    package_root = Path(__file__).resolve().parent.parent.parent
    for folder in (Path.cwd() / "targets", package_root / "targets"):
        candidate = folder / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    return None


def load_target(name_or_path: str | os.PathLike[str]) -> Target:
    """Load a target by built-in name (``local``, ``docker``) or path to a YAML file."""
    text = os.fspath(name_or_path)
    if text in BUILTIN_TARGETS:
        found = find_builtin_target(text)
        if found is None:
            raise TargetFileError(
                f"built-in target {text!r} not found: expected targets/{text}.yaml in the "
                "current directory or the chaoskit checkout"
            )
        path = found
    else:
        path = Path(text)
        if not path.suffix and os.sep not in text and not path.exists():
            raise TargetFileError(
                f"unknown target {text!r}: expected {' or '.join(BUILTIN_TARGETS)} "
                "or a path to a target YAML file"
            )
    source = read_input(path, error=TargetFileError, what="target")
    return parse_target(source, path=path)


def parse_target(source: str, *, path: Path | str | None = None) -> Target:
    """Validate target YAML text; errors point at the offending key."""
    where = None if path is None else Path(path)
    data = load_yaml(source, path=where, error=TargetFileError)
    if not isinstance(data, Mapping):
        raise TargetFileError(
            "expected a mapping with version, kind and name at the top level",
            path=path,
            line=1,
            col=1,
        )
    try:
        target = _TARGET_ADAPTER.validate_python(plain(data))
    except ValidationError as exc:
        error = exc.errors()[0]
        full: Loc = tuple(error["loc"])
        extra = (error.get("ctx") or {}).get("loc")
        if error["type"] in ("target", "experiment", "journey") and extra:
            # A problem raised below its validator's own field (a dict key, a list item).
            full = (*full, *extra)
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            full = ("kind",)
        # The discriminated union puts the kind's tag in loc; it is not a key in the file.
        loc = full[1:] if full and full[0] in ("local", "docker", "attach") else full
        place = Place(data, full, model=Target, at_key=True, dotted=True)
        message = _describe(error, loc)
        if error["type"] == "extra_forbidden":
            parent = Place(data, full[:-1], model=Target)
            message += did_you_mean(str(loc[-1]), parent.allowed_keys())
        raise TargetFileError(message, path=path, line=place.line, col=place.col) from exc
    _check_settings(target, data, where)
    target._tree = data
    if path is not None:
        target._source = Path(path)
        _check_journey_file(target, data, Path(path))
    return target


def _check_settings(target: Target, data: Any, path: Path | None) -> None:
    """Refuse stack settings the stub services would refuse, before any service starts."""
    if isinstance(target, AttachTarget):
        return
    for service, values in target.settings.by_service().items():
        try:
            check_service_settings(service, values)
        except SettingsProblem as exc:
            loc: Loc = ("settings", service, *exc.loc)
            place = Place(data, loc, model=None, at_key=exc.unknown_key)
            raise TargetFileError(
                f"settings.{service}.{exc.message}", path=path, line=place.line, col=place.col
            ) from None


def _check_journey_file(target: Target, data: Any, path: Path) -> None:
    """A Python journey's file must exist (relative to the target file)."""
    journey = getattr(target, "journey", None)
    if journey is None or journey.python_ref is None:
        return
    hook_file = Path(journey.python_ref[0])
    hook_file = hook_file if hook_file.is_absolute() else path.parent / hook_file
    if not hook_file.is_file():
        place = Place(data, ("journey", "python"), model=None)
        raise TargetFileError(
            f"journey.python: no such file {str(hook_file)!r}",
            path=path,
            line=place.line,
            col=place.col,
        )


def _describe(error: Mapping[str, Any], loc: Sequence[int | str]) -> str:
    """``field: expected ..., got ...`` from one pydantic error."""
    where = ".".join(str(part) for part in loc) or "target"
    kind = error.get("type", "")
    message = str(error.get("msg", "invalid value"))
    if kind == "missing":
        return f"{where}: required key is missing"
    if kind == "extra_forbidden":
        return f"{where}: unknown key"
    if kind == "union_tag_not_found":
        return "kind: required key is missing (expected local, docker or attach)"
    if kind == "union_tag_invalid":
        got = error.get("input", {})
        given = got.get("kind") if isinstance(got, Mapping) else None
        return f"kind: expected local, docker or attach, got {given!r}"
    if message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
        return f"{where}: {message}"
    if kind in ("target", "experiment", "journey"):
        return f"{where}: {message}"
    if loc and loc[0] == "headers":
        # A header value may be a secret: never echo what was given.
        return f"{where}: {message[0].lower()}{message[1:]}"
    return f"{where}: {message[0].lower()}{message[1:]}, got {error.get('input')!r}"
