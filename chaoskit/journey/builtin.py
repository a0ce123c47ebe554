"""The built-in journeys: the stub stack's contract as steps, so every target runs one code path."""

from __future__ import annotations

from typing import Literal

from chaoskit.journey.models import JourneyConfig
from chaoskit.observe.metrics import FAILURE_STEPS as STUB_FAILURE_STEPS

__all__ = ["agent_buyer", "resolve_journey"]


def agent_buyer(
    *, orders_path: str = "/orders", intent_format: Literal["text", "fields"] = "text"
) -> JourneyConfig:
    """POST the intent to ``orders_path``; 200 is fulfilled, a failure names its ``step``.

    ``intent_format`` text sends ``{"text": "help me buy ..."}``; fields sends the intent as
    ``item``, ``spec``, ``deadline_min`` and ``place``. A request that times out counts as
    ``timeout``, one without an answer or a ``step`` in its body as ``gateway``: the names
    the stub stack's reports have always used.
    """
    body: dict[str, str] = {
        "intent_id": "{{intent_id}}",
        "order_id": "{{order_key}}",
        "user_id": "{{user_id}}",
    }
    if intent_format == "fields":
        body.update(
            item="{{item}}", spec="{{spec}}", deadline_min="{{deadline_min}}", place="{{place}}"
        )
    else:
        body["text"] = "{{text}}"
    return JourneyConfig.model_validate(
        {
            "name": "agent-buyer",
            "steps": [
                {
                    "name": "gateway",
                    "request": {"method": "POST", "path": orders_path, "json": body},
                    "expect": {"status": [200]},
                    "failure_step": "$.step",
                    "timeout_step": "timeout",
                }
            ],
            "order_id": "{{order_key}}",
            # The stub chain's steps, as its failure bodies name them.
            "step_names": list(STUB_FAILURE_STEPS),
        }
    )


def resolve_journey(
    journey: JourneyConfig | None,
    *,
    orders_path: str = "/orders",
    intent_format: Literal["text", "fields"] = "text",
) -> JourneyConfig:
    """The journey a run drives: ``journey``, or the built-in on the target's orders path."""
    if journey is not None and journey.builtin is None:
        return journey
    return agent_buyer(orders_path=orders_path, intent_format=intent_format)
