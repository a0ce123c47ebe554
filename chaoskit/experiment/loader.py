"""Reads an experiment file and points every mistake at its line: ``file:line:col: field: ...``.

The YAML is read with ruamel's round-trip loader, which keeps the position of every key
and item, so a pydantic error's ``loc`` can be mapped back to where the user typed it.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml.comments import CommentedMap

from chaoskit._yaml import Loc, Place, load_yaml, plain, read_input
from chaoskit._yaml import show as _show
from chaoskit.errors import ChaoskitError, ExperimentError
from chaoskit.experiment.durations import format_duration, format_duration_approx
from chaoskit.experiment.limits import (
    MAX_PEAK_RATE,
    MAX_PEAK_USERS,
    MAX_RUN_S,
    SHAPE_PROBE_TIMEOUT_S,
)
from chaoskit.experiment.models import (
    CONTAINER_FAULT_KINDS,
    DOMAIN_FAULT_KINDS,
    NETWORK_FAULT_KINDS,
    SHAPE_KINDS,
    ConstantShape,
    CustomShape,
    Experiment,
    RampShape,
    ReplayShape,
    Shape,
    SpikeShape,
    StagesShape,
    StepShape,
    ViralShape,
    did_you_mean,
)
from chaoskit.load.shape_probe import ShapeProbeFailed, probe_custom_shape
from chaoskit.load.shapes import build_shape, format_amount
from chaoskit.stack.target import BUILTIN_TARGETS, load_target

__all__ = ["load_experiment", "parse_experiment"]

_FAULT_KINDS = (*NETWORK_FAULT_KINDS, *DOMAIN_FAULT_KINDS, *CONTAINER_FAULT_KINDS)


def load_experiment(
    path: Path | str, *, try_custom_shape: bool = True, extra_metrics: Iterable[str] = ()
) -> Experiment:
    """The validated experiment in ``path``; any problem raises one ExperimentError.

    Beyond the text itself (``parse_experiment``), what the file points at is checked: the
    target file it names must exist and be valid, and a custom LoadTestShape is imported and
    tried in a child process (``try_custom_shape``), so a broken one is refused here rather
    than once the stack is up. ``extra_metrics``: metric names a target given elsewhere
    (``--target``) adds with its PromQL queries; the experiment's own target file's are
    found here.
    """
    source = Path(path)
    text = read_input(source, error=ExperimentError, what="experiment")
    experiment = parse_experiment(text, path=source, extra_metrics=extra_metrics)
    tree = load_yaml(text, path=source, error=ExperimentError)  # positions, for the messages
    _check_target(experiment, tree, source)
    if try_custom_shape:
        _probe_custom_shape(experiment, tree, source)
    return experiment


def parse_experiment(
    text: str, *, path: Path | str, extra_metrics: Iterable[str] = ()
) -> Experiment:
    """Validate experiment YAML ``text``; ``path`` names it in errors and anchors relative files."""
    source = Path(path)
    tree = load_yaml(text, path=source, error=ExperimentError)
    if not isinstance(tree, CommentedMap):
        raise ExperimentError(
            f"expected a mapping of experiment keys (version, name, load, ...), got {_show(tree)}",
            path=source,
            line=1,
            col=1,
        )
    try:
        names = [*extra_metrics, *_declared_metrics(tree, source)]
        experiment = Experiment.model_validate(
            plain(tree), context={"source_path": source, "extra_metrics": names}
        )
    except ValidationError as exc:
        raise _explain(exc, tree, source) from None
    _check_files(experiment, tree, source)
    return experiment


class _Place(Place):
    """A place in an experiment file."""

    def __init__(self, tree: CommentedMap, loc: Loc, *, at_key: bool = False) -> None:
        super().__init__(tree, loc, model=Experiment, at_key=at_key)


# ---------------------------------------------------------------- messages


def _quoted_options(text: str) -> list[str]:
    return re.findall(r"'([^']*)'", text)


def _describe(error: ErrorDetails, loc: Loc, tree: CommentedMap) -> tuple[str, bool]:
    """The message for one error, and whether it is about a key (not a value)."""
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    value = error["input"]
    got = f", got {_show(value)}"
    if kind == "missing":
        return "required key is missing", False
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _Place(tree, loc[:-1]).allowed_keys()
        hint = did_you_mean(key, allowed)
        listing = f"; allowed here: {', '.join(allowed)}" if allowed and not hint else ""
        return f"unknown key{hint}{listing}", True
    if kind == "union_tag_invalid":
        tags = _quoted_options(str(ctx.get("expected_tags", "")))
        tag = str(ctx.get("tag", value))
        return (
            f'unknown kind "{tag}"{did_you_mean(tag, tags)}; expected one of: {", ".join(tags)}',
            False,
        )
    if kind == "union_tag_not_found":
        kinds = SHAPE_KINDS if "shape" in loc[-2:-1] else _FAULT_KINDS
        return f"required key is missing; expected one of: {', '.join(kinds)}", False
    if kind == "literal_error":
        options = _quoted_options(str(ctx.get("expected", "")))
        if not options:
            return f"expected {ctx.get('expected', '?')}{got}", False
        hint = did_you_mean(str(value), options) if isinstance(value, str) else ""
        return f"expected one of {', '.join(options)}{got}{hint}", False
    if kind in ("experiment", "journey"):
        return str(ctx.get("message", error["msg"])), False
    if kind == "duration":
        return f"{error['msg']}{got}", False
    simple = {
        "int_type": "expected an integer",
        "int_parsing": "expected an integer",
        "int_from_float": "expected an integer",
        "float_type": "expected a number",
        "float_parsing": "expected a number",
        "finite_number": "expected a finite number",
        "bool_type": "expected true or false",
        "bool_parsing": "expected true or false",
        "string_type": "expected text",
        "list_type": "expected a list",
        "model_type": "expected a mapping of keys",
        "model_attributes_type": "expected a mapping of keys",
        "dict_type": "expected a mapping of keys",
        "string_too_short": "expected non-empty text",
    }
    if kind in simple:
        return simple[kind] + got, False
    bounds = {
        "greater_than_equal": (">=", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("<=", "le"),
        "less_than": ("<", "lt"),
    }
    if kind in bounds:
        sign, key = bounds[kind]
        return f"expected a number {sign} {ctx.get(key)}{got}", False
    if kind == "too_long":
        return (
            f"expected at most {ctx.get('max_length')} item(s), got {ctx.get('actual_length')}",
            False,
        )
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length')} item(s){got}", False
    if kind == "string_pattern_mismatch":
        return f"expected text matching {ctx.get('pattern')}{got}", False
    message = error["msg"]
    return message[:1].lower() + message[1:] + got, False


def _explain(exc: ValidationError, tree: CommentedMap, source: Path) -> ExperimentError:
    problems = []
    for error in exc.errors(include_url=False):
        loc: Loc = tuple(error["loc"])
        ctx = error.get("ctx") or {}
        if error["type"] in ("experiment", "journey") and ctx.get("loc"):
            loc = (*loc, *ctx["loc"])
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, "kind")
        message, about_key = _describe(error, loc, tree)
        place = _Place(tree, loc, at_key=about_key)
        # A missing key points at its parent, often near the top: a wrong key says more.
        rank = 1 if error["type"] in ("missing", "union_tag_not_found") else 0
        problems.append((rank, place.line, place.col, place.path, message))
    problems.sort(key=lambda p: p[:3])
    _, line, col, field_path, message = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    text = f"{field_path}: {message}{more}" if field_path else f"{message}{more}"
    return ExperimentError(text, path=source, line=line, col=col)


def _declared_metrics(tree: CommentedMap, source: Path) -> list[str]:
    """Metric names the experiment's PromQL queries and its target file's add."""
    names: list[str] = []
    metrics = tree.get("metrics")
    prometheus = metrics.get("prometheus") if isinstance(metrics, Mapping) else None
    queries = prometheus.get("queries") if isinstance(prometheus, Mapping) else None
    if isinstance(queries, Mapping):
        names.extend(str(name) for name in queries)
    target = tree.get("target")
    if isinstance(target, str) and target.endswith((".yaml", ".yml")):
        from chaoskit.stack.target import load_target

        # The target file's own problems are told when it is loaded for the run.
        with contextlib.suppress(ChaoskitError):
            names.extend(load_target(source.parent / target).metric_names())
    return names


# ---------------------------------------------------------------- files the experiment names


def _check_files(experiment: Experiment, tree: CommentedMap, source: Path) -> None:
    shape = experiment.load.shape
    shape_loc: Loc = ("load", "shape")
    if isinstance(shape, ReplayShape):
        csv_path = Path(shape.file)
        csv_path = csv_path if csv_path.is_absolute() else experiment.base_dir / csv_path
        if not csv_path.is_file():
            place = _Place(tree, (*shape_loc, "file"))
            raise ExperimentError(
                f"{place.path}: no such replay CSV file {str(csv_path)!r}",
                path=source,
                line=place.line,
                col=place.col,
            )
    if isinstance(shape, CustomShape):
        where = shape.class_.rsplit(":", 1)[0]
        if where.endswith(".py") or "/" in where:
            class_file = Path(where)
            class_file = class_file if class_file.is_absolute() else experiment.base_dir / where
            if not class_file.is_file():
                place = _Place(tree, (*shape_loc, "class"))
                raise ExperimentError(
                    f"{place.path}: no such file {str(class_file)!r}",
                    path=source,
                    line=place.line,
                    col=place.col,
                )
    journey = experiment.load.journey
    if journey is not None and journey.python_ref is not None:
        hook_file = Path(journey.python_ref[0])
        hook_file = hook_file if hook_file.is_absolute() else experiment.base_dir / hook_file
        if not hook_file.is_file():
            place = _Place(tree, ("load", "journey", "python"))
            raise ExperimentError(
                f"{place.path}: no such file {str(hook_file)!r}",
                path=source,
                line=place.line,
                col=place.col,
            )
    curve = build_shape(shape, base_dir=experiment.base_dir)
    experiment._curve = curve  # the plan stage reuses it
    if curve.duration_s <= 0:
        _refuse(tree, source, shape_loc, "the shape lasts 0s; give it a length")
    if curve.duration_s > MAX_RUN_S:
        _refuse(
            tree,
            source,
            shape_loc,
            f"the shape lasts {format_duration(curve.duration_s)}; the limit is "
            f"{format_duration(MAX_RUN_S)} (a rehearsal is hours, not days)",
        )
    _check_peak(experiment, curve.peak, tree, source)
    _check_timing(experiment, curve.duration_s, tree, source)


def _refuse(tree: CommentedMap, source: Path, loc: Loc, message: str) -> NoReturn:
    place = _Place(tree, loc)
    raise ExperimentError(f"{place.path}: {message}", path=source, line=place.line, col=place.col)


def _peak_loc(shape: Shape) -> Loc:
    """The key that holds a shape's highest value, to point at when it is too high."""
    base: Loc = ("load", "shape")
    if isinstance(shape, ConstantShape):
        return (*base, shape.value_key)
    if isinstance(shape, StagesShape):
        top = max(range(len(shape.stages)), key=lambda i: shape.stages[i].value)
        return (*base, "stages", top, shape.stages[top].value_key)
    if isinstance(shape, RampShape):
        return (*base, "from" if shape.from_ > shape.to else "to")
    if isinstance(shape, StepShape):
        return (*base, "step" if shape.step > 0 else "start")
    if isinstance(shape, SpikeShape):
        return (*base, "peak" if shape.peak >= shape.base else "base")
    if isinstance(shape, ViralShape):
        return (*base, "milestones" if shape.milestones is not None else "cap")
    if isinstance(shape, ReplayShape):
        return (*base, "file")
    return base


def _check_peak(experiment: Experiment, peak: float, tree: CommentedMap, source: Path) -> None:
    limit = MAX_PEAK_RATE if experiment.load.model == "open" else MAX_PEAK_USERS
    if math.isnan(peak) or peak <= limit:
        return
    _refuse(
        tree,
        source,
        _peak_loc(experiment.load.shape),
        f"the shape peaks at {format_amount(peak)} {experiment.value_unit}; the limit is "
        f"{format_amount(limit)} {experiment.value_unit}",
    )


def _check_timing(
    experiment: Experiment, duration: float, tree: CommentedMap, source: Path
) -> None:
    """Refuse timings the run can never honour: they are typos, not plans."""
    load_end = format_duration_approx(duration)
    for index, fault in enumerate(experiment.faults):
        if fault.when is None and fault.at >= duration:
            _refuse(
                tree,
                source,
                ("faults", index, fault.kind, "at"),
                f"the fault starts at {format_duration(fault.at)}, when the load ({load_end}) "
                "is over: it would never be applied",
            )
        if fault.when is not None and fault.when.for_ >= duration:
            _refuse(
                tree,
                source,
                ("faults", index, fault.kind, "when", "for"),
                f"the condition must hold {format_duration(fault.when.for_)}, as long as the "
                f"whole load ({load_end}) or longer: the fault would never be applied",
            )
    for index, guardrail in enumerate(experiment.guardrails):
        if guardrail.for_ >= duration:
            _refuse(
                tree,
                source,
                ("guardrails", index, "for"),
                f"the guardrail waits {format_duration(guardrail.for_)}, as long as the whole "
                f"load ({load_end}) or longer: it could never stop the run",
            )


def _check_target(experiment: Experiment, tree: CommentedMap, source: Path) -> None:
    """A target that names a file: the file exists and is a valid target file."""
    name = experiment.target
    if name in BUILTIN_TARGETS:
        return
    path = Path(name)
    path = path if path.is_absolute() else experiment.base_dir / path
    if not path.is_file():
        _refuse(
            tree,
            source,
            ("target",),
            f"no such target file {str(path)!r}; expected {' or '.join(BUILTIN_TARGETS)} or "
            "a target YAML file (relative to the experiment)",
        )
    load_target(path)  # its own mistakes point into it


def _probe_custom_shape(experiment: Experiment, tree: CommentedMap, source: Path) -> None:
    """Import and try a custom LoadTestShape in a child process before anything starts."""
    shape = experiment.load.shape
    if not isinstance(shape, CustomShape):
        return
    loc: Loc = ("load", "shape", "class")
    try:
        probe = probe_custom_shape(
            shape.class_,
            base_dir=experiment.base_dir,
            duration_s=shape.for_,
            timeout_s=SHAPE_PROBE_TIMEOUT_S,
        )
    except ShapeProbeFailed as exc:
        _refuse(tree, source, loc, str(exc))
    if probe.peak_users > MAX_PEAK_USERS:
        _refuse(
            tree,
            source,
            loc,
            f"tick() asks for {format_amount(probe.peak_users)} users; the limit is "
            f"{format_amount(MAX_PEAK_USERS)}",
        )
