"""What every phase of the runbook graph shares: the plan, step states, parse-time settings."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from airflow.sdk import get_current_context

from drdrill.core.limits import DESTRUCTIVE_POOL, INCIDENT_POOL

# Parse-time settings (the estate is never read while parsing): environment, documented in the README.
APPROVAL_TIMEOUT = timedelta(minutes=float(os.environ.get("DRDRILL_APPROVAL_TIMEOUT_MINUTES", "15")))
# The RTO alert's deadline after the outage began: unset = the cluster's targets.rto_minutes
# (read at run time); a number of minutes overrides it; 0 turns the alert off.
RTO_DEADLINE_MINUTES = os.environ.get("DRDRILL_RTO_DEADLINE_MINUTES") or None

# Templates the operators of the graph take their target from (the preflight's plan).
CLUSTER = "{{ params.cluster }}"
DRY_RUN = "{{ params.dry_run }}"
STANDBY = "{{ ti.xcom_pull(task_ids='preflight')['standby'] }}"
PRIMARY = "{{ ti.xcom_pull(task_ids='preflight')['primary'] }}"


def act_pool(drill: bool) -> str:
    """The pool of a step that acts on production servers or DNS: one at a time in a drill; an incident's
    steps never wait behind a drill (drdrill.core.limits)."""
    return DESTRUCTIVE_POOL if drill else INCIDENT_POOL


def plan() -> Any:
    """The run's plan, decided once by preflight."""
    from drdrill.drills import failover

    ti = get_current_context()["ti"]
    return failover.Plan.from_dict(ti.xcom_pull(task_ids="preflight"))


def steps(task_ids: list[str], parts: dict[str, list[str]] | None = None) -> dict[str, str]:
    """Status of each step record of these tasks, by the short name after the group ('promote')."""
    from drdrill.core.journal import gather_steps

    ti = get_current_context()["ti"]
    return {s["task_id"].rsplit(".", 1)[-1]: s.get("status", "not run") for s in gather_steps(ti, task_ids, parts)}


def failed_step_error(task_ids: list[str], parts: dict[str, list[str]] | None = None) -> str | None:
    """The error of the first failed step of these tasks, in the order given."""
    from drdrill.core.journal import gather_steps

    ti = get_current_context()["ti"]
    return next((s.get("error") for s in gather_steps(ti, task_ids, parts) if s.get("status") == "failed"), None)


# The task that takes the lease on the cluster (and checks the kill switch in a drill), and the teardown
# that releases it at the very end (drdrill.drills.failover.locking).
LOCK = "failover.lock_targets"
RELEASE = "release_targets"


# The task that injects the fault (drill), promotes, waits for writes and sends the DNS UPSERT, and
# the journal steps it records (`drdrill.drills.failover.promote_and_switch`): a scheduling hop
# between two of them would cost more than the steps themselves (about a second under a scheduler).
CRITICAL = "failover.promote_and_switch"
CRITICAL_PATH = ["failover.promote", "failover.wait_writable", "dns_switch.switch"]


def critical_path_steps(drill: bool) -> list[str]:
    """The journal steps of `CRITICAL`, in order: the fault first in a drill."""
    # restore and replay: the region scope's (the DR node from the DR repo); skipped in the node scope
    return ["failover.inject_fault", "failover.restore", "failover.replay", *CRITICAL_PATH] if drill \
        else list(CRITICAL_PATH)


def fault() -> dict[str, Any] | None:
    """The drill's fault as the critical path task recorded it (None before, or in an incident)."""
    out = get_current_context()["ti"].xcom_pull(task_ids=CRITICAL)
    return (out or {}).get("fault")
