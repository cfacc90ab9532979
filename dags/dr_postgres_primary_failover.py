"""PostgreSQL primary failure: the runbook for a real incident. Manual trigger only.

detect (trigger criteria: the primary fails health checks for N consecutive minutes, from the
estate; skip_health_wait when the on-call engineer has confirmed) -> assess -> approval
(human gate unless the cluster is unattended) -> failover (promote, wait for writes) ->
dns_switch -> verify -> stabilize ; rollback when verify fails ; RTO from the run start ;
communication messages at every phase ; journal + timeline for the postmortem.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Param, dag

from drdrill.core.limits import INCIDENT_POOL, TASK_TIMEOUT
from drdrill.runbook import build_runbook


@dag(
    dag_id="dr_postgres_primary_failover",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["dr", "failover", "postgres", "runbook", "incident"],
    # Not a drill: Airflow's default pool, never queued behind the drills' pools.
    default_args={"owner": "platform", "retries": 0, "execution_timeout": TASK_TIMEOUT, "pool": INCIDENT_POOL},
    params={
        "cluster": Param("main", type="string", description="cluster name from the estate"),
        "skip_health_wait": Param(False, type="boolean",
                                  description="the on-call engineer confirmed the outage: do not wait for the "
                                              "trigger criteria"),
        "max_wait_minutes": Param(60, type="number", exclusiveMinimum=0,
                                  description="give up (no failover) if the trigger criteria are not met by then"),
        "standby": Param(None, type=["null", "string"], description="standby to promote (default: the only one)"),
        "dry_run": Param(False, type="boolean", description="walk every step without acting"),
    },
    doc_md=__doc__,
)
def dr_postgres_primary_failover():
    build_runbook("incident")


dr_postgres_primary_failover()
