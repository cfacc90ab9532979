"""AWS Backup: vaults and their vault lock, backup plans, jobs, copy jobs, recovery points, restores.

`AwsBackupHook` is the amazon provider's `AwsBaseHook` with the ``backup`` client, so the Airflow
connection decides where the API is (AWS in production, moto in tests: ``endpoint_url`` in the
connection's extra). Nothing here reads the estate: drill logic
(`drdrill.drills.backups.aws_backup`) compares what the hook reads with the estate.

Every read that AWS answers with ``ResourceNotFoundException`` or ``AccessDeniedException`` (or
any other client error) raises a `DrillError` naming the vault, plan or job and the fix (the IAM
action the connection's role needs, or the resource to create), never a bare ``ClientError``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

from drdrill.core.errors import DrillError

log = logging.getLogger(__name__)

NOT_FOUND = ("ResourceNotFoundException", "DBInstanceNotFound", "DBInstanceNotFoundFault", "NotFound")
DENIED = ("AccessDeniedException", "AccessDenied", "UnauthorizedOperation", "UnrecognizedClientException",
          "InvalidClientTokenId", "ExpiredTokenException")
# Restore job states AWS Backup never leaves.
RESTORE_TERMINAL = ("COMPLETED", "ABORTED", "FAILED")


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (``""`` for anything else)."""
    resp = getattr(exc, "response", None) or {}
    return str((resp.get("Error") or {}).get("Code") or "")


def error_message(exc: BaseException) -> str:
    resp = getattr(exc, "response", None) or {}
    return str((resp.get("Error") or {}).get("Message") or exc)


@contextmanager
def aws_errors(what: str, action: str, *, missing_fix: str = "") -> Iterator[None]:
    """Turn a botocore ``ClientError`` of reading ``what`` into a `DrillError` naming it and the fix.

    :param what: the resource, e.g. ``backup vault production-vault (us-east-1)``
    :param action: the IAM action the call needs, e.g. ``backup:DescribeBackupVault``
    :param missing_fix: what to do when AWS says the resource does not exist
    """
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as e:
        code, msg = error_code(e), error_message(e)
        if code.isdigit():  # no AWS error document: the endpoint (a proxy, an emulator) does not serve the call
            raise DrillError(f"{what}: the endpoint answered HTTP {code} to {action}: it does not serve this call "
                             f"(moto, for one, lacks backup jobs, copy jobs, recovery points, protected resources "
                             f"and restore jobs); point the connection at AWS, or leave the check out of the "
                             f"entry's checks") from None
        if code in NOT_FOUND or "not found" in msg.lower():
            raise DrillError(f"{what} does not exist in this account and region ({code}: {msg}). "
                             f"{missing_fix or 'Create it, or fix the name and region in the estate.'}") from None
        if code in DENIED or "denied" in msg.lower() or "not authorized" in msg.lower():
            raise DrillError(f"{what}: the connection may not read it ({code}: {msg}). Grant {action} to the "
                             f"IAM identity of the Airflow AWS connection") from None
        raise DrillError(f"{what}: {action} failed ({code or type(e).__name__}: {msg})") from None
    except BotoCoreError as e:
        raise DrillError(f"{what}: {action} failed before AWS answered ({type(e).__name__}: {e}); check the "
                         f"connection's endpoint, region and credentials") from None


def _paginate(client: Any, operation: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in client.get_paginator(operation).paginate(**{k: v for k, v in kwargs.items() if v is not None}):
        out += page.get(key) or []
    return out


def _ts(value: Any) -> float | None:
    if value is None:
        return None
    return value.timestamp() if hasattr(value, "timestamp") else float(value)


class AwsBackupHook(AwsBaseHook):
    """AWS Backup through an Airflow AWS connection.

    :param aws_conn_id: Airflow AWS connection (``endpoint_url`` in its extra for moto or a proxy)
    :param region_name: AWS region (default: the connection's); the DR vault needs a hook of its own region

    Usage::

        hook = AwsBackupHook(aws_conn_id="aws_default", region_name="us-east-1")
        lock = hook.vault_lock("production-vault")      # Locked, MinRetentionDays, ..., LockDate
        plan = hook.plan_by_name("production-backup-plan")
        jobs = hook.backup_jobs(since=datetime.now(UTC) - timedelta(hours=26), vault="production-vault")
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "backup"
        super().__init__(*args, **kwargs)

    @property
    def where(self) -> str:
        return self.region_name or self.conn_region_name or "the connection's region"

    # ------------------------------------------------------------------ vaults
    def vault(self, name: str) -> dict[str, Any]:
        """``describe_backup_vault``: the vault with ``Locked``, ``MinRetentionDays``, ``MaxRetentionDays``,
        ``LockDate`` (absent: governance mode, or no lock)."""
        with aws_errors(f"backup vault {name} ({self.where})", "backup:DescribeBackupVault",
                        missing_fix="Create the vault, or fix the vault name and region in the estate's "
                                    "backups.aws_backup entry"):
            out = dict(self.conn.describe_backup_vault(BackupVaultName=name))
        out.pop("ResponseMetadata", None)
        return out

    def vault_lock(self, name: str) -> dict[str, Any]:
        """The vault lock state of vault ``name``: ``locked``, ``min_retention_days``,
        ``max_retention_days``, ``lock_date`` (epoch seconds or None), ``vault_arn``."""
        v = self.vault(name)
        return {"vault": name, "vault_arn": v.get("BackupVaultArn"), "locked": bool(v.get("Locked")),
                "min_retention_days": v.get("MinRetentionDays"), "max_retention_days": v.get("MaxRetentionDays"),
                "lock_date": _ts(v.get("LockDate"))}

    # ------------------------------------------------------------------ plans
    def plan_by_name(self, name: str) -> dict[str, Any]:
        """The backup plan named ``name`` (``get_backup_plan``: ``BackupPlanId``, ``BackupPlan.Rules``, ...).

        Raises `DrillError` when the account has no such plan or more than one.
        """
        with aws_errors(f"backup plan {name} ({self.where})", "backup:ListBackupPlans"):
            plans = _paginate(self.conn, "list_backup_plans", "BackupPlansList")
        found = [p for p in plans if p.get("BackupPlanName") == name and not p.get("DeletionDate")]
        if not found:
            names = sorted({str(p.get("BackupPlanName")) for p in plans})
            raise DrillError(f"backup plan {name} does not exist in this account and region ({self.where}); "
                             f"plans there: {', '.join(names) or 'none'}. Create it, or fix backups.aws_backup[]."
                             f"plan.name and the region in the estate")
        if len(found) > 1:
            raise DrillError(f"{len(found)} backup plans are named {name} ({self.where}): "
                             f"{[p.get('BackupPlanId') for p in found]}; delete the extra ones or rename them")
        plan_id = found[0]["BackupPlanId"]
        with aws_errors(f"backup plan {name} ({plan_id})", "backup:GetBackupPlan"):
            out = dict(self.conn.get_backup_plan(BackupPlanId=plan_id))
        out.pop("ResponseMetadata", None)
        return out

    # ------------------------------------------------------------------ jobs
    def backup_jobs(self, *, since: datetime, vault: str | None = None,
                    resource_arn: str | None = None) -> list[dict[str, Any]]:
        """Backup jobs created after ``since`` (every page), of ``vault`` and ``resource_arn`` when given."""
        with aws_errors(f"backup jobs of vault {vault or 'any'} ({self.where})", "backup:ListBackupJobs"):
            return _paginate(self.conn, "list_backup_jobs", "BackupJobs", ByCreatedAfter=since,
                             ByBackupVaultName=vault, ByResourceArn=resource_arn)

    def copy_jobs(self, *, since: datetime, source_vault: str | None = None) -> list[dict[str, Any]]:
        """Copy jobs created after ``since`` (every page); with ``source_vault``, only those copying from it."""
        with aws_errors(f"copy jobs of vault {source_vault or 'any'} ({self.where})", "backup:ListCopyJobs"):
            jobs = _paginate(self.conn, "list_copy_jobs", "CopyJobs", ByCreatedAfter=since)
        if source_vault:
            suffix = f":backup-vault:{source_vault}"
            jobs = [j for j in jobs if str(j.get("SourceBackupVaultArn") or "").endswith(suffix)
                    or j.get("SourceBackupVaultArn") == source_vault]
        return jobs

    # ------------------------------------------------------------------ recovery points
    def recovery_points(self, vault: str) -> list[dict[str, Any]]:
        """Recovery points in ``vault``, newest first."""
        with aws_errors(f"recovery points of backup vault {vault} ({self.where})",
                        "backup:ListRecoveryPointsByBackupVault",
                        missing_fix="Create the vault, or fix the vault name and region in the estate"):
            points = _paginate(self.conn, "list_recovery_points_by_backup_vault", "RecoveryPoints",
                               BackupVaultName=vault)
        return sorted(points, key=lambda p: _ts(p.get("CreationDate")) or 0, reverse=True)

    def recovery_points_of(self, resource_arn: str) -> list[dict[str, Any]]:
        """Recovery points of one protected resource (in any vault of this region), newest first."""
        with aws_errors(f"recovery points of {resource_arn}", "backup:ListRecoveryPointsByResource",
                        missing_fix="AWS Backup has never backed it up: check that a backup plan selects it"):
            points = _paginate(self.conn, "list_recovery_points_by_resource", "RecoveryPoints",
                               ResourceArn=resource_arn)
        return sorted(points, key=lambda p: _ts(p.get("CreationDate")) or 0, reverse=True)

    def protected_resources(self) -> dict[str, dict[str, Any]]:
        """Every resource AWS Backup has a recovery point of, by ARN (``LastBackupTime``, ``ResourceType``...)."""
        with aws_errors(f"protected resources ({self.where})", "backup:ListProtectedResources"):
            items = _paginate(self.conn, "list_protected_resources", "Results")
        return {str(r["ResourceArn"]): r for r in items if r.get("ResourceArn")}

    # ------------------------------------------------------------------ restores
    def start_restore_job(self, *, recovery_point_arn: str, iam_role_arn: str, metadata: dict[str, str],
                          resource_type: str | None = None, idempotency_token: str | None = None) -> str:
        """``start_restore_job``; returns the restore job id."""
        kwargs: dict[str, Any] = {"RecoveryPointArn": recovery_point_arn, "IamRoleArn": iam_role_arn,
                                  "Metadata": dict(metadata)}
        if resource_type:
            kwargs["ResourceType"] = resource_type
        if idempotency_token:
            kwargs["IdempotencyToken"] = idempotency_token
        with aws_errors(f"restore of recovery point {recovery_point_arn}", "backup:StartRestoreJob (and "
                        "iam:PassRole on the restore role)"):
            job_id = self.conn.start_restore_job(**kwargs)["RestoreJobId"]
        log.info("AWS Backup restore job %s started from %s", job_id, recovery_point_arn)
        return str(job_id)

    def describe_restore_job(self, job_id: str) -> dict[str, Any]:
        """The restore job (``Status``, ``StatusMessage``, ``CreatedResourceArn``, ...)."""
        with aws_errors(f"restore job {job_id}", "backup:DescribeRestoreJob"):
            out = dict(self.conn.describe_restore_job(RestoreJobId=job_id))
        out.pop("ResponseMetadata", None)
        return out

    def put_restore_validation_result(self, job_id: str, status: str, message: str = "") -> None:
        """Report the restore test's verdict on a restore job.

        :param status: ``SUCCESSFUL``, ``FAILED``, ``TIMED_OUT`` or ``VALIDATING``
        """
        kwargs: dict[str, Any] = {"RestoreJobId": job_id, "ValidationStatus": status}
        if message:
            kwargs["ValidationStatusMessage"] = message[:1000]
        with aws_errors(f"restore job {job_id}", "backup:PutRestoreValidationResult"):
            self.conn.put_restore_validation_result(**kwargs)
        log.info("restore job %s: validation %s reported", job_id, status)
