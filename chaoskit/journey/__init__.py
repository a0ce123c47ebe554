"""Journeys: what one buyer's order is, as HTTP requests against any order API.

The pure part (models, templates, JSONPath, the built-in agent buyer, what a Python journey
gets and returns); the engine's driver is ``chaoskit.load.journey_run``.
"""

from chaoskit.journey.builtin import agent_buyer, resolve_journey
from chaoskit.journey.compiled import CompiledJourney, compile_journey
from chaoskit.journey.models import BUILTIN_JOURNEYS, BUILTIN_VARS, JourneyConfig
from chaoskit.journey.outcome import JourneyIntent, Outcome

__all__ = [
    "BUILTIN_JOURNEYS",
    "BUILTIN_VARS",
    "CompiledJourney",
    "JourneyConfig",
    "JourneyIntent",
    "Outcome",
    "agent_buyer",
    "compile_journey",
    "resolve_journey",
]
