"""summary.json: the models, the shipped JSON Schema, atomic writes; events.jsonl: the journal."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import make_summary
from pydantic import ValidationError

from chaoskit.events import EventBus, LogMessage, RunStarted, Sample
from chaoskit.report.summary import (
    SCHEMA_PATH,
    JournalWriter,
    Summary,
    SummaryWriter,
    summary_json_schema,
)

REGENERATE = (
    "python -c 'import json; from chaoskit.report.summary import *; "
    'SCHEMA_PATH.write_text(json.dumps(summary_json_schema(), indent=2) + "\\n")\''
)


# A small JSON Schema (2020-12) validator: the subset pydantic emits. Kept strict on purpose:
# a keyword it does not know fails the test, so the schema cannot silently outgrow it.
_KNOWN = {
    "$schema", "$id", "$defs", "$ref", "title", "description", "default", "type", "properties",
    "required", "additionalProperties", "items", "prefixItems", "minItems", "maxItems", "enum",
    "const", "anyOf", "minimum", "propertyNames",
}  # fmt: skip
_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def validate(instance: Any, schema: dict[str, Any], root: dict[str, Any], path: str = "$") -> None:
    unknown = set(schema) - _KNOWN
    assert not unknown, f"validator does not know {unknown} at {path}"
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        validate(instance, root["$defs"][name], root, path)
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                validate(instance, option, root, path)
                break
            except AssertionError as exc:
                errors.append(str(exc))
        else:
            raise AssertionError(f"{path}: matches no anyOf option: {errors}")
    if "const" in schema:
        assert instance == schema["const"], f"{path}: {instance!r} != const {schema['const']!r}"
    if "enum" in schema:
        assert instance in schema["enum"], f"{path}: {instance!r} not in {schema['enum']}"
    kind = schema.get("type")
    if kind is not None:
        if kind == "integer":
            ok = isinstance(instance, int) and not isinstance(instance, bool)
        elif kind == "number":
            ok = isinstance(instance, int | float) and not isinstance(instance, bool)
        else:
            ok = isinstance(instance, _TYPES[kind]) and not (
                kind != "boolean" and isinstance(instance, bool)
            )
        assert ok, f"{path}: expected {kind}, got {instance!r}"
    if "minimum" in schema:
        assert instance >= schema["minimum"], f"{path}: {instance} < {schema['minimum']}"
    if isinstance(instance, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            assert key in instance, f"{path}: missing required {key!r}"
        for key, value in instance.items():
            if key in props:
                validate(value, props[key], root, f"{path}.{key}")
            else:
                extra = schema.get("additionalProperties", True)
                assert extra is not False, f"{path}: unexpected property {key!r}"
                if isinstance(extra, dict):
                    validate(value, extra, root, f"{path}.{key}")
                if "propertyNames" in schema:
                    validate(key, schema["propertyNames"], root, f"{path}.<{key}>")
    if isinstance(instance, list):
        if "minItems" in schema:
            assert len(instance) >= schema["minItems"], f"{path}: too few items"
        if "maxItems" in schema:
            assert len(instance) <= schema["maxItems"], f"{path}: too many items"
        prefix = schema.get("prefixItems", [])
        for i, item in enumerate(instance):
            sub = prefix[i] if i < len(prefix) else schema.get("items")
            if sub is not None:
                validate(item, sub, root, f"{path}[{i}]")


def test_shipped_schema_is_the_models_schema() -> None:
    shipped = json.loads(SCHEMA_PATH.read_text())
    assert shipped == summary_json_schema(), f"summary.schema.json is stale; run: {REGENERATE}"


def test_written_summary_validates_against_the_shipped_schema(run_folder: Path) -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    produced = json.loads((run_folder / "summary.json").read_text())
    validate(produced, schema, schema)
    assert produced["schema"] == 1
    assert produced["plan"]["load_phases"][0]["from"] == 20.0
    assert produced["started_at"] == "2026-01-01T12:00:00Z"  # epoch seconds became ISO 8601


@pytest.mark.parametrize(
    ("mutate", "complaint"),
    [
        (lambda s: s.pop("run_id"), "missing required 'run_id'"),
        (lambda s: s.update(verdict="fine"), "matches no anyOf"),
        (lambda s: s["audit"]["invariants"]["lost_orders"].update(count=-1), "< 0"),
        (lambda s: s.update(surprise=1), "unexpected property 'surprise'"),
        (lambda s: s["checks"][0].update(ok="yes"), "expected boolean"),
    ],
)
def test_schema_rejects_broken_summaries(run_folder: Path, mutate: Any, complaint: str) -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    produced = json.loads((run_folder / "summary.json").read_text())
    mutate(produced)
    with pytest.raises(AssertionError, match=re.escape(complaint)):
        validate(produced, schema, schema)


def test_models_refuse_unknown_keys() -> None:
    raw = json.loads(make_summary().to_json_text())
    raw["experiment"]["colour"] = "red"
    with pytest.raises(ValidationError, match="colour"):
        Summary.model_validate(raw)


def test_summary_round_trips_and_nan_becomes_null(tmp_path: Path) -> None:
    summary = make_summary()
    summary.metrics["latency_p99_ms"] = math.nan
    path = SummaryWriter(tmp_path).write(summary)
    raw = json.loads(path.read_text())
    assert raw["metrics"]["latency_p99_ms"] is None
    again = Summary.model_validate(raw)
    assert again.checks == summary.checks
    assert again.plan == summary.plan


def test_summary_writer_replaces_atomically(tmp_path: Path) -> None:
    writer = SummaryWriter(tmp_path)
    first = make_summary()
    writer.write(first)
    second = first.model_copy(update={"status": "completed", "verdict": "held"})
    writer.write(second)
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temp file left behind
    assert json.loads((tmp_path / "summary.json").read_text())["verdict"] == "held"


def test_journal_writes_one_parseable_line_per_event_even_with_nan(tmp_path: Path) -> None:
    bus = EventBus()
    journal = JournalWriter(tmp_path)
    bus.subscribe(journal)
    bus.emit(
        RunStarted(t=0.0, run_id="r1", experiment="e", target="local", duration_s=1.0, plan={})
    )
    bus.emit(Sample(t=1.0, metrics={"error_rate": math.nan, "orders": 3}))
    # Line-buffered: readable before close, as a live dashboard or a killed run needs.
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert len(lines) == 2
    sample = json.loads(lines[1])
    assert sample["type"] == "sample"
    assert sample["metrics"] == {"error_rate": None, "orders": 3}
    assert isinstance(sample["wall"], float)
    journal.close()
    journal.handle(LogMessage(t=2.0, level="info", message="after close"))  # dropped, not raised
    assert len((tmp_path / "events.jsonl").read_text().splitlines()) == 2
