"""junit.xml: each hypothesis check, guardrail and audit invariant a test case, for CI."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from chaoskit.report._format import describe, fmt
from chaoskit.report.rundir import RunFolder
from chaoskit.report.summary import Check

__all__ = ["render_junit", "write_junit"]


def _failure_text(check: Check) -> str:
    unit = describe(check.metric).unit
    value = fmt(check.value, unit)
    if check.value is None:
        return f"{check.metric} had no value in phase {check.phase or '-'}"
    if check.min is not None and check.value < check.min:
        return f"{check.metric} = {value} < min {fmt(check.min, unit)}"
    if check.max is not None and check.value > check.max:
        return f"{check.metric} = {value} > max {fmt(check.max, unit)}"
    limits = []
    if check.min is not None:
        limits.append(f"min {fmt(check.min, unit)}")
    if check.max is not None:
        limits.append(f"max {fmt(check.max, unit)}")
    return f"{check.metric} = {value} outside {' and '.join(limits) or 'its limits'}"


def _suite(root: ET.Element, name: str) -> ET.Element:
    return ET.SubElement(root, "testsuite", {"name": name})


def _case(suite: ET.Element, *, name: str, classname: str) -> ET.Element:
    return ET.SubElement(suite, "testcase", {"name": name, "classname": classname, "time": "0"})


def _count(suite: ET.Element) -> tuple[int, int, int, int]:
    cases = suite.findall("testcase")
    failures = sum(1 for c in cases if c.find("failure") is not None)
    errors = sum(1 for c in cases if c.find("error") is not None)
    skipped = sum(1 for c in cases if c.find("skipped") is not None)
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    suite.set("time", "0")
    return len(cases), failures, errors, skipped


def render_junit(run: RunFolder) -> str:
    """The verdicts as JUnit XML text: one testsuite per kind of check."""
    s = run.summary
    prefix = f"chaoskit.{s.experiment.name}"
    root = ET.Element("testsuites", {"name": f"chaoskit {s.experiment.name} {s.run_id}"})

    for kind in ("hypothesis", "guardrail"):
        suite = _suite(root, kind)
        for check in (c for c in s.checks if c.kind == kind):
            name = check.metric if check.phase is None else f"{check.metric} [{check.phase}]"
            case = _case(suite, name=name, classname=f"{prefix}.{kind}")
            if check.ok is None:
                ET.SubElement(case, "skipped", {"message": check.note or "not judged: no data"})
            elif not check.ok:
                text = _failure_text(check)
                failure = ET.SubElement(case, "failure", {"message": text, "type": kind})
                at = "" if check.t is None else f" at t={check.t:.1f} s"
                failure.text = f"{text}{at}"

    audit_suite = _suite(root, "audit")
    audit = s.audit
    if audit is None or audit.status == "skipped":
        case = _case(audit_suite, name="audit", classname=f"{prefix}.audit")
        reason = "no audit was run" if audit is None else audit.reason or "audit skipped"
        ET.SubElement(case, "skipped", {"message": reason})
    else:
        for name, invariant in audit.invariants.items():
            case = _case(audit_suite, name=name, classname=f"{prefix}.audit")
            if invariant.skipped is not None:
                ET.SubElement(case, "skipped", {"message": invariant.skipped})
            elif invariant.count:
                text = f"{name} = {invariant.count} > max 0"
                failure = ET.SubElement(case, "failure", {"message": text, "type": "audit"})
                failure.text = f"{text}\norder ids: {', '.join(invariant.order_ids) or '-'}"

    run_suite = _suite(root, "run")
    case = _case(run_suite, name="run completed", classname=f"{prefix}.run")
    if s.status == "error":
        # An environment failure means nothing was judged: CI must see a failure, never a pass.
        reason = s.errors[0] if s.errors else "run ended with status error"
        failure = ET.SubElement(case, "failure", {"message": reason, "type": "environment"})
        failure.text = "\n".join(["run ended with status error (exit 4)", *s.errors])
    elif s.status != "completed":
        reason = s.abort.reason if s.abort is not None else f"run status {s.status}"
        error = ET.SubElement(case, "error", {"message": reason, "type": s.status})
        error.text = "\n".join([reason, *s.errors])

    totals = [0, 0, 0, 0]
    for suite in root.findall("testsuite"):
        for i, n in enumerate(_count(suite)):
            totals[i] += n
    for key, n in zip(("tests", "failures", "errors", "skipped"), totals, strict=True):
        root.set(key, str(n))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(run: RunFolder, path: Path | None = None) -> Path:
    """Write junit.xml into the run folder (or ``path``)."""
    target = path or run.path / "junit.xml"
    target.write_text(render_junit(run), encoding="utf-8")
    return target
