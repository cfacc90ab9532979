"""Monthly Velero restore test: restore the newest backup of a Velero schedule into per-run namespaces and prove it.

preflight (the entry has a restore_test; what a killed run left is deleted; the newest Completed backup;
the per-run target namespaces, e.g. ``production-restored-1a2b3c``, must not exist and never be a source,
a namespace of the schedule or the backup: refused before anything is created) -> prepare (setup: the
kill switch, then the target namespaces created with drdrill's label) -> restore (a Velero Restore with
the namespace mapping, Completed within the bound, waited for in the triggerer) -> verify (restored items
against the backup's, every restored Deployment and StatefulSet Ready within the bound) -> teardown
(always: the Restore and the target namespaces deleted) -> journal. Logic in
``drdrill.drills.backups.velero_restore``; the reusable steps are `VeleroRestoreOperator` and
`VeleroRestoreTeardownOperator` (``drdrill.operators.velero``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Param, dag, get_current_context, setup, task

from drdrill.core.journal import step
from drdrill.core.limits import DRILL_POOL, TASK_TIMEOUT
from drdrill.notifiers import outcome_callbacks
from drdrill.operators.velero import VeleroRestoreOperator, VeleroRestoreTeardownOperator
from drdrill.timetables import schedule_for

TASKS = ["preflight", "prepare", "restore", "verify", "teardown"]


@dag(
    dag_id="dr_monthly_velero_restore_test",
    # The estate's schedules section (default: the first business day of the month, 11:00 in its timezone).
    schedule=schedule_for("dr_monthly_velero_restore_test"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["dr", "restore", "velero", "kubernetes"],
    # A restore is not retried in place: the next run is the retry (it cleans what this one left).
    default_args={"owner": "platform", "retries": 0, "execution_timeout": TASK_TIMEOUT, "pool": DRILL_POOL},
    params={
        "velero": Param(None, type=["null", "string"], description="backups.velero entry of the estate (default: "
                        "the first with a restore_test)"),
        "backup": Param(None, type=["null", "string"], description="restore this Completed backup (default: the "
                        "newest Completed backup of the restore test's schedule)"),
        "dry_run": Param(False, type="boolean", description="plan and report, create nothing"),
    },
    doc_md=__doc__,
)
def dr_monthly_velero_restore_test():
    @task(multiple_outputs=True)
    @step
    def preflight() -> dict:
        from drdrill.drills.backups import velero_restore

        ctx = get_current_context()
        return velero_restore.preflight(dict(ctx["params"]), ctx["dag_run"].run_id)

    @setup
    @step
    def prepare(plan: dict) -> dict:
        from drdrill.drills.backups import velero_restore

        return velero_restore.prepare(plan)

    @task
    @step
    def verify(plan: dict, restored: dict) -> dict:
        from drdrill.drills.backups import velero_restore

        return velero_restore.verify(plan, restored)

    @task(trigger_rule="all_done", **outcome_callbacks())  # failure / recovery notifications
    def journal() -> dict:
        from drdrill.core import journal as j
        from drdrill.core.checks import CheckResult

        ctx = get_current_context()
        ti = ctx["ti"]
        ver = ti.xcom_pull(task_ids="verify") or {}
        return j.finish(
            ctx, task_ids=TASKS, cluster=None,
            results=[CheckResult.from_dict(d) for d in ver.get("results") or []],
            extra={"plan": ti.xcom_pull(task_ids="preflight"), "prepare": ti.xcom_pull(task_ids="prepare"),
                   "restore": ti.xcom_pull(task_ids="restore") or ti.xcom_pull(task_ids="restore", key="restore"),
                   "teardown": ti.xcom_pull(task_ids="teardown")})

    plan = preflight()
    prepared = prepare(plan)
    restored = VeleroRestoreOperator(
        task_id="restore", kubernetes_conn_id=plan["conn_id"], velero_namespace=plan["velero_namespace"],
        backup_name=plan["backup"], namespace_mappings=plan["namespace_mappings"], restore_name=plan["restore_name"],
        labels=plan["labels"], timeout_seconds=plan["timeout_seconds"], deferrable=True,  # waits in the triggerer
        dry_run="{{ params.dry_run }}")
    prepared >> restored
    checked = verify(plan, restored.output)
    done = VeleroRestoreTeardownOperator(
        task_id="teardown", kubernetes_conn_id=plan["conn_id"], velero_namespace=plan["velero_namespace"],
        restore_name=plan["restore_name"], namespaces=plan["target_namespaces"],
        dry_run="{{ params.dry_run }}").as_teardown(setups=prepared)
    checked >> done
    done >> journal()


dr_monthly_velero_restore_test()
