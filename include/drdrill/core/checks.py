"""Typed check results and the threshold logic shared by every drill.

A check never raises for a failed outcome: it returns a `CheckResult` with status
``fail`` and a message saying what was found, what was expected and what to do. Only the
drill's final step turns failures into a failed run, so every failure is listed at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: what was measured against which threshold."""

    name: str
    status: Status
    message: str
    target: str = ""  # what the check looked at, e.g. "main/repo2" or "main/pg2"
    value: Any = None
    threshold: Any = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status is Status.FAIL

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CheckResult:
        return cls(**{**d, "status": Status(d["status"])})

    def line(self) -> str:
        """One human line, used in logs and in the failure summary."""
        where = f" [{self.target}]" if self.target else ""
        return f"{self.status.value.upper():4} {self.name}{where}: {self.message}"


def at_most(name: str, value: float | None, threshold: float | None, *, unit: str = "", target: str = "",
            what: str = "", fix: str = "") -> CheckResult:
    """Pass when ``value <= threshold``; a missing value fails (nothing measured is not healthy)."""
    label = what or name
    if threshold is None:
        return CheckResult(name, Status.SKIP, f"{label}: no threshold configured", target, value, None)
    if value is None:
        return CheckResult(name, Status.FAIL, f"{label}: nothing measured, expected at most {threshold}{unit}. "
                           f"{fix}".strip(), target, None, threshold)
    if value <= threshold:
        return CheckResult(name, Status.PASS, f"{label} {_fmt(value)}{unit} <= {_fmt(threshold)}{unit}",
                           target, value, threshold)
    return CheckResult(name, Status.FAIL, f"{label} {_fmt(value)}{unit} exceeds the target of "
                       f"{_fmt(threshold)}{unit}. {fix}".strip(), target, value, threshold)


def summarize(results: list[CheckResult]) -> str:
    """A multi-line summary listing every failed check first."""
    failed = [r for r in results if r.failed]
    head = (f"{len(failed)} of {len(results)} checks failed" if failed
            else f"all {len(results)} checks passed")
    return "\n".join([head, *(r.line() for r in failed), *(r.line() for r in results if not r.failed)])


def _fmt(v: float) -> str:
    if not isinstance(v, float):
        return str(v)
    return f"{v:.1f}" if abs(v) >= 1 or v == 0 else f"{v:.2g}"
