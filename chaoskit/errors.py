"""chaoskit's errors: one root, translated from foreign exceptions at the boundary.

    ChaoskitError
    ├── InputError                 bad input or usage: exit 2
    │   ├── ExperimentError        an experiment file is wrong (file:line:col: field: ...)
    │   ├── TargetFileError        a target file is wrong
    │   └── SafetyRefusal          attach refused: host not allowed, caps exceeded, missing env var
    └── EnvironmentProblem         something around chaoskit is missing or broken: exit 4
        ├── ToxiproxyMissing       no toxiproxy-server binary
        ├── ToxiproxyError         the Toxiproxy API said no (status and message kept)
        ├── TargetUnreachable      a service, Toxiproxy or Docker does not answer
        ├── CredentialsRefused     a team's system answered 401/403 to chaoskit's credentials
        ├── PortInUse              a port the stack needs is taken
        ├── ServiceFailedToStart   a stub service died during start (its log tail kept)
        ├── StackNotRunning        no stack to act on
        ├── StackAlreadyRunning    `up` while a stack is up
        ├── DockerUnavailable      no engine, or no permission on its socket
        ├── FaultNotApplied        a fault could not be put in place
        └── ReportNotWritten       a report file could not be written

Runs do not end by raising: they end with a status and a verdict (see ``chaoskit.RunResult``);
``chaoskit.exit_codes`` is the one table of what each verdict and each error exits with.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ChaoskitError",
    "CredentialsRefused",
    "DockerUnavailable",
    "EnvironmentProblem",
    "ExperimentError",
    "FaultNotApplied",
    "FileInputError",
    "InputError",
    "PortInUse",
    "ReportNotWritten",
    "SafetyRefusal",
    "ServiceFailedToStart",
    "StackAlreadyRunning",
    "StackNotRunning",
    "TargetFileError",
    "TargetUnreachable",
    "ToxiproxyError",
    "ToxiproxyMissing",
]


class ChaoskitError(Exception):
    """Root of every error chaoskit raises on purpose (exit codes: ``chaoskit.exit_codes``)."""


class InputError(ChaoskitError):
    """The user's input (a file, a flag) is wrong; nothing was started."""


class FileInputError(InputError):
    """An input error that points at a place in a file."""

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        line: int | None = None,
        col: int | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else Path(path)
        self.line = line
        self.col = col
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = str(self.path)
            if self.line is not None:
                where += f":{self.line}"
                if self.col is not None:
                    where += f":{self.col}"
            where += ": "
        return f"{where}{self.message}"


class ExperimentError(FileInputError):
    """An experiment file does not follow the format."""


class TargetFileError(FileInputError):
    """A target file does not follow the format."""


class SafetyRefusal(InputError):
    """An attach run would break a safety rule of its target; refused before anything ran."""


class EnvironmentProblem(ChaoskitError):
    """Something chaoskit needs around it is missing or broken."""


class ToxiproxyMissing(EnvironmentProblem):
    """No toxiproxy-server binary could be found."""


class ToxiproxyError(EnvironmentProblem):
    """The Toxiproxy API refused a request; keeps its status and message."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class TargetUnreachable(EnvironmentProblem):
    """A service, Toxiproxy server or Docker engine did not answer."""


class CredentialsRefused(EnvironmentProblem):
    """A team's system (its Prometheus, a ledger export) answered, but refused the credentials
    chaoskit sent (HTTP 401/403). The message names the URL, never the header values."""


class PortInUse(EnvironmentProblem):
    """A port the stack needs is already taken."""


class ServiceFailedToStart(EnvironmentProblem):
    """A stub service exited or never became healthy; the message carries its log tail."""


class StackNotRunning(EnvironmentProblem):
    """There is no running stack to act on."""


class StackAlreadyRunning(EnvironmentProblem):
    """A stack is already up; a second `up` would start twins."""


class DockerUnavailable(EnvironmentProblem):
    """No Docker engine answers, or its socket refuses us."""


class FaultNotApplied(EnvironmentProblem):
    """A fault could not be put in place."""


class ReportNotWritten(EnvironmentProblem):
    """A report file could not be written (disk full, read-only folder)."""
