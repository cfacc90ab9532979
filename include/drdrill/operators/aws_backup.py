"""AWS Backup restore steps as operators: start a restore job, wait for it, delete the restored instance,
report the validation. Usable in any DAG with explicit arguments and an Airflow AWS connection; the
monthly AWS Backup restore test (`dags/dr_monthly_aws_backup_restore_test.py`) is built from them.

Usage::

    started = AwsBackupStartRestoreJobOperator(
        task_id="start_restore", recovery_point_arn=rp_arn, iam_role_arn=role,
        metadata={"DBInstanceIdentifier": "restore-test-0412", "DBInstanceClass": "db.t3.micro"})
    waited = AwsBackupRestoreJobWaitOperator(task_id="wait", restore_job_id=started.output,
                                             timeout_seconds=3600)
    deleted = RdsRestoredInstanceDeleteOperator(task_id="delete", db_instance_identifier="restore-test-0412",
                                                protected_identifiers=["production-db"]).as_teardown(setups=started)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drdrill.operators.base import DrillOperator, truthy


def job_id_of(value: Any) -> str | None:
    """A restore job id given as itself or as `AwsBackupStartRestoreJobOperator`'s output (``.output``)."""
    if isinstance(value, dict):
        value = value.get("restore_job_id")
    return None if value in (None, "", "None") else str(value)


class _AwsBackupOperator(DrillOperator):
    def __init__(self, *, aws_conn_id: str = "aws_default", region_name: str | None = None, dry_run: Any = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.dry_run = dry_run

    def backup_hook(self) -> Any:
        from drdrill.hooks.aws_backup import AwsBackupHook

        return AwsBackupHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name or None)

    def rds_hook(self) -> Any:
        from airflow.providers.amazon.aws.hooks.rds import RdsHook

        return RdsHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name or None)


class AwsBackupStartRestoreJobOperator(_AwsBackupOperator):
    """``StartRestoreJob`` of a recovery point.

    :param recovery_point_arn: the recovery point to restore
    :param iam_role_arn: the role AWS Backup assumes for the restore
    :param metadata: the restore metadata (for RDS: ``DBInstanceIdentifier`` of the new instance, which must
        not be a production instance: give one per run)
    :param resource_type: e.g. ``RDS``
    :param aws_conn_id: Airflow AWS connection; ``region_name``: the recovery point's region
    :param check_kill_switch: read drdrill's kill switch (the Airflow Variable ``drdrill_kill_switch``)
        right before starting: engaged, or unreadable, fails the task with nothing started
    :param dry_run: log what would start, start nothing

    Returns ``{"restore_job_id", "db_instance_identifier", "started_at", "kill_switch"}`` (job id None on a
    dry run).
    """

    template_fields: Sequence[str] = ("recovery_point_arn", "iam_role_arn", "metadata", "resource_type",
                                      "aws_conn_id", "region_name", "dry_run")

    def __init__(self, *, recovery_point_arn: str, iam_role_arn: str, metadata: dict[str, str],
                 resource_type: str | None = "RDS", check_kill_switch: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check_kill_switch = check_kill_switch
        self.recovery_point_arn = recovery_point_arn
        self.iam_role_arn = iam_role_arn
        self.metadata = metadata
        self.resource_type = resource_type

    def run(self, context: Any) -> dict[str, Any]:
        from drdrill.drills.backups.aws_backup_restore import IDENTIFIER_KEY, start

        plan = {"recovery_point_arn": self.recovery_point_arn, "iam_role_arn": self.iam_role_arn,
                "metadata": dict(self.metadata), "resource_type": self.resource_type,
                "db_instance_identifier": dict(self.metadata).get(IDENTIFIER_KEY)}
        if truthy(self.dry_run):
            self.log.info("[DRY RUN] would restore %s into %s", self.recovery_point_arn,
                          plan["db_instance_identifier"])
            return {"restore_job_id": None, "db_instance_identifier": plan["db_instance_identifier"],
                    "started_at": None}
        verdict = None
        if self.check_kill_switch:  # right before the action: nothing started yet
            from drdrill.core.killswitch import check_kill_switch

            verdict = check_kill_switch(f"the AWS Backup restore of {self.recovery_point_arn}")
        return {**start(self.backup_hook(), plan), "kill_switch": verdict}


class AwsBackupRestoreJobWaitOperator(_AwsBackupOperator):
    """Wait (bounded) until a restore job is ``COMPLETED``; fails naming the job when it is ``FAILED`` or
    ``ABORTED`` or still running after ``timeout_seconds``.

    :param restore_job_id: the job id, or the start operator's ``output``

    Returns ``{"restore_job_id", "status", "seconds", "created_resource_arn"}``.
    """

    template_fields: Sequence[str] = ("restore_job_id", "timeout_seconds", "poll_seconds", "aws_conn_id",
                                      "region_name", "dry_run")

    def __init__(self, *, restore_job_id: Any, timeout_seconds: float | str = 3600, poll_seconds: float | str = 30,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.restore_job_id = restore_job_id
        self.timeout_seconds = timeout_seconds
        self.poll_seconds = poll_seconds

    def run(self, context: Any) -> dict[str, Any]:
        from drdrill.drills.backups.aws_backup_restore import wait

        job_id = job_id_of(self.restore_job_id)
        if truthy(self.dry_run) or job_id is None:
            self.log.info("[DRY RUN] would wait for the restore job")
            return {"restore_job_id": None, "status": "DRY_RUN", "seconds": 0.0, "created_resource_arn": None}
        return wait(self.backup_hook(), job_id, timeout_seconds=float(self.timeout_seconds),
                    poll_seconds=float(self.poll_seconds))


class RdsRestoredInstanceDeleteOperator(_AwsBackupOperator):
    """Delete a restored (scratch) RDS instance without a final snapshot: the teardown of a restore test.

    An instance that does not exist is fine (nothing was restored, or it is gone already); an identifier in
    ``protected_identifiers`` (the production instances) is refused.

    Returns ``{"db_instance_identifier", "deleted", "reason"?}``.
    """

    template_fields: Sequence[str] = ("db_instance_identifier", "protected_identifiers", "aws_conn_id",
                                      "region_name", "dry_run")

    def __init__(self, *, db_instance_identifier: str, protected_identifiers: Sequence[str] = (),
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.db_instance_identifier = db_instance_identifier
        self.protected_identifiers = protected_identifiers

    def run(self, context: Any) -> dict[str, Any]:
        from drdrill.drills.backups.aws_backup_restore import delete

        if truthy(self.dry_run):
            self.log.info("[DRY RUN] would delete RDS instance %s", self.db_instance_identifier)
            return {"db_instance_identifier": self.db_instance_identifier, "deleted": False, "reason": "dry run"}
        return delete(self.rds_hook(), str(self.db_instance_identifier),
                      production={str(i).lower() for i in self.protected_identifiers or ()})


class AwsBackupRestoreValidationOperator(_AwsBackupOperator):
    """``PutRestoreValidationResult``: ``SUCCESSFUL`` when every check in ``results`` passed, else ``FAILED``
    with the failed checks (or ``error``) as the message.

    :param restore_job_id: the completed restore job
    :param results: `CheckResult` dicts of the validation (e.g. ``RowCountCheckOperator``'s ``results``)
    :param error: why the validation could not run (reported as ``FAILED``)

    Returns ``{"restore_job_id", "validation_status", "message"}``.
    """

    template_fields: Sequence[str] = ("restore_job_id", "results", "error", "aws_conn_id", "region_name", "dry_run")

    def __init__(self, *, restore_job_id: Any, results: Any = None, error: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.restore_job_id = restore_job_id
        self.results = results
        self.error = error

    def run(self, context: Any) -> dict[str, Any]:
        from drdrill.drills.backups.aws_backup_restore import report, verdict

        status, message = verdict(list(self.results or []), self.error or None)
        if truthy(self.dry_run):
            self.log.info("[DRY RUN] would report %s: %s", status, message)
            return {"restore_job_id": self.restore_job_id, "validation_status": status, "message": message}
        return report(self.backup_hook(), str(job_id_of(self.restore_job_id)), status, message)
