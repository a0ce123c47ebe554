"""What one buyer's order is, as HTTP requests: the ``journey:`` of a target or an experiment.

    journey: agent-buyer                      # the built-in (the stub stack's POST /orders)
    journey: {python: journeys/shop.py:buy}   # a function drives the client itself
    journey:                                  # or steps, in order, each depending on the last
      vars: {sku: {choice: [boba-l, tea-m]}, qty: {int: [1, 3]}}
      steps:
        - name: checkout
          request: {method: POST, path: /api/v2/checkout,
                    headers: {Idempotency-Key: "{{order_key}}"},
                    json: {sku: "{{sku}}", quantity: "{{qty}}", ref: "{{run_id}}"}}
          expect: {status: [201]}
          extract: {checkout_id: $.checkout.id}
        - name: confirm
          request: {method: GET, path: "/api/v2/checkout/{{checkout_id}}"}
          poll: {every: 200ms, timeout: 10s, until: {$.checkout.status: confirmed},
                 fail_if: {$.checkout.status: failed}}
      order_id: "{{checkout_id}}"

Mistakes are ``PydanticCustomError("journey", ...)`` whose context carries the ``loc`` below
the journey, so the target and experiment loaders point at the file, line and key.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from chaoskit.experiment.durations import PositiveDuration
from chaoskit.journey.paths import PathSyntaxError, compile_path
from chaoskit.journey.template import TemplateSyntaxError, compile_text, template_names
from chaoskit.observe.metrics import FAILURE_STEPS as STUB_FAILURE_STEPS

__all__ = [
    "BUILTIN_JOURNEYS",
    "BUILTIN_VARS",
    "Condition",
    "Expect",
    "JourneyConfig",
    "Poll",
    "Step",
    "StepRequest",
    "VarSpec",
    "journey_problem",
]

BUILTIN_JOURNEYS: tuple[str, ...] = ("agent-buyer",)
# Every attempt has these; the agent buyer's own words come from its seeded intent.
BUILTIN_VARS: tuple[str, ...] = (
    "run_id",
    "intent_id",
    "user_id",
    "attempt",
    "order_key",
    "text",
    "item",
    "spec",
    "place",
    "deadline_min",
)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_STEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_PYTHON_REF = re.compile(r"^(?P<file>.+\.py):(?P<function>[A-Za-z_][A-Za-z0-9_]*)$")
_CONDITION_KEYS = frozenset({"equals", "in", "exists", "not"})


def journey_problem(message: str, *loc: str | int) -> PydanticCustomError:
    """A validation problem at ``loc`` below the model that raises it."""
    return PydanticCustomError("journey", "{message}", {"message": message, "loc": loc})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VarSpec(_Model):
    """A seeded per-intent value: exactly one of ``choice``, ``int`` or ``uuid``."""

    choice: list[str | int | float | bool] | None = Field(default=None, min_length=1)
    int_range: tuple[int, int] | None = Field(default=None, alias="int")
    uuid: bool = False

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"uuid": True} if data == "uuid" else data

    @model_validator(mode="after")
    def _one_kind(self) -> VarSpec:
        given = [self.choice is not None, self.int_range is not None, self.uuid]
        if sum(given) != 1:
            raise journey_problem("expected exactly one of choice: [..], int: [lo, hi] or uuid")
        if self.int_range is not None and self.int_range[0] > self.int_range[1]:
            raise journey_problem("int: expected [lo, hi] with lo <= hi", "int")
        return self


Condition = Any  # a scalar (equals) or {equals | in | exists | not}; checked by _conditions


def _conditions(value: dict[str, Any]) -> dict[str, Any]:
    for path, condition in value.items():
        try:
            compile_path(path)
        except PathSyntaxError as exc:
            raise journey_problem(str(exc), path) from None
        if isinstance(condition, dict):
            unknown = set(condition) - _CONDITION_KEYS
            if unknown or len(condition) != 1:
                raise journey_problem(
                    "expected a value, or one of {equals: v}, {in: [..]}, {exists: true|false},"
                    " {not: v}",
                    path,
                )
            if "in" in condition and not isinstance(condition["in"], list):
                raise journey_problem("in: expected a list of values", path, "in")
            if "exists" in condition and not isinstance(condition["exists"], bool):
                raise journey_problem("exists: expected true or false", path, "exists")
        elif isinstance(condition, list):
            raise journey_problem("expected a value; for several, write {in: [..]}", path)
    return value


class StepRequest(_Model):
    """One HTTP request; every string may hold ``{{var}}`` references."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    path: str = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    body: str | None = None
    form: dict[str, str] | None = None
    timeout: PositiveDuration | None = None  # seconds; the behaviour's request_timeout also holds

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        # Only a path: every request goes to the target's own gateway, on the allow-list.
        if not value.startswith("/"):
            raise journey_problem(
                "expected a path starting with / (requests go to the target's gateway url)"
            )
        return value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _HEADER_NAME.match(name):
                raise journey_problem(f"{name!r} is not a valid HTTP header name", name)
            if "\r" in value or "\n" in value:
                raise journey_problem("a header value must be one line", name)
        return headers

    @model_validator(mode="after")
    def _one_body(self) -> StepRequest:
        bodies = (("json", self.json_body), ("body", self.body), ("form", self.form))
        given = [name for name, value in bodies if value is not None]
        if len(given) > 1:
            raise journey_problem(f"give one of json, body or form, not {' and '.join(given)}")
        return self


class Expect(_Model):
    """What a good answer is: one of ``status``, and every body condition holding."""

    status: list[int] = Field(default_factory=lambda: [200], min_length=1)
    body: dict[str, Condition] = Field(default_factory=dict)

    @field_validator("status")
    @classmethod
    def _statuses(cls, value: list[int]) -> list[int]:
        for index, status in enumerate(value):
            if not 100 <= status <= 599:
                raise journey_problem(f"expected an HTTP status 100..599, got {status}", index)
        return value

    @field_validator("body")
    @classmethod
    def _body(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _conditions(value)


class Poll(_Model):
    """Repeat the request every ``every`` until ``until`` holds (or ``fail_if``, or timeout)."""

    every: PositiveDuration
    timeout: PositiveDuration
    until: dict[str, Condition] = Field(min_length=1)
    fail_if: dict[str, Condition] = Field(default_factory=dict)

    @field_validator("until", "fail_if")
    @classmethod
    def _paths(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _conditions(value)


class Step(_Model):
    """One request of the journey; its ``name`` is the ``step`` its failures count under."""

    name: str
    request: StepRequest
    expect: Expect = Field(default_factory=Expect)
    extract: dict[str, str] = Field(default_factory=dict)  # variable -> JSONPath
    poll: Poll | None = None
    # JSONPath to a failure body's own step name (the stub gateway's {"step": "rider"});
    # the failure counts under it when present, under ``name`` otherwise.
    failure_step: str | None = None
    # What a timed-out request counts under (default: the step's name).
    timeout_step: str | None = None

    @field_validator("name", "timeout_step")
    @classmethod
    def _step_name(cls, value: str | None) -> str | None:
        if value is not None and not _STEP_NAME.match(value):
            raise journey_problem(
                "expected a step name of letters, digits, '-', '_' or '.' (at most 64)"
            )
        return value

    @field_validator("extract")
    @classmethod
    def _extract(cls, value: dict[str, str]) -> dict[str, str]:
        for name, path in value.items():
            if not _NAME.match(name):
                raise journey_problem("expected a variable name like checkout_id", name)
            try:
                compile_path(path)
            except PathSyntaxError as exc:
                raise journey_problem(str(exc), name) from None
        return value

    @field_validator("failure_step")
    @classmethod
    def _failure_path(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compile_path(value)
            except PathSyntaxError as exc:
                raise journey_problem(str(exc)) from None
        return value


class JourneyConfig(_Model):
    """A journey: built-in by name, a Python function, or steps."""

    builtin: Literal["agent-buyer"] | None = None
    python: str | None = None  # "path/to/file.py:function", relative to the file naming it
    name: str = "journey"
    vars: dict[str, VarSpec] = Field(default_factory=dict)
    steps: list[Step] = Field(default_factory=list)
    order_id: str = "{{order_key}}"  # names the order in the team's ledger (for the audit)
    # A Python journey's step names (what it passes to Outcome.failed), or the names a
    # step's failure_step may read from a body: each becomes a failures.<step> metric.
    step_names: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _by_name(cls, data: Any) -> Any:
        if isinstance(data, str):
            if data not in BUILTIN_JOURNEYS:
                raise journey_problem(
                    f"unknown built-in journey {data!r}; expected {', '.join(BUILTIN_JOURNEYS)}"
                    ", a mapping with steps, or {python: file.py:function}"
                )
            return {"builtin": data}
        return data

    @field_validator("python")
    @classmethod
    def _python_ref(cls, value: str | None) -> str | None:
        if value is not None and not _PYTHON_REF.match(value):
            raise journey_problem(f"expected path/to/file.py:function, got {value!r}")
        return value

    @field_validator("step_names")
    @classmethod
    def _step_names(cls, value: list[str]) -> list[str]:
        for index, name in enumerate(value):
            if not _STEP_NAME.match(name):
                raise journey_problem(
                    "expected a step name of letters, digits, '-', '_' or '.' (at most 64)", index
                )
        return value

    @field_validator("vars")
    @classmethod
    def _var_names(cls, value: dict[str, VarSpec]) -> dict[str, VarSpec]:
        for name in value:
            if not _NAME.match(name):
                raise journey_problem("expected a variable name like sku", name)
            if name in BUILTIN_VARS:
                raise journey_problem(f"{name!r} is a built-in variable", name)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> JourneyConfig:
        kinds = [k for k, on in (("builtin", self.builtin), ("python", self.python)) if on]
        if self.steps:
            kinds.append("steps")
        if len(kinds) != 1:
            raise journey_problem(
                "expected steps, {python: file.py:function} or a built-in name"
                + (f", not {' and '.join(kinds)}" if kinds else "")
            )
        if self.steps:
            self._check_steps()
        return self

    @property
    def python_ref(self) -> tuple[str, str] | None:
        """(file, function) of a Python journey."""
        if self.python is None:
            return None
        found = _PYTHON_REF.match(self.python)
        assert found is not None
        return found.group("file"), found.group("function")

    def failure_steps(self) -> tuple[str, ...]:
        """The names failures count under: ``failures.<step>`` for each."""
        if self.builtin is not None:
            return STUB_FAILURE_STEPS
        if self.python is not None:
            return (*self.step_names, "journey", "timeout")
        names = [step.name for step in self.steps]
        names += [step.timeout_step for step in self.steps if step.timeout_step]
        return tuple(dict.fromkeys([*names, *self.step_names]))

    def resolved(self, base_dir: Path) -> JourneyConfig:
        """This journey with a Python journey's file made absolute against ``base_dir``."""
        ref = self.python_ref
        if ref is None or Path(ref[0]).is_absolute():
            return self
        return self.model_copy(update={"python": f"{(base_dir / ref[0]).resolve()}:{ref[1]}"})

    def _check_steps(self) -> None:
        known = set(BUILTIN_VARS) | set(self.vars)
        names: dict[str, int] = {}
        for index, step in enumerate(self.steps):
            where: tuple[str | int, ...] = ("steps", index)
            if step.name in names:
                raise journey_problem(
                    f"step name {step.name!r} is already steps[{names[step.name]}]",
                    *where,
                    "name",
                )
            names[step.name] = index
            request = step.request
            checks: list[tuple[tuple[str | int, ...], Any, bool]] = [
                (("request", "path"), request.path, True),
                *((("request", "headers", n), v, False) for n, v in request.headers.items()),
                (("request", "json"), request.json_body, False),
                (("request", "body"), request.body, False),
                *((("request", "form", n), v, False) for n, v in (request.form or {}).items()),
            ]
            for loc, value, is_path in checks:
                if value is None:
                    continue
                for text_loc, text in _strings(value, ()):
                    try:
                        compile_text(text, path=is_path)
                    except TemplateSyntaxError as exc:
                        raise journey_problem(str(exc), *where, *loc, *text_loc) from None
                for ref_loc, name in template_names(value):
                    if name not in known:
                        raise journey_problem(
                            f"unknown variable {{{{{name}}}}}{_known_hint(name, known)}",
                            *where,
                            *loc,
                            *ref_loc,
                        )
            for name in step.extract:
                if name in known:
                    raise journey_problem(
                        f"{name!r} is already a variable", *where, "extract", name
                    )
            known |= set(step.extract)
        try:
            compile_text(self.order_id)
        except TemplateSyntaxError as exc:
            raise journey_problem(str(exc), "order_id") from None
        for _, name in template_names(self.order_id):
            if name not in known:
                raise journey_problem(
                    f"unknown variable {{{{{name}}}}}{_known_hint(name, known)}", "order_id"
                )


def _strings(value: Any, loc: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, str):
        return [(loc, value)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(v, (*loc, str(k)))]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(v, (*loc, i))]
    return []


def _known_hint(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    if close:
        return f' (did you mean "{close[0]}"?)'
    return f"; known here: {', '.join(sorted(known))}"
