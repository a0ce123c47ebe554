"""The preflight of an attach run: what it will do to someone else's stack, and whether it may.

``preflight`` refuses (``SafetyRefusal``, exit 2, one line) before anything is touched: a
host off the target's allow-list, a load or fault beyond its caps, a fault the target does
not expose, an unset ``${ENV_VAR}``, a proxy name its Toxiproxy server does not have (the
one network call: ``GET /proxies``; a dead server is ``TargetUnreachable``). What passes
becomes a ``SafetyReview`` the CLI shows before asking for confirmation. Header values are
never part of it: they may be secrets.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from rich.console import Console
from rich.text import Text

from chaoskit.errors import InputError, SafetyRefusal
from chaoskit.experiment.durations import format_duration
from chaoskit.experiment.models import Experiment
from chaoskit.faults.toxiproxy import ToxiproxyClient
from chaoskit.observe.metrics import AUDIT_METRICS, METRICS
from chaoskit.observe.team import check_team_env, team_checks, team_env_vars, team_hosts
from chaoskit.observe.team_ledger import planned_gaps
from chaoskit.planning import FaultWindow, Plan
from chaoskit.run.settings import stack_settings
from chaoskit.stack.endpoints import StackEndpoints
from chaoskit.stack.target import AttachTarget, Target, env_refs

__all__ = ["PlannedFault", "ReviewedStep", "SafetyReview", "preflight"]

_LEDGER_SERVICES = ("orders", "coupon", "inventory")  # what the audit reconciles
# Computed only where the target names an entitlement (eligibility) ledger.
_ENTITLEMENT_METRICS = (
    "lost_entitlements",
    "free_orders_honoured_rate",
    "free_orders_honoured_in_slo_rate",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedFault:
    """One fault as the review shows it: what, where, and when."""

    name: str
    kind: str
    family: str  # network | domain
    where: str  # "proxy 'inventory' on http://host:8474" or "store /admin"
    start: float | None  # None: a metric triggers it
    end: float | None  # None: until the load ends (or start + length when triggered)
    length: float | None
    trigger: str | None = None

    def window(self) -> str:
        """``5s .. 14s``, ``5s .. end of load`` or ``when <metric> ..., for 9s``."""
        if self.trigger is not None:
            span = f"for {format_duration(self.length)}" if self.length is not None else "to end"
            return f"when {self.trigger}, {span}"
        start = format_duration(self.start or 0.0)
        end = "end of load" if self.end is None else format_duration(self.end)
        return f"{start} .. {end}"


@dataclass(frozen=True, slots=True)
class ReviewedStep:
    """One request of the run's journey, as the review shows it."""

    name: str
    method: str
    path: str  # the template, as written: values are filled per intent


@dataclass(frozen=True, kw_only=True)
class SafetyReview:
    """What an attach run will do, shown before it starts; carries its caps and watchdog TTL."""

    target: str
    source: str | None
    hosts: dict[str, str]  # role (gateway, toxiproxy[0], services.store) -> base URL
    allowed_hosts: tuple[str, ...]
    model: str
    unit: str
    peak: float  # nan when the shape cannot tell (custom)
    duration_s: float
    caps: dict[str, float]  # max_users / max_rate: LoadSpec.caps, so the engine clamps too
    max_fault_duration: float | None
    faults: tuple[PlannedFault, ...]
    settings: dict[str, dict[str, object]]  # /admin settings applied for the run, restored after
    header_names: tuple[str, ...]  # values are never shown
    env_vars: tuple[str, ...]
    tag: str  # "X-Chaoskit-Run: chaoskit"
    journey: str = ""  # its name and kind: "shop-checkout (2 steps)", "agent-buyer (built in)"
    steps: tuple[ReviewedStep, ...] = ()  # a steps journey's requests, in order
    audit: str = ""  # whose ledger the audit reads ("the team's ledger (audit.ledger)")
    audit_judged: tuple[str, ...] = ()  # the invariants the audit will judge
    # key -> what is read once before any load (the team's Prometheus and ledger sources)
    checked_before_load: dict[str, str] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    watchdog_ttl_s: float = 30.0

    def render(self, console: Console) -> None:
        """Print the review: hosts, peak load, faults with windows, what is skipped and why."""

        def say(text: str, style: str = "") -> None:
            # One line each, never wrapped apart (URLs, windows); text is data, not markup.
            console.print(Text(text, style=style), soft_wrap=True)

        where = f" ({self.source})" if self.source else ""
        say(f"Attach run on {self.target}{where}", "bold")
        width = max(len(role) for role in self.hosts)
        say("talks to:")
        for role, url in self.hosts.items():
            say(f"  {role:<{width}}  {url}")
        say(f"allowed hosts: {', '.join(self.allowed_hosts)}")
        peak = "unknown (custom shape)" if math.isnan(self.peak) else f"{self.peak:g}"
        cap = self.caps.get("max_users" if self.model == "closed" else "max_rate")
        capped = f" (cap {cap:g}, the engine clamps to it)" if cap is not None else " (no cap)"
        say(
            f"load: {self.model} model, peak {peak} {self.unit}{capped}, "
            f"{format_duration(self.duration_s)}"
        )
        say("faults:" if self.faults else "faults: none")
        for fault in self.faults:
            say(f"  {fault.name} ({fault.kind}) on {fault.where}, {fault.window()}")
        if self.max_fault_duration is not None:
            say(f"max fault duration: {format_duration(self.max_fault_duration)}")
        for service, values in self.settings.items():
            pairs = ", ".join(f"{k}={v}" for k, v in values.items())
            say(f"settings on {service} /admin (restored after): {pairs}")
        say(f"headers: {', '.join(self.header_names) or 'none'} (values not shown)")
        if self.env_vars:
            say(f"from the environment: {', '.join(self.env_vars)}")
        say(f"every order is tagged {self.tag}")
        if self.journey:
            say(f"journey: {self.journey}")
        width = max((len(step.name) for step in self.steps), default=0)
        for step in self.steps:
            say(f"  {step.name:<{width}}  {step.method} {step.path}")
        if self.audit:
            judged = ", ".join(self.audit_judged) or "nothing"
            say(f"audit from {self.audit}: judges {judged}")
        if self.checked_before_load:
            say("checked before any load (read once for the run; a failure stops it there):")
            width = max(len(key) for key in self.checked_before_load)
            for key, what in self.checked_before_load.items():
                say(f"  {key:<{width}}  {what}")
        say(
            "watchdog: faults are removed if the run stops heartbeating for "
            f"{format_duration(self.watchdog_ttl_s)}"
        )
        for item in self.skipped:
            say(f"skipped: {item}", "yellow")
        for note in self.notes:
            say(f"note: {note}", "dim")


def preflight(
    *,
    experiment: Experiment,
    plan: Plan,
    target: Target,
    endpoints: StackEndpoints,
    proxies_of: Callable[[str], Iterable[str]] | None = None,
) -> SafetyReview:
    """Check an attach run against its target's rules; ``SafetyRefusal`` names the first breach.

    ``proxies_of(url)`` lists a Toxiproxy server's proxy names (default: ``GET /proxies``).
    """
    if not isinstance(target, AttachTarget):
        raise InputError(f"preflight is for attach targets, not {target.kind!r}")
    hosts = _hosts(endpoints)
    # The team's Prometheus and ledger are hosts the run talks to like any other (a DSN's
    # host is known once its environment variable is set: checked again by the run).
    hosts.update(team_hosts(experiment, target, os.environ))
    _check_hosts(hosts, endpoints.allowed_hosts, target)
    _check_env(experiment, target)
    check_team_env(experiment, target, os.environ)
    caps = _caps(target)
    notes: list[str] = []
    _check_load(plan, target, notes)
    faults = tuple(_check_fault(w, target, endpoints) for w in plan.fault_windows)
    skipped, settings = _skipped(experiment, endpoints, target, notes)
    journey, steps = _journey(experiment, target)
    audit, judged = _audit(experiment, endpoints, target)
    # Last: the only network call, made once everything else passed.
    _check_proxies(target, proxies_of or _proxy_names)
    return SafetyReview(
        target=target.name,
        source=None if target.source is None else str(target.source),
        hosts=hosts,
        allowed_hosts=tuple(endpoints.allowed_hosts),
        model=plan.model,
        unit=plan.unit,
        peak=plan.peak,
        duration_s=plan.duration_s,
        caps=caps,
        max_fault_duration=target.caps.max_fault_duration,
        faults=faults,
        settings=settings,
        header_names=tuple(target.headers),
        env_vars=tuple(dict.fromkeys([*target.env_vars(), *team_env_vars(experiment, target)])),
        tag=f"{target.tag.header}: {target.tag.value}",
        journey=journey,
        steps=steps,
        audit=audit,
        audit_judged=judged,
        checked_before_load=team_checks(experiment, target),
        skipped=tuple(skipped),
        notes=tuple(notes),
        watchdog_ttl_s=target.watchdog.ttl,
    )


def _hosts(endpoints: StackEndpoints) -> dict[str, str]:
    """Every base URL the run would talk to, by role."""
    hosts = {"gateway": endpoints.gateway_url}
    for index, url in enumerate(endpoints.toxiproxy_urls):
        hosts[f"toxiproxy[{index}]"] = url
    for dependency, ref in endpoints.proxies.items():
        if ref.api_url not in endpoints.toxiproxy_urls:
            hosts[f"toxiproxy for {dependency}"] = ref.api_url
    for service, url in endpoints.services.items():
        hosts[f"services.{service}"] = url
    return hosts


def _check_hosts(hosts: dict[str, str], allowed: tuple[str, ...], target: AttachTarget) -> None:
    allowed_set = {host.lower() for host in allowed}
    for role, url in hosts.items():
        host = (urlsplit(url).hostname or "").lower()
        if host not in allowed_set:
            raise SafetyRefusal(
                f"{role} host {host!r} is not in allowed_hosts of target {target.name!r}"
                f"{_where(target)}"
            )


def _check_env(experiment: Experiment, target: AttachTarget) -> None:
    headers = {f"headers.{name}": value for name, value in target.headers.items()}
    journey = experiment.load.journey or target.journey
    for i, step in enumerate(journey.steps if journey is not None else ()):
        for name, value in step.request.headers.items():
            headers[f"journey.steps.{i}.request.headers.{name}"] = value
    for key, value in headers.items():
        for name in env_refs(value):
            if not os.environ.get(name):
                raise SafetyRefusal(
                    f"{key} of target {target.name!r} needs environment variable "
                    f"{name}, which is not set"
                )
    for name in target.env_vars():
        if not os.environ.get(name):
            raise SafetyRefusal(
                f"audit.ledger of target {target.name!r} needs environment variable {name}, "
                "which is not set"
            )


def _caps(target: AttachTarget) -> dict[str, float]:
    caps: dict[str, float] = {}
    if target.caps.max_users is not None:
        caps["max_users"] = float(target.caps.max_users)
    if target.caps.max_rate is not None:
        caps["max_rate"] = float(target.caps.max_rate)
    return caps


def _check_load(plan: Plan, target: AttachTarget, notes: list[str]) -> None:
    cap: float | None
    if plan.model == "closed":
        cap, what = target.caps.max_users, "caps.max_users"
    else:
        cap, what = target.caps.max_rate, "caps.max_rate"
    if cap is None:
        notes.append(f"target {target.name!r} sets no {what}: the load is not capped")
        return
    if math.isnan(plan.peak):
        notes.append(f"the shape's peak is unknown; the engine clamps it to {what} = {cap:g}")
        return
    if plan.peak > cap + 1e-9:
        raise SafetyRefusal(
            f"the load peaks at {plan.peak:g} {plan.unit}, above {what} = {cap:g} of target "
            f"{target.name!r}{_where(target)}"
        )


def _check_fault(
    window: FaultWindow, target: AttachTarget, endpoints: StackEndpoints
) -> PlannedFault:
    name = f"fault {window.name!r} ({window.kind})"
    if window.family == "container":
        raise SafetyRefusal(
            f"{name}: container faults are never applied to an attach target; "
            "chaoskit does not touch its processes or containers"
        )
    if window.family == "network":
        ref = endpoints.proxies.get(window.target)
        if ref is None:
            raise SafetyRefusal(
                f"{name}: target {target.name!r} maps no Toxiproxy proxy for dependency "
                f"{window.target!r} (toxiproxy[].proxies){_where(target)}"
            )
        where = f"proxy {ref.name!r} on {ref.api_url}"
    else:
        if window.target not in endpoints.services:
            raise SafetyRefusal(
                f"{name}: needs the {window.target} /admin endpoint, which target "
                f"{target.name!r} does not expose (services.{window.target}); remove the "
                "fault or add the endpoint"
            )
        where = f"{window.target} /admin"
    limit = target.caps.max_fault_duration
    if limit is not None:
        if window.length is None:
            raise SafetyRefusal(
                f"{name} lasts until the load ends; target {target.name!r} caps faults at "
                f"{format_duration(limit)}: give it a `for:` of at most that"
            )
        if window.length > limit + 1e-9:
            raise SafetyRefusal(
                f"{name} lasts {format_duration(window.length)}, above caps.max_fault_duration "
                f"= {format_duration(limit)} of target {target.name!r}"
            )
    trigger = None
    if window.trigger is not None:
        when = window.trigger
        if when.above is not None:
            trigger = f"{when.metric} > {when.above:g}"
        else:
            trigger = f"{when.metric} < {when.below}"
    return PlannedFault(
        name=window.name,
        kind=window.kind,
        family=window.family,
        where=where,
        start=window.start,
        end=window.end,
        length=window.length,
        trigger=trigger,
    )


def _skipped(
    experiment: Experiment, endpoints: StackEndpoints, target: AttachTarget, notes: list[str]
) -> tuple[list[str], dict[str, dict[str, object]]]:
    """What the run cannot do on this target (with why), and the /admin settings it will apply."""
    services = endpoints.services
    skipped: list[str] = []
    wanted = stack_settings(experiment.stack.model_dump(mode="python", exclude_none=True))
    applied: dict[str, dict[str, object]] = {}
    for service, values in wanted.items():
        if service in services:
            applied[service] = dict(values)
        else:
            keys = ", ".join(values)
            skipped.append(f"stack settings for {service} ({keys}): no {service} /admin endpoint")
    missing = [s for s in _LEDGER_SERVICES if s not in services]
    unaudited: set[str] = set()
    if target.audit is not None:
        # The team's ledger: what it does not name is skipped, one line each, with the key.
        missing = []
        gaps, later = planned_gaps(
            target.audit.ledger, credit_slo=experiment.audit.credit_slo is not None
        )
        unaudited = set(gaps)
        skipped.extend(f"audit of {name}: {why}" for name, why in gaps.items())
        if later is not None:
            notes.append(later)
    elif missing:
        skipped.append(f"audit (lost/phantom orders, credits): no /ledger for {', '.join(missing)}")
    no_grants = target.audit is None and not missing and "eligibility" not in services
    if no_grants:
        skipped.append("audit (lost entitlements, free orders honoured): no eligibility /ledger")
    if not services:
        skipped.append("server-side metrics (coupon delay, store, riders): no /stats endpoints")
    server_checks = sorted(
        {
            check.metric
            for check in [*experiment.hypothesis, *experiment.guardrails]
            if check.metric in METRICS
            and (
                (METRICS[check.metric].source == "server" and not services)
                or (METRICS[check.metric].source == "audit" and missing)
                or check.metric in unaudited
                or (
                    (no_grants or target.audit is not None) and check.metric in _ENTITLEMENT_METRICS
                )
            )
        }
    )
    if server_checks:
        skipped.append(f"checks on {', '.join(server_checks)}: no data from this target")
    return skipped, applied


def _journey(experiment: Experiment, target: AttachTarget) -> tuple[str, tuple[ReviewedStep, ...]]:
    """The run's journey (the experiment's, else the target's, else the built-in) and its
    requests."""
    journey = experiment.load.journey or target.journey
    if journey is None or journey.builtin is not None:
        step = ReviewedStep("order", "POST", target.gateway.orders_path)
        return "agent-buyer (built in)", (step,)
    if journey.python is not None:
        named = f", steps {', '.join(journey.step_names)}" if journey.step_names else ""
        return f"{journey.name}: Python function {journey.python}{named}", ()
    steps = tuple(
        ReviewedStep(step.name, step.request.method, step.request.path) for step in journey.steps
    )
    return f"{journey.name} ({len(steps)} step{'s' if len(steps) != 1 else ''})", steps


def _audit(
    experiment: Experiment, endpoints: StackEndpoints, target: AttachTarget
) -> tuple[str, tuple[str, ...]]:
    """Whose ledger the audit reads and the invariants it will judge ("" and (): none)."""
    if target.audit is not None:
        gaps, later = planned_gaps(
            target.audit.ledger, credit_slo=experiment.audit.credit_slo is not None
        )
        unsure = {"late_credits"} if later is not None else set()
        judged = tuple(n for n in AUDIT_METRICS if n not in gaps and n not in unsure)
        return "the team's ledger (audit.ledger)", judged
    if any(s not in endpoints.services for s in _LEDGER_SERVICES):
        return "", ()
    skip = set() if "eligibility" in endpoints.services else {"lost_entitlements"}
    if experiment.audit.credit_slo is None:
        skip.add("late_credits")
    return "the services' /ledger", tuple(n for n in AUDIT_METRICS if n not in skip)


def _proxy_names(url: str) -> list[str]:
    with ToxiproxyClient(url) as client:
        return list(client.proxies())


def _check_proxies(target: AttachTarget, proxies_of: Callable[[str], Iterable[str]]) -> None:
    for index, server in enumerate(target.toxiproxy):
        present = set(proxies_of(server.url))
        for dependency, name in server.proxies.items():
            if name not in present:
                have = ", ".join(sorted(present)) or "none"
                raise SafetyRefusal(
                    f"toxiproxy[{index}] at {server.url} has no proxy named {name!r} (for "
                    f"{dependency}); it has: {have}"
                )


def _where(target: AttachTarget) -> str:
    return f" ({target.source})" if target.source is not None else ""
