"""Preflight, the incident's trigger criteria (detect) and Phase 1, Assess."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import TaskGroup, get_current_context, task

from drdrill.core.journal import step
from drdrill.operators.estate import EstateCheckOperator
from drdrill.runbook.common import CLUSTER, plan
from drdrill.sensors.postgres import PostgresDownSensor


def add_preflight(ids: list[str]) -> Any:
    # The estate's configuration first (connections, logins, grants, runner): read-only. A node that
    # does not answer is left to the runbook (the incident's primary is down by definition).
    checked = EstateCheckOperator(task_id="estate_check", cluster=CLUSTER, retries=0)
    ids.append("estate_check")

    @task(retries=0)
    @step
    def preflight() -> dict:
        from drdrill.drills import failover

        ctx = get_current_context()
        ti = ctx["ti"]

        from drdrill.core.scratch import active_in_airflow

        is_active = active_in_airflow(ti, ctx["dag"].dag_id)

        # Blast radius: two failovers must never overlap (drill and incident are separate DAGs,
        # each with max_active_runs=1).
        other = failover.INCIDENT if ctx["dag"].dag_id == failover.DRILL else failover.DRILL
        active = ti.get_dr_count(dag_id=other, states=["queued", "running"])
        from drdrill.core.schedules import started_by_schedule

        return failover.preflight(dict(ctx["params"]), ctx["dag_run"].run_id, ctx["dag"].dag_id,
                                  is_active=is_active, concurrent={other: active},
                                  scheduled=started_by_schedule(ctx["dag_run"]))

    ids.append("preflight")
    planned = preflight()
    checked >> planned
    return planned


def add_detect(preflight: Any, ids: list[str]) -> Any:
    """Incident only: wait (deferrable) until the primary meets the trigger criteria."""
    with TaskGroup("detect", tooltip="Trigger criteria: primary fails health checks for N consecutive minutes"):
        detect = PostgresDownSensor(task_id="primary_down", plan=preflight, skip="{{ params.skip_health_wait }}",
                                    wait_timeout="{{ params.max_wait_minutes * 60 }}",
                                    # bounded by the run's own max_wait_minutes (deferred: no worker slot)
                                    execution_timeout=timedelta(days=1))
    ids.append("detect.primary_down")
    return detect


def add_assess(upstream: Any, ids: list[str]) -> Any:
    with TaskGroup("assess", tooltip="Phase 1 (0-5 min): is the standby fit to take over?"):
        @task(retries=0)
        @step
        def probe() -> dict:
            from drdrill.drills import failover

            return failover.assess(plan())

        assessed = probe()
    ids.append("assess.probe")
    upstream >> assessed
    return assessed
