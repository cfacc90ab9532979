"""The estate's ``backups:`` section: the backup systems beside pgBackRest, and the 3-2-1-1-0 scorecard.

Every system is optional. The daily verification checks each one through its provider's hook
(`drdrill.drills.backups`), and the scorecard counts, per cluster, the copies they hold:

- ``velero``: a Kubernetes cluster's Velero install (``velero.io/v1`` Schedules, Backups,
  BackupStorageLocations, Restores) through an Airflow Kubernetes connection;
- ``aws_backup``: an AWS Backup vault with its vault lock, a backup plan, its jobs, copy jobs
  to a DR-region vault and recovery points, and the coverage of production resources;
- ``object_lock``: S3 buckets that must be immutable (Object Lock COMPLIANCE, default
  retention, versioning), such as a pgBackRest repo's bucket or the evidence bucket;
- ``scorecard``: what the daily verification requires of each cluster (3 copies, 2 media,
  1 offsite, 1 immutable, 0 errors) and how old the last passed restore test may be.

Validated with the rest of the estate (`drdrill.core.estate`); errors name the field and the fix.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Copy(_Model):
    """Which cluster's data a backup system holds, for the 3-2-1-1-0 scorecard."""

    cluster: str = Field(description="an estate cluster whose data this system holds a copy of")
    repo: int | None = Field(None, ge=1, le=256, description="object_lock: the pgBackRest repo stored in the bucket")


# ------------------------------------------------------------------------------------------------ Velero
class VeleroBackupHook(_Model):
    """One Velero backup hook the estate expects on a schedule (the seed's ``postgres-quiesce``)."""

    name: str
    phase: Literal["pre", "post"] = "pre"


class VeleroSchedule(_Model):
    """A Velero Schedule that must exist and match (the seed's ``daily-production-backup``)."""

    name: str
    schedule: str | None = Field(None, description="cron, e.g. '0 2 * * *' (null: not compared)")
    included_namespaces: list[str] | None = None
    excluded_resources: list[str] | None = None
    ttl: str | None = Field(None, description="e.g. 720h0m0s")
    storage_location: str | None = None
    hooks: list[VeleroBackupHook] = Field(default_factory=list, description="backup hooks that must be on the schedule")
    max_backup_age_hours: float | None = Field(None, gt=0, description="default: the install's")


class VeleroRestoreTest(_Model):
    """The monthly Velero restore test: restore the newest backup of a schedule into mapped namespaces."""

    schedule: str = Field(description="restore the newest Completed backup of this schedule")
    namespace_mappings: dict[str, str] = Field(min_length=1, description="source -> restored namespace "
                                               "(suffixed per run), e.g. {production: production-restored}")
    timeout_seconds: float = Field(900, gt=0, description="the Restore must be Completed within this")
    ready_timeout_seconds: float = Field(600, gt=0, description="restored workloads must be Ready within this")


class Velero(_Model):
    """A Velero install in one Kubernetes cluster."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    conn_id: str = Field("kubernetes_default", description="Airflow Kubernetes connection")
    namespace: str = Field("velero", description="the namespace Velero runs in")
    max_backup_age_hours: float = Field(26, gt=0, description="the newest backup of each schedule is younger")
    storage_locations: list[str] = Field(default_factory=lambda: ["default"],
                                         description="BackupStorageLocations that must be Available")
    schedules: list[VeleroSchedule] = Field(default_factory=list)
    restore_test: VeleroRestoreTest | None = None
    copies: list[Copy] = Field(default_factory=list, description="clusters whose data these backups hold")


# -------------------------------------------------------------------------------------------- AWS Backup
class VaultLock(_Model):
    """The vault lock the vault must carry (the seed's: min 7, max 90 days)."""

    min_retention_days: int | None = Field(7, ge=1, description="null: not compared")
    max_retention_days: int | None = Field(90, ge=1, description="null: not compared")
    immutable: bool = Field(True, description="the lock must be in compliance mode with its grace period ended "
                            "(LockDate passed): nobody, root included, can change or remove it. false accepts a "
                            "lock still in its grace period or in governance mode (reported, not failed)")


class Lifecycle(_Model):
    """A rule's or copy action's lifecycle; null fields must be absent from the live lifecycle."""

    cold_storage_after_days: int | None = Field(None, description="MoveToColdStorageAfterDays")
    delete_after_days: int | None = Field(None, description="DeleteAfterDays")


class CopyAction(_Model):
    """A copy action of a plan rule (the seed's copy to the DR-region vault)."""

    destination_vault_arn: str = Field(description="e.g. arn:aws:backup:us-west-2:<account>:backup-vault:dr-vault")
    lifecycle: Lifecycle | None = Field(None, description="null: not compared")


class PlanRule(_Model):
    """One rule of the backup plan; fields left null are not compared."""

    name: str = Field(description="RuleName, e.g. hourly-rds")
    schedule: str | None = Field(None, description="ScheduleExpression, e.g. cron(0 * * * ? *)")
    target_vault: str | None = Field(None, description="TargetBackupVaultName")
    lifecycle: Lifecycle | None = Field(None, description="null: not compared")
    copy_actions: list[CopyAction] | None = Field(default_factory=list, description="the rule's copy actions, "
                                                  "exactly (an extra or missing one fails); null: not compared")


class BackupPlan(_Model):
    """The backup plan that must exist, found by name; its rules are compared when given (missing or extra fail)."""

    name: str = Field(description="BackupPlanName, e.g. production-backup-plan")
    rules: list[PlanRule] = Field(default_factory=list, description="every rule of the live plan (empty: only "
                                  "the plan's existence is checked)")


class DrVault(_Model):
    """The DR-region vault the plan copies to; its newest recovery point must be younger than the bound."""

    name: str
    region: str = Field(description="the DR vault's own region (read with a client of that region)")
    max_recovery_point_age_hours: float = Field(26, gt=0)


class AwsBackupRestoreTest(_Model):
    """Restore a recovery point into scratch (RDS), validate it, delete it, report the validation."""

    resource_arn: str = Field(description="the protected resource whose recovery points are restored "
                              "(e.g. arn:aws:rds:<region>:<account>:db:<identifier>)")
    recovery_point: Literal["latest", "random"] = Field("latest", description="the default pick (the DAG's param "
                                                        "overrides it); random is replayable by its journalled seed")
    iam_role_arn: str = Field(description="the role AWS Backup assumes for the restore")
    resource_type: str = Field("RDS", description="StartRestoreJob's ResourceType")
    metadata: dict[str, str] = Field(default_factory=dict, description="restore metadata overrides "
                                     "(e.g. DBInstanceClass, DBSubnetGroupName); DBInstanceIdentifier is the "
                                     "scratch instance's base name, suffixed per run (default drdrill-restore-test); "
                                     "a value naming a production instance is refused")
    conn_id: str | None = Field(None, description="Airflow Postgres connection for the restored instance "
                                "(login, password, database; the host comes from the restore)")
    cluster: str | None = Field(None, description="the estate cluster whose restore_test checks run on it")
    timeout_seconds: float = Field(3600, gt=0, description="the restore job must finish within this")
    poll_seconds: float = Field(30, gt=0, description="how often the restore job is read while waiting")


class AwsBackup(_Model):
    """An AWS Backup vault, its plan and what it must protect, in one account and region."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    conn_id: str = Field("aws_default", description="Airflow AWS connection (backup and, for coverage and the "
                         "restore test, rds)")
    region: str | None = Field(None, description="the vault's region (default: the connection's)")
    vault: str = Field(description="the vault the plan backs up into, e.g. production-vault")
    vault_lock: VaultLock | None = Field(VaultLock(), description="null: the vault lock is not checked")
    plan: BackupPlan | None = None
    dr_vault: DrVault | None = None
    max_job_age_hours: float = Field(26, gt=0, description="backup and copy jobs of this many hours are checked")
    protected_resources: list[str] = Field(default_factory=list,
                                           description="ARNs that must have a recovery point inside the bound")
    coverage_tags: dict[str, str] = Field(default_factory=dict, description="every RDS instance with these tags "
                                          "must be protected, e.g. {Environment: production}")
    max_recovery_point_age_hours: float = Field(26, gt=0)
    checks: list[Literal["vault_lock", "plan", "jobs", "copy_jobs", "recovery_points", "coverage"]] = Field(
        default_factory=lambda: ["vault_lock", "plan", "jobs", "copy_jobs", "recovery_points", "coverage"],
        description="which checks run (the sandbox's moto serves vault lock and plans only)")
    restore_test: AwsBackupRestoreTest | None = None
    copies: list[Copy] = Field(default_factory=list, description="clusters whose data the vault holds")

    @model_validator(mode="after")
    def _scratch_is_not_production(self) -> AwsBackup:
        rt = self.restore_test
        if rt is None:
            return self
        prod = {a.split(":")[6].lower() for a in [rt.resource_arn, *self.protected_resources]
                if len(a.split(":")) >= 7 and a.split(":")[2] == "rds" and a.split(":")[5] == "db"}
        named = sorted(f"{k}={v}" for k, v in rt.metadata.items() if str(v).lower() in prod)
        if named:
            raise ValueError(f"backups.aws_backup[{self.name}].restore_test.metadata names a production instance "
                             f"({', '.join(named)}): the restore test restores into a scratch instance; give "
                             f"DBInstanceIdentifier a scratch base name (it is suffixed per run)")
        return self


# ------------------------------------------------------------------------------------------- Object Lock
class ObjectLock(_Model):
    """An S3 bucket that must be immutable (WORM): checked by `drdrill.drills.backups.object_lock`."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    conn_id: str = Field("aws_default", description="Airflow AWS connection")
    region: str | None = Field(None, description="the bucket's region (default: the connection's)")
    bucket: str = Field(min_length=3, max_length=63, description="the S3 bucket that must be immutable")
    prefix: str = Field("", description="where the newest backup objects are (their retention is checked), "
                        "e.g. pgbackrest/backup/main/ for a pgBackRest repo whose repo-path is /pgbackrest")
    mode: Literal["COMPLIANCE", "GOVERNANCE"] = Field(
        "COMPLIANCE", description="the weakest default retention mode accepted; GOVERNANCE is weaker: it can be "
        "bypassed with s3:BypassGovernanceRetention")
    min_retention_days: int = Field(30, ge=1, description="the default retention (Days, or Years x 365) is at "
                                    "least this, and so is every newest object's lock from when it was written")
    newest_objects: int = Field(5, ge=0, description="how many of the newest objects under prefix must carry a "
                                "retain-until date in the future (0: not checked)")
    delete_probe: bool = Field(False, description="write a probe object and try to delete its version: the "
                               "delete must be refused (costs one small locked object per run)")
    probe_prefix: str = Field("drdrill/object-lock-probe/", min_length=1, description="where probe objects are "
                              "written (outside the backups' own paths, so no backup tool meets them)")
    copies: list[Copy] = Field(default_factory=list, description="clusters (and repos) whose data the bucket holds")


# --------------------------------------------------------------------------------------------- Scorecard
class Scorecard(_Model):
    """What 3-2-1-1-0 requires of every cluster; the daily run fails below it or when the score drops."""

    copies: int = Field(3, ge=1)
    media: int = Field(2, ge=1)
    offsite: int = Field(1, ge=0)
    immutable: int = Field(1, ge=0)
    max_restore_test_age_days: float = Field(35, gt=0, description="the '0': the last restore test passed "
                                             "within this many days")


class Backups(_Model):
    velero: list[Velero] = Field(default_factory=list)
    aws_backup: list[AwsBackup] = Field(default_factory=list)
    object_lock: list[ObjectLock] = Field(default_factory=list)
    scorecard: Scorecard = Scorecard()

    @model_validator(mode="after")
    def _unique(self) -> Backups:
        for kind in ("velero", "aws_backup", "object_lock"):
            names = [e.name for e in getattr(self, kind)]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"backups.{kind}: names must be unique, {', '.join(dup)} appears more than once")
        return self

    def copies_of(self, cluster: str) -> list[tuple[str, object, Copy]]:
        """(kind, entry, copy) for every backup system that holds a copy of ``cluster``'s data."""
        return [(kind, e, c) for kind in ("velero", "aws_backup", "object_lock") for e in getattr(self, kind)
                for c in e.copies if c.cluster == cluster]
