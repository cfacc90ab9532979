"""Weekly pod kill: the seed's "Individual service: kill random pod/instance, verify recovery".

preflight (allow-list, namespace allow-list, blast radius, time window, kill switch; repairs what a
killed run left) -> approval (skipped for unattended services) -> steady_state (the customer probe
through the front door and the target's health: a drill never hits a sick system) -> act (guards
again right before the kill; one random eligible replica/pod, seed journalled; SIGKILL through
supervisord or pod deletion; then, in the triggerer, until every victim is replaced by a replica
that is itself ready, with the probe running and an early abort when customers see errors)
-> teardown (always) -> journal (victim, time to detect and to recover, errors and latency before,
during and after, every guard's verdict). Logic in ``drdrill.drills.chaos``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Param, dag

from drdrill.core.limits import DESTRUCTIVE_POOL, DRILL_POOL, TASK_TIMEOUT
from drdrill.operators.chaos import ChaosKillOperator
from drdrill.runbook.chaos import PLANNED_SEED, PLANNED_SERVICE, build_chaos_drill
from drdrill.timetables import schedule_for


@dag(
    dag_id="dr_weekly_pod_kill",
    schedule=schedule_for("dr_weekly_pod_kill"),  # the estate's schedules (default: Wednesdays 11:00)
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["dr", "chaos", "pod-kill"],
    default_args={"owner": "platform", "retries": 0, "execution_timeout": TASK_TIMEOUT, "pool": DRILL_POOL},
    params={
        "service": Param(None, type=["null", "string"], description="service from the estate (default: one of "
                         "those allowing this drill, chosen with the seed)"),
        "victims": Param(1, type="integer", minimum=1, description="how many to kill (at most max_victims)"),
        "seed": Param(None, type=["null", "integer"], description="replay a run's random choice with its seed"),
        "grace_period_seconds": Param(None, type=["null", "integer"], minimum=0,
                                      description="Kubernetes: pod deletion grace (default: the estate's)"),
        "dry_run": Param(False, type="boolean", description="choose and report the victim, touch nothing"),
    },
    doc_md=__doc__,
)
def dr_weekly_pod_kill():
    build_chaos_drill("dr_weekly_pod_kill", lambda: ChaosKillOperator(
        task_id="act", service=PLANNED_SERVICE, victims="{{ params.victims }}",
        seed=PLANNED_SEED, grace_period_seconds="{{ params.grace_period_seconds }}",
        dry_run="{{ params.dry_run }}", pool=DESTRUCTIVE_POOL))


dr_weekly_pod_kill()
