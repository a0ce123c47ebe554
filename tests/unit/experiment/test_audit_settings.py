"""The experiment's `audit:` section and the free-order switches, as a user writes them."""

from __future__ import annotations

import pytest

from chaoskit.errors import ExperimentError
from chaoskit.experiment.loader import parse_experiment
from chaoskit.run.settings import stack_settings

HEAD = """version: 1
name: audit-settings
load: {model: open, shape: {kind: constant, for: 10s, rate: 5}}
"""


def test_credit_slo_and_release_on_failure_are_read_and_mapped() -> None:
    experiment = parse_experiment(
        HEAD
        + "stack: {eligibility: {referral_share: 1.0, release_on_failure: true}}\n"
        + "audit: {credit_slo: 30s}\n"
        + "hypothesis:\n"
        + "  - {metric: free_orders_honoured_rate, min: 0.99, phase: during}\n"
        + "  - {metric: lost_entitlements, max: 0}\n"
        + "  - {metric: first_try_failure_rate, max: 0.05}\n",
        path="exp.yaml",
    )
    assert experiment.audit.credit_slo == 30.0
    settings = stack_settings(experiment.stack.model_dump(mode="json"))
    assert settings["eligibility"] == {"referral_share": 1.0, "release_on_failure": True}
    assert parse_experiment(HEAD, path="exp.yaml").audit.credit_slo is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("audit: {credit_slo: soon}\n", "audit.credit_slo: expected a duration"),
        ("audit: {credit_sla: 30s}\n", "audit.credit_sla"),
        (
            "guardrails:\n  - {metric: free_orders_honoured_rate, min: 0.9}\n",
            '"free_orders_honoured_rate" is an audit metric, known only after the run',
        ),
    ],
)
def test_bad_audit_input_is_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(ExperimentError) as caught:
        parse_experiment(HEAD + text, path="exp.yaml")
    assert message in str(caught.value)
