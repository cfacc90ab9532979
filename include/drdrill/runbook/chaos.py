"""The chaos drills' graph, shared by dr_weekly_pod_kill and dr_monthly_az_failure::

    preflight -> approval (gate: skipped for unattended services and dry runs) -> steady_state
              -> <action> (deferred while the target heals, probe running) -> teardown (always)
              -> journal (always)

``preflight`` checks every guard that needs no target API (allow-list, namespace allow-list,
time window, kill switch) and repairs what an earlier run killed mid-way left behind (replicas
still stopped); a guard that says "not now" skips the run, which is journalled ``skipped``.
``teardown`` always runs: it starts any replica a failed or killed run left stopped, stops a FIS
experiment still running, and releases the target lock. Nothing here reads the estate at parse time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import TaskGroup, get_current_context, task

from drdrill.core.journal import step
from drdrill.notifiers import outcome_callbacks
from drdrill.runbook.approval import RunbookApproval

APPROVAL_TIMEOUT = timedelta(hours=4)
# What the action takes from the plan (templated): the service preflight chose and the run's seed.
PLANNED_SERVICE = "{{ ti.xcom_pull(task_ids='preflight')['service'] }}"
PLANNED_SEED = "{{ ti.xcom_pull(task_ids='preflight')['seed'] }}"


def _plan() -> dict[str, Any]:
    return get_current_context()["ti"].xcom_pull(task_ids="preflight") or {}


def build_chaos_drill(drill: str, action: Callable[[], Any]) -> list[str]:
    """Add the chaos lifecycle to the current DAG around ``action()`` (an operator whose task id is
    ``act``); returns every task id (for the journal)."""

    @task(retries=0)
    @step
    def preflight() -> dict[str, Any]:
        import datetime as dt

        from drdrill.core.estate import load_estate
        from drdrill.drills.chaos import common

        ctx = get_current_context()
        params = ctx["params"]
        from drdrill.drills.chaos.guards import seed_for

        estate = load_estate()
        # One seed per run picks the service (when the param names none), the victims and the zone; journalled.
        seed = seed_for(ctx["run_id"], params.get("seed"))
        svc = common.select_service(estate, params.get("service"), drill, seed)
        return common.preflight(estate, svc, drill=drill, dry_run=bool(params.get("dry_run")),
                                at=dt.datetime.now(dt.UTC), params={**params, "seed": seed})

    with TaskGroup("approval", tooltip="Human gate: skipped for unattended services and dry runs") as approval:
        @task.branch
        @step
        def gate() -> str:
            p = _plan()
            return "approval.approve" if p.get("approval_required") else "approval.not_needed"

        approve = RunbookApproval(  # the runbook's gate: who answered what is a journal step
            task_id="approve", subject=f"Approve {drill} on service {{{{ ti.xcom_pull(task_ids='preflight')"
                                       f"['service'] }}}}?",
            body="{{ ti.xcom_pull(task_ids='preflight')['approval_reason'] }}\n\nRun: {{ run_id }}. "
                 "No answer before the timeout means Reject.",
            defaults=["Reject"], response_timeout=APPROVAL_TIMEOUT, fail_on_reject=True,
            execution_timeout=APPROVAL_TIMEOUT + timedelta(minutes=5))
        not_needed = EmptyOperator(task_id="not_needed")
        g = gate()
        g >> [approve, not_needed]

    @task(trigger_rule="none_failed_min_one_success", retries=0)
    @step
    def steady_state() -> dict[str, Any]:
        from drdrill.core.estate import load_estate
        from drdrill.drills.chaos import common
        from drdrill.drills.chaos.targets import target_ops

        ctx = get_current_context()
        svc = load_estate().service(_plan()["service"])
        ops = target_ops(svc) if svc.kind != "none" else None
        return common.steady_state(svc, f"{ctx['dag'].dag_id}/{ctx['run_id']}", ops)

    @task(trigger_rule="all_done", retries=0)
    @step
    def teardown() -> dict[str, Any]:
        from drdrill.drills.chaos import common

        return common.teardown(_plan(), get_current_context())

    ids = ["preflight", "approval.gate", "approval.approve", "steady_state", "act", "teardown"]

    @task(trigger_rule="all_done", retries=0, **outcome_callbacks())  # failure / recovery notifications
    def journal() -> dict[str, Any]:
        from drdrill.drills.chaos import common

        return common.finish(get_current_context(), ids, drill)

    pre = preflight()
    steady = steady_state()
    act = action()
    down = teardown()
    pre >> approval >> steady >> act >> down >> journal()
    return ids
