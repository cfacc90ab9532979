"""Monthly AWS Backup restore test: restore a recovery point into a scratch RDS instance and prove the data.

preflight (the estate's ``backups.aws_backup`` entry and its ``restore_test``; the recovery point,
latest or random with its seed journalled; the scratch identifier suffixed per run, production
identifiers refused) -> start_restore -> wait (bounded by ``timeout_seconds``) -> validate (the
restored instance's endpoint from RDS, the cluster's critical tables present and not empty) ->
delete_instance (teardown: always, also after a failed run) -> report_validation
(``PutRestoreValidationResult`` SUCCESSFUL or FAILED with the reason) -> journal. The reusable steps
are drdrill's operators (`AwsBackupStartRestoreJobOperator`, `AwsBackupRestoreJobWaitOperator`,
`RdsRestoredInstanceDeleteOperator`); the logic is ``drdrill.drills.backups.aws_backup_restore``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Param, dag, get_current_context, task

from drdrill.core.journal import step
from drdrill.core.limits import DRILL_POOL, TASK_TIMEOUT
from drdrill.notifiers import outcome_callbacks
from drdrill.operators.aws_backup import (
    AwsBackupRestoreJobWaitOperator,
    AwsBackupStartRestoreJobOperator,
    RdsRestoredInstanceDeleteOperator,
)
from drdrill.timetables import schedule_for

TASKS = ["preflight", "start_restore", "wait", "validate", "delete_instance", "report_validation"]


@dag(
    dag_id="dr_monthly_aws_backup_restore_test",
    # The estate's schedules section (default: the first business day of the month, 11:00 in its timezone).
    schedule=schedule_for("dr_monthly_aws_backup_restore_test"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["dr", "restore", "aws-backup"],
    # A restore is not retried in place: the next run is the retry. The scratch instance is AWS's, not a
    # cluster's node: the drills' pool, not the destructive one.
    default_args={"owner": "platform", "retries": 0, "execution_timeout": TASK_TIMEOUT, "pool": DRILL_POOL},
    params={
        "entry": Param("production", type="string", description="backups.aws_backup entry name in the estate"),
        "recovery_point": Param(None, type=["null", "string"], enum=[None, "latest", "random"],
                                description="latest or random (empty: the entry's restore_test.recovery_point)"),
        "seed": Param(None, type=["null", "integer"], description="random: replay the pick of a journalled seed"),
        "dry_run": Param(False, type="boolean", description="pick and plan, restore nothing"),
    },
    doc_md=__doc__,
)
def dr_monthly_aws_backup_restore_test():
    @task
    @step
    def preflight() -> dict:
        from drdrill.drills.backups import aws_backup_restore as r

        ctx = get_current_context()
        p = ctx["params"]
        return r.preflight_in_estate(str(p["entry"]), run_id=ctx["dag_run"].run_id,
                                     recovery_point=p.get("recovery_point"), seed=p.get("seed"))

    @task
    @step
    def validate(plan: dict, waited: dict) -> dict:
        from drdrill.drills.backups import aws_backup_restore as r

        if get_current_context()["params"].get("dry_run"):
            return {"results": [], "dry_run": True}
        return r.validate_in_estate(plan)

    @task(trigger_rule="all_done")
    @step
    def report_validation() -> dict:
        from drdrill.drills.backups import aws_backup_restore as r

        ctx = get_current_context()
        ti = ctx["ti"]
        return r.report_in_estate(ti.xcom_pull(task_ids="preflight"), ti.xcom_pull(task_ids="wait"),
                                  ti.xcom_pull(task_ids="validate"), dry_run=bool(ctx["params"].get("dry_run")))

    @task(trigger_rule="all_done", **outcome_callbacks())  # failure / recovery notifications
    def journal() -> dict:
        from drdrill.core import journal as j
        from drdrill.drills.backups import aws_backup_restore as r

        ctx = get_current_context()
        ti = ctx["ti"]
        plan = ti.xcom_pull(task_ids="preflight") or {}
        validated = ti.xcom_pull(task_ids="validate") or {}
        return j.finish(ctx, task_ids=TASKS, cluster=plan.get("cluster"),
                        results=r.as_results(validated.get("results")),
                        extra={"plan": plan, "restore": ti.xcom_pull(task_ids="start_restore"),
                               "wait": ti.xcom_pull(task_ids="wait"),
                               "delete": ti.xcom_pull(task_ids="delete_instance"),
                               "validation_reported": ti.xcom_pull(task_ids="report_validation")})

    plan = preflight()
    started = AwsBackupStartRestoreJobOperator(
        task_id="start_restore", recovery_point_arn=plan["recovery_point_arn"], iam_role_arn=plan["iam_role_arn"],
        metadata=plan["metadata"], resource_type=plan["resource_type"], aws_conn_id=plan["conn_id"],
        region_name=plan["region"], dry_run="{{ params.dry_run }}")
    waited = AwsBackupRestoreJobWaitOperator(
        task_id="wait", restore_job_id=started.output, timeout_seconds=plan["timeout_seconds"],
        poll_seconds=plan["poll_seconds"], aws_conn_id=plan["conn_id"], region_name=plan["region"],
        dry_run="{{ params.dry_run }}")
    checked = validate(plan, waited.output)
    deleted = RdsRestoredInstanceDeleteOperator(
        task_id="delete_instance", db_instance_identifier=plan["db_instance_identifier"],
        protected_identifiers=plan["production_identifiers"], aws_conn_id=plan["conn_id"],
        region_name=plan["region"], dry_run="{{ params.dry_run }}").as_teardown(setups=started)
    checked >> deleted
    reported = report_validation()
    deleted >> reported
    reported >> journal()


dr_monthly_aws_backup_restore_test()
