"""Exit codes, the one table: CI gates on them, so they are part of chaoskit's interface.

    0  the hypothesis held
    1  the hypothesis was violated
    2  bad input or usage: nothing was started
    3  aborted by a guardrail or a signal
    4  an environment problem, or anything else that kept the run from a verdict

A failure chaoskit did not foresee is never 0 or 1: it did not judge anything.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Literal

from chaoskit.errors import ChaoskitError, InputError

__all__ = ["ExitCode", "Verdict", "exit_code_for_error", "exit_code_for_verdict"]

Verdict = Literal["held", "violated", "aborted", "error"]


class ExitCode(IntEnum):
    """What a chaoskit process tells the shell."""

    HELD = 0
    VIOLATED = 1
    INPUT = 2
    ABORTED = 3
    ERROR = 4


_BY_VERDICT: dict[str, ExitCode] = {
    "held": ExitCode.HELD,
    "violated": ExitCode.VIOLATED,
    "aborted": ExitCode.ABORTED,
    "error": ExitCode.ERROR,
}


def exit_code_for_verdict(verdict: Verdict) -> ExitCode:
    """The exit code of a run that ended with ``verdict``."""
    return _BY_VERDICT[verdict]


def exit_code_for_error(error: BaseException) -> ExitCode:
    """The exit code of a command that failed with ``error`` (input 2, anything else 4)."""
    if isinstance(error, InputError):
        return ExitCode.INPUT
    if isinstance(error, ChaoskitError):
        return ExitCode.ERROR
    return ExitCode.ERROR
