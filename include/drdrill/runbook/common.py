"""What every phase of the runbook graph shares: the plan, step states, parse-time settings."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from airflow.sdk import get_current_context

# Parse-time settings (the estate is never read while parsing): environment, documented in the README.
APPROVAL_TIMEOUT = timedelta(minutes=float(os.environ.get("DRDRILL_APPROVAL_TIMEOUT_MINUTES", "15")))
RTO_DEADLINE = timedelta(minutes=float(os.environ.get("DRDRILL_RTO_DEADLINE_MINUTES", "30")))

# Templates the operators of the graph take their target from (the preflight's plan).
CLUSTER = "{{ params.cluster }}"
DRY_RUN = "{{ params.dry_run }}"
STANDBY = "{{ ti.xcom_pull(task_ids='preflight')['standby'] }}"
PRIMARY = "{{ ti.xcom_pull(task_ids='preflight')['primary'] }}"


def plan() -> Any:
    """The run's plan, decided once by preflight."""
    from drdrill.drills import failover

    ti = get_current_context()["ti"]
    return failover.Plan.from_dict(ti.xcom_pull(task_ids="preflight"))


def steps(task_ids: list[str]) -> dict[str, str]:
    """Status of each task's step record, by the short name after the group ('promote')."""
    from drdrill.core.journal import gather_steps

    ti = get_current_context()["ti"]
    return {s["task_id"].rsplit(".", 1)[-1]: s.get("status", "not run") for s in gather_steps(ti, task_ids)}


def deadline_alert() -> Any:
    """A Deadline Alert on the run at the RTO target: it notifies through the runbook's channels.

    ``DRDRILL_RTO_DEADLINE_MINUTES=0`` turns it off. The tests and the demo do: Airflow 3.3.2's
    ``dag.test()`` crashes at the end of a successful run of a DAG that has a deadline (it
    looks the alert up by its serialized dict instead of its id); the scheduler is not affected.
    """
    from airflow.sdk.definitions.deadline import AsyncCallback, DeadlineAlert, DeadlineReference

    if RTO_DEADLINE.total_seconds() <= 0:
        return None

    return DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=RTO_DEADLINE,
                         callback=AsyncCallback("drdrill.drills.failover.comms.rto_deadline_missed",
                                                kwargs={"minutes": RTO_DEADLINE.total_seconds() / 60}))
