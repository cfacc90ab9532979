"""The guards every chaos action passes, in preflight and again right before the action.

Each guard gives a `Verdict` the journal keeps (name, ok, detail). A guard that fails either
**skips** the run (the system is not to be hurt now: outside the time window, the kill switch on,
a PodDisruptionBudget at 0, the target busy with another drill) or **refuses** it (the request is
wrong: a service or drill not allowed, a namespace off the allow-list, more victims than the blast
radius allows); neither touches anything. Skips are journalled as skipped, never as failures.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import asdict, dataclass
from typing import Any

from drdrill.core.errors import PreflightError
from drdrill.core.services import ServiceTarget


@dataclass(frozen=True)
class Verdict:
    name: str
    ok: bool
    detail: str
    skip: bool = False  # a failed guard that skips the run (True) or refuses it (False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def window(service: ServiceTarget, timezone: str, at: dt.datetime) -> Verdict:
    """Inside the service's chaos window (weekdays and hours in the estate's timezone)?"""
    w = service.window
    if w is None:
        return Verdict("window", True, "no window configured: chaos may act at any time")
    import pendulum

    local = pendulum.instance(at).in_tz(timezone).format("ddd YYYY-MM-DD HH:mm")
    if w.contains(at, timezone):
        return Verdict("window", True, f"{local} is inside the chaos window {w.describe(timezone)}")
    return Verdict("window", False, f"{local} is outside the chaos window {w.describe(timezone)}: nothing was "
                   f"done; the next run inside the window will act", skip=True)


def allowed(service: ServiceTarget, drill: str) -> Verdict:
    if service.allows(drill):
        return Verdict("allow_list", True, f"service {service.name} allows {drill}")
    return Verdict("allow_list", False, f"service {service.name} does not allow {drill}: add it to "
                   f"services[{service.name}].allowed_drills deliberately, or pick another service")


def blast_radius(service: ServiceTarget, victims: int) -> Verdict:
    if 1 <= victims <= service.max_victims:
        return Verdict("blast_radius", True, f"{victims} victim(s), at most {service.max_victims}")
    return Verdict("blast_radius", False, f"{victims} victims asked, the service allows at most "
                   f"{service.max_victims} (services[{service.name}].max_victims)")


def namespace(service: ServiceTarget, ns: str | None = None) -> Verdict:
    k = service.kubernetes
    if k is None:
        return Verdict("namespace", True, "not a Kubernetes target")
    ns = ns or k.namespace
    if ns in k.namespaces_allowed:
        return Verdict("namespace", True, f"namespace {ns} is on the allow-list {k.namespaces_allowed}")
    return Verdict("namespace", False, f"namespace {ns} is not on the allow-list {k.namespaces_allowed} "
                   f"(services[{service.name}].kubernetes.namespaces_allowed): nothing was done")


def approval(service: ServiceTarget, *, dry_run: bool) -> tuple[bool, str]:
    """Whether a human must approve before the action."""
    if dry_run:
        return False, "dry run: nothing is touched, no approval needed"
    if service.unattended:
        return False, f"service {service.name} is unattended (unattended: true): no approval"
    return True, f"approval required: service {service.name} is not unattended"


def seed_for(run_id: str, given: int | None) -> int:
    """The random choice's seed: the param when given (a replay), else drawn and journalled."""
    if given is not None:
        return int(given)
    return random.SystemRandom().randrange(2**31)


def pick(candidates: list[str], n: int, seed: int) -> list[str]:
    """``n`` of ``candidates``, the same ones for the same seed and candidates (sorted first)."""
    return random.Random(seed).sample(sorted(candidates), min(n, len(candidates)))


def enforce(verdicts: list[Verdict]) -> None:
    """Raise for the first failed guard: a skip (`AirflowSkipException`) or a refusal (`PreflightError`)."""
    for v in verdicts:
        if v.ok:
            continue
        if v.skip:
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException(f"{v.name}: {v.detail}")
        raise PreflightError(f"{v.name}: {v.detail}")
