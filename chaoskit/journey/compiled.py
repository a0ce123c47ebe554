"""A journey compiled for one run: templates, JSONPaths and conditions ready, seeded variables.

Built once per engine process from the ``JourneyConfig`` in the load spec; the engine's
driver (``chaoskit.load.journey_run``) only renders and matches per request.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chaoskit.journey.models import JourneyConfig, Step, VarSpec
from chaoskit.journey.paths import MISSING, BodyPath, compile_path
from chaoskit.journey.template import (
    FormTemplate,
    Template,
    compile_form,
    compile_json,
    compile_text,
)

__all__ = ["CompiledJourney", "CompiledStep", "Match", "compile_journey"]

Match = Callable[[Any], bool]


def _condition(path: str, expected: Any) -> Match:
    first = compile_path(path).first
    if isinstance(expected, dict):
        ((op, operand),) = expected.items()
        if op == "in":
            options = list(operand)
            return lambda body: first(body) in options
        if op == "exists":
            want = bool(operand)
            return lambda body: (first(body) is not MISSING) is want
        if op == "not":
            return lambda body: first(body) != operand
        expected = operand  # equals
    return lambda body: first(body) == expected


def _all(conditions: Mapping[str, Any]) -> Match | None:
    checks = tuple(_condition(path, expected) for path, expected in conditions.items())
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    return lambda body: all(check(body) for check in checks)


@dataclass(frozen=True, slots=True, kw_only=True)
class CompiledStep:
    """One step, ready to send and judge."""

    name: str
    method: str
    path: Template
    request_name: str  # the path as written: Locust's stats group by it, not per id
    headers: tuple[tuple[str, Template], ...]
    body: Template | FormTemplate | None
    content_type: str | None
    timeout_s: float | None
    statuses: frozenset[int]
    check: Match | None  # expect.body
    extract: tuple[tuple[str, BodyPath], ...]
    poll_every_s: float
    poll_timeout_s: float
    poll_until: Match | None
    poll_fail_if: Match | None
    failure_step: BodyPath | None
    timeout_step: str
    needs_body: bool  # a good answer's body is read (conditions, extraction, polling)


def _compile_step(step: Step, default_headers: Mapping[str, str]) -> CompiledStep:
    request = step.request
    body: Template | FormTemplate | None = None
    content_type: str | None = None
    if request.json_body is not None:
        body, content_type = compile_json(request.json_body), "application/json"
    elif request.form is not None:
        body, content_type = compile_form(request.form), "application/x-www-form-urlencoded"
    elif request.body is not None:
        body = compile_text(request.body)
    headers = dict(default_headers)
    if content_type and not any(n.lower() == "content-type" for n in request.headers):
        headers["Content-Type"] = content_type
    headers.update(request.headers)
    poll = step.poll
    check = _all(step.expect.body)
    until = _all(poll.until) if poll else None
    fail_if = _all(poll.fail_if) if poll else None
    return CompiledStep(
        name=step.name,
        method=request.method,
        path=compile_text(request.path, path=True),
        request_name=request.path,
        headers=tuple((name, compile_text(value)) for name, value in headers.items()),
        body=body,
        content_type=content_type,
        timeout_s=request.timeout,
        statuses=frozenset(step.expect.status),
        check=check,
        extract=tuple((name, compile_path(path)) for name, path in step.extract.items()),
        poll_every_s=poll.every if poll else 0.0,
        poll_timeout_s=poll.timeout if poll else 0.0,
        poll_until=until,
        poll_fail_if=fail_if,
        failure_step=compile_path(step.failure_step) if step.failure_step else None,
        timeout_step=step.timeout_step or step.name,
        needs_body=bool(check or step.extract or poll),
    )


def _var_maker(spec: VarSpec) -> Callable[[bytes], Any]:
    if spec.choice is not None:
        options = tuple(spec.choice)
        return lambda dice: options[int.from_bytes(dice[:8], "big") % len(options)]
    if spec.int_range is not None:
        low, high = spec.int_range
        span = high - low + 1
        return lambda dice: low + int.from_bytes(dice[:8], "big") % span
    return lambda dice: str(uuid.UUID(bytes=dice[:16], version=4))


@dataclass(frozen=True, slots=True, kw_only=True)
class CompiledJourney:
    """A step journey ready for the driver."""

    name: str
    steps: tuple[CompiledStep, ...]
    order_id: Template
    seed: int
    variables: tuple[tuple[str, Callable[[bytes], Any]], ...]

    def seeded_vars(self, intent_key: str) -> dict[str, Any]:
        """The journey's own ``vars`` for one intent: the same seed and key, the same values."""
        if not self.variables:
            return {}
        values: dict[str, Any] = {}
        for block in range(0, len(self.variables), 4):
            digest = hashlib.blake2b(
                f"{self.seed}:{intent_key}:vars:{block}".encode(), digest_size=64
            ).digest()
            for offset, (name, make) in enumerate(self.variables[block : block + 4]):
                values[name] = make(digest[offset * 16 : offset * 16 + 16])
        return values


def compile_journey(
    config: JourneyConfig, *, seed: int, headers: Mapping[str, str] | None = None
) -> CompiledJourney:
    """Compile a step journey; ``headers`` (the target's, env-expanded) go on every request."""
    if not config.steps:
        raise ValueError("compile_journey needs a journey with steps")
    return CompiledJourney(
        name=config.name,
        steps=tuple(_compile_step(step, headers or {}) for step in config.steps),
        order_id=compile_text(config.order_id),
        seed=seed,
        variables=tuple((name, _var_maker(spec)) for name, spec in config.vars.items()),
    )
