"""Typed errors, all from one root, so callers can catch drill problems without catching bugs.

Every message says what was found, what was expected, and what to do next.
"""

from __future__ import annotations


class DrillError(Exception):
    """Root of every error drdrill raises on purpose."""


class EstateError(DrillError):
    """The estate file is missing, malformed, or does not describe what was asked for."""


class PreflightError(DrillError):
    """Parameters or safeguards refused the drill before anything was touched."""


class CommandError(DrillError):
    """A command run through a runner exited non-zero or timed out."""

    def __init__(self, message: str, *, argv: list[str] | None = None, returncode: int | None = None,
                 output: str = "", timed_out_after: float | None = None) -> None:
        super().__init__(message)
        self.argv = argv or []
        self.returncode = returncode
        self.output = output
        self.timed_out_after = timed_out_after  # seconds, when the command was killed for taking too long


class DrillFailed(DrillError):
    """The drill ran and at least one check or measurement missed its target.

    ``results`` (CheckResult dicts) travel with it: the step records them, so the journal lists
    every check of a step that failed, not only its error text.
    """

    def __init__(self, message: str, *, results: list[dict] | None = None) -> None:
        super().__init__(message)
        self.results = results or []


class RunnerConnectionError(DrillError):
    """A runner could not reach the host its commands run on (SSH refused, unknown host key,
    unreachable): no command ran. Distinct from `CommandError`, where the command ran and failed."""

    def __init__(self, message: str, *, conn_id: str | None = None) -> None:
        super().__init__(message)
        self.conn_id = conn_id
