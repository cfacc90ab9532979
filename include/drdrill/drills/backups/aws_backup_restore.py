"""AWS Backup's restore test: restore a recovery point into a scratch RDS instance, prove it, delete it.

The steps (`dags/dr_monthly_aws_backup_restore_test.py` runs them as tasks; `run` runs them in one
call for a user's own code):

1. `preflight`: the entry's ``restore_test``, the scratch instance's metadata (`restore_metadata`: the
   estate's metadata with ``DBInstanceIdentifier`` suffixed per run; metadata naming a production
   instance identifier is refused before anything starts) and the recovery point
   (`pick_recovery_point`: ``latest``, or ``random`` with the seed journalled so that the same seed
   picks the same point again while the resource's recovery points are the same);
2. `start`: ``start_restore_job`` into the scratch identifier;
3. `wait`: the restore job read every ``poll_seconds`` until it is ``COMPLETED``, at most
   ``timeout_seconds``; ``FAILED`` / ``ABORTED`` or the bound passed raise a `DrillError` naming it;
4. `validate`: the restored instance's endpoint from RDS ``describe_db_instances``, credentials from
   the Postgres connection ``restore_test.conn_id``, and the data-quality checks of
   `drdrill.drills.dataquality` (the cluster's ``restore_test.critical_tables`` present and not empty);
5. `delete`: the scratch instance deleted (always, also after a failed run; one that is already gone
   is fine, and a restore job still running is named: the instance it creates later must be deleted);
6. `report`: ``put_restore_validation_result`` ``SUCCESSFUL`` or ``FAILED`` with the reason, on a
   restore job that completed (a failed or unfinished job has its own state in AWS Backup).
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from drdrill.core.backups import AwsBackup, AwsBackupRestoreTest
from drdrill.core.checks import CheckResult, Status
from drdrill.core.errors import DrillError, PreflightError

log = logging.getLogger(__name__)

DEFAULT_IDENTIFIER = "drdrill-restore-test"
IDENTIFIER_KEY = "DBInstanceIdentifier"
# RDS: 1-63 letters, digits or hyphens, a letter first, no two hyphens in a row, no hyphen last.
_RDS_ID = re.compile(r"^[a-zA-Z](?!.*--)[a-zA-Z0-9-]{0,62}(?<!-)$")


class RestoreJobError(DrillError):
    """The restore job failed, was aborted, or did not complete within its bound (``status``: its last state)."""

    def __init__(self, message: str, *, job_id: str, status: str) -> None:
        super().__init__(message)
        self.job_id, self.status = job_id, status


# ------------------------------------------------------------------------------------------- preflight
def restore_test_of(entry: AwsBackup) -> AwsBackupRestoreTest:
    if entry.restore_test is None:
        raise PreflightError(f"backups.aws_backup {entry.name} has no restore_test: add restore_test (resource_arn, "
                             f"iam_role_arn, conn_id, cluster) to the entry")
    return entry.restore_test


def rds_identifier(arn: str) -> str | None:
    """``production-db`` of ``arn:aws:rds:<region>:<account>:db:production-db`` (None for other ARNs)."""
    parts = str(arn).split(":")
    if len(parts) >= 7 and parts[2] == "rds" and parts[5] == "db":
        return parts[6]
    return None


def production_identifiers(entry: AwsBackup, more: list[str] | tuple[str, ...] = ()) -> set[str]:
    """The RDS instance identifiers the entry names as production (restored resource, protected resources)."""
    arns = list(entry.protected_resources) + ([entry.restore_test.resource_arn] if entry.restore_test else [])
    ids = {i for i in (rds_identifier(a) for a in arns) if i}
    return {i.lower() for i in ids | set(more)}


def run_suffix(run_id: str) -> str:
    """8 hex characters of the run id: the same run gets the same scratch instance name."""
    return hashlib.sha256(run_id.encode()).hexdigest()[:8]


def restore_metadata(entry: AwsBackup, run_id: str, *, production: set[str] | None = None) -> dict[str, str]:
    """The restore metadata for this run: the estate's, with ``DBInstanceIdentifier`` = base + run suffix.

    Refuses (`PreflightError`) a metadata value naming a production instance identifier, whatever the
    key, and a base identifier RDS would refuse.
    """
    rt = restore_test_of(entry)
    prod = production if production is not None else production_identifiers(entry)
    meta = {str(k): str(v) for k, v in rt.metadata.items()}
    named = sorted(f"{k}={v}" for k, v in meta.items() if v.lower() in prod)
    if named:
        raise PreflightError(f"backups.aws_backup {entry.name}.restore_test.metadata names a production instance "
                             f"({', '.join(named)}): the restore test must restore into a scratch instance. Give "
                             f"DBInstanceIdentifier a scratch base name (default {DEFAULT_IDENTIFIER}); it is "
                             f"suffixed per run")
    base = meta.get(IDENTIFIER_KEY) or DEFAULT_IDENTIFIER
    ident = f"{base}-{run_suffix(run_id)}"
    if not _RDS_ID.match(ident):
        raise PreflightError(f"backups.aws_backup {entry.name}.restore_test.metadata.DBInstanceIdentifier {base!r} "
                             f"gives {ident!r}, which RDS refuses: letters, digits and single hyphens, a letter "
                             f"first, at most 54 characters before the run suffix")
    if ident.lower() in prod:
        raise PreflightError(f"the scratch identifier {ident} is a production instance: rename the base")
    meta[IDENTIFIER_KEY] = ident
    return meta


def _ts(value: Any) -> float:
    return value.timestamp() if hasattr(value, "timestamp") else float(value)


def pick_recovery_point(points: list[dict[str, Any]], mode: str, seed: int | None = None) -> dict[str, Any]:
    """The recovery point to restore among ``points`` (completed ones only).

    ``latest``: the newest. ``random``: ``random.Random(seed)`` chooses among them ordered oldest first
    (a new seed is drawn when None); the same seed picks the same point while the points are the same.
    Returns ``recovery_point_arn``, ``created`` (ISO), ``vault``, ``mode``, ``seed``, ``candidates``.
    """
    done = sorted((p for p in points if p.get("Status", "COMPLETED") == "COMPLETED"),
                  key=lambda p: (_ts(p["CreationDate"]), str(p.get("RecoveryPointArn"))))
    if not done:
        raise DrillError("no completed recovery point to restore: AWS Backup lists none for the resource. Check the "
                         "plan's backup jobs for it (and restore_test.resource_arn)")
    if mode == "latest":
        chosen, used_seed = done[-1], None
    elif mode == "random":
        used_seed = int(seed) if seed is not None else secrets.randbelow(2**31)
        chosen = random.Random(used_seed).choice(done)
    else:
        raise PreflightError(f"recovery_point {mode!r}: give latest or random")
    return {"recovery_point_arn": chosen["RecoveryPointArn"],
            "created": datetime.fromtimestamp(_ts(chosen["CreationDate"]), UTC).isoformat(timespec="seconds"),
            "vault": chosen.get("BackupVaultName"), "mode": mode, "seed": used_seed, "candidates": len(done)}


def preflight(entry: AwsBackup, backup: Any, *, run_id: str, recovery_point: str | None = None,
              seed: int | None = None, production: set[str] | None = None) -> dict[str, Any]:
    """What this run restores and into what; nothing is started. Refusals raise `PreflightError` before any
    AWS call. ``production``: the production instance identifiers (default: `production_identifiers`)."""
    rt = restore_test_of(entry)
    if not rt.conn_id:
        raise PreflightError(f"backups.aws_backup {entry.name}.restore_test.conn_id is not set: name the Airflow "
                             f"Postgres connection whose login, password and database open the restored instance")
    metadata = restore_metadata(entry, run_id, production=production)
    point = pick_recovery_point(backup.recovery_points_of(rt.resource_arn), recovery_point or rt.recovery_point, seed)
    log.info("restore test %s: %s recovery point %s (%s; seed %s) into %s", entry.name, point["mode"],
             point["recovery_point_arn"], point["created"], point["seed"], metadata[IDENTIFIER_KEY])
    return {"entry": entry.name, "resource_arn": rt.resource_arn, **point, "metadata": metadata,
            "db_instance_identifier": metadata[IDENTIFIER_KEY], "iam_role_arn": rt.iam_role_arn,
            "resource_type": rt.resource_type, "timeout_seconds": rt.timeout_seconds,
            "poll_seconds": rt.poll_seconds, "run_suffix": run_suffix(run_id)}


# --------------------------------------------------------------------------------------------- restore
def start(backup: Any, plan: dict[str, Any]) -> dict[str, Any]:
    """``start_restore_job`` of the plan's recovery point into its scratch identifier."""
    job_id = backup.start_restore_job(recovery_point_arn=plan["recovery_point_arn"], iam_role_arn=plan["iam_role_arn"],
                                      metadata=plan["metadata"], resource_type=plan.get("resource_type"),
                                      idempotency_token=f"drdrill-{plan['db_instance_identifier']}")
    return {"restore_job_id": job_id, "db_instance_identifier": plan["db_instance_identifier"],
            "started_at": time.time()}


def wait(backup: Any, job_id: str, *, timeout_seconds: float, poll_seconds: float = 30,
         sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Read the restore job until it is ``COMPLETED``; `DrillError` when it fails or outlives the bound."""
    t0 = clock()
    while True:
        job = backup.describe_restore_job(job_id)
        status = str(job.get("Status") or "")
        if status == "COMPLETED":
            return {"restore_job_id": job_id, "status": status, "seconds": round(clock() - t0, 3),
                    "created_resource_arn": job.get("CreatedResourceArn")}
        if status in ("FAILED", "ABORTED"):
            raise RestoreJobError(f"restore job {job_id} {status}: {job.get('StatusMessage') or 'no StatusMessage'}. "
                                  f"Read the job in the AWS Backup console; check the restore role and metadata",
                                  job_id=job_id, status=status)
        elapsed = clock() - t0
        if elapsed >= timeout_seconds:
            raise RestoreJobError(f"restore job {job_id} still {status or 'unknown'} after {elapsed:.0f}s: it did not "
                                  f"complete within restore_test.timeout_seconds ({timeout_seconds:g}s). The scratch "
                                  f"instance is deleted by the teardown; raise the bound if restores take longer",
                                  job_id=job_id, status=status or "unknown")
        sleep(min(poll_seconds, max(0.0, timeout_seconds - elapsed)))


def endpoint(rds: Any, identifier: str) -> tuple[str, int]:
    """The restored instance's (address, port) from RDS ``describe_db_instances``."""
    from drdrill.hooks.aws_backup import aws_errors

    with aws_errors(f"restored RDS instance {identifier}", "rds:DescribeDBInstances",
                    missing_fix="The restore job completed but RDS has no such instance: check the job's "
                                "CreatedResourceArn"):
        dbs = rds.conn.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
    ep = (dbs[0].get("Endpoint") if dbs else None) or {}
    if not ep.get("Address"):
        raise DrillError(f"restored RDS instance {identifier} has no endpoint yet (status "
                         f"{dbs[0].get('DBInstanceStatus') if dbs else 'unknown'})")
    return str(ep["Address"]), int(ep.get("Port") or 5432)


def validate(host: str, port: int, *, conn_id: str, critical_tables: list[str], target: str,
             database: str | None = None, expected_tables: list[str] | None = None,
             min_counts: dict[str, int] | None = None) -> list[CheckResult]:
    """The data-quality checks of the restore test on the restored instance: every critical table present
    and not empty (and ``min_counts``). Credentials from the Postgres connection ``conn_id``."""
    from drdrill.drills.dataquality import validate_restore
    from drdrill.hooks.postgres import PostgresNodeHook

    if not critical_tables and not min_counts and expected_tables is None:
        return [CheckResult("restore_validation", Status.FAIL, "nothing to validate: give restore_test.cluster "
                            "(a cluster with restore_test.critical_tables) so the restored data is checked", target)]
    url = PostgresNodeHook(host=host, port=port, database=database, postgres_conn_id=conn_id).sqlalchemy_url_string()
    report = validate_restore(sqlalchemy_url=url, expected_tables=expected_tables, expected_counts=None,
                              tolerances={}, critical_tables=list(critical_tables), canaries=[], target=target,
                              min_counts=min_counts)
    # No ledger exists for a recovery point AWS took: the row-count SKIP says so; the rest must pass.
    return report.results


def delete(rds: Any, identifier: str, *, production: set[str], job: dict[str, Any] | None = None) -> dict[str, Any]:
    """Delete the scratch instance (no final snapshot); one already gone is fine. Refuses a production identifier."""
    from botocore.exceptions import ClientError

    from drdrill.hooks.aws_backup import NOT_FOUND, aws_errors, error_code

    if not identifier or identifier.lower() in production:
        raise PreflightError(f"refusing to delete RDS instance {identifier!r}: it is a production instance (or none "
                             f"was given)")
    with aws_errors(f"restored RDS instance {identifier}", "rds:DeleteDBInstance"):
        try:
            rds.conn.delete_db_instance(DBInstanceIdentifier=identifier, SkipFinalSnapshot=True,
                                        DeleteAutomatedBackups=True)
        except ClientError as e:
            if error_code(e) not in NOT_FOUND:
                raise
            still = (job or {}).get("status")
            note = (f"; restore job {(job or {}).get('restore_job_id')} is still {still}: delete the instance it "
                    f"creates later (aws rds delete-db-instance --db-instance-identifier {identifier} "
                    f"--skip-final-snapshot)" if still and still not in ("COMPLETED", "FAILED", "ABORTED") else "")
            log.warning("RDS instance %s does not exist: nothing to delete%s", identifier, note)
            return {"db_instance_identifier": identifier, "deleted": False, "reason": f"not found: nothing to "
                    f"delete{note}"}
    log.info("restored RDS instance %s deleted", identifier)
    return {"db_instance_identifier": identifier, "deleted": True}


def verdict(results: list[dict[str, Any]] | None, error: str | None = None) -> tuple[str, str]:
    """``(SUCCESSFUL|FAILED, message)`` from the validation's results (or the error that stopped the run)."""
    if error:
        return "FAILED", error[:1000]
    checks = [CheckResult.from_dict(r) for r in results or []]
    failed = [c for c in checks if c.failed]
    if failed:
        return "FAILED", "; ".join(c.line() for c in failed)[:1000]
    if not checks:
        return "FAILED", "the restored instance was not validated"
    return "SUCCESSFUL", f"{sum(c.status is Status.PASS for c in checks)} data-quality checks passed"


def report(backup: Any, job_id: str, status: str, message: str) -> dict[str, Any]:
    backup.put_restore_validation_result(job_id, status, message)
    return {"restore_job_id": job_id, "validation_status": status, "message": message}


# ------------------------------------------------------------------------------------------ all at once
def run(entry: AwsBackup, estate: Any, *, backup: Any, rds: Any, run_id: str, recovery_point: str | None = None,
        seed: int | None = None, sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Every step in one call: the instance is deleted and the validation reported whatever fails.

    Returns the steps' outcomes with ``status`` ``passed`` or ``failed`` and ``error``; raises only what
    `preflight` refuses or cannot read (nothing started then).
    """
    plan = preflight(entry, backup, run_id=run_id, recovery_point=recovery_point, seed=seed)
    rt = restore_test_of(entry)
    out: dict[str, Any] = {"plan": plan, "results": []}
    error = None
    job: dict[str, Any] = {}
    try:
        started = start(backup, plan)
        job = {"restore_job_id": started["restore_job_id"], "status": "RUNNING"}
        out["start"] = started
        job = wait(backup, started["restore_job_id"], timeout_seconds=plan["timeout_seconds"],
                   poll_seconds=plan["poll_seconds"], sleep=sleep, clock=clock)
        out["wait"] = job
        host, port = endpoint(rds, plan["db_instance_identifier"])
        tables, database = critical_tables(rt, estate)
        out["results"] = [r.to_dict() for r in validate(host, port, conn_id=str(rt.conn_id), critical_tables=tables,
                                                         database=database,
                                                         target=f"aws_backup/{entry.name}/restore_test")]
    except RestoreJobError as e:
        error, job = str(e), {"restore_job_id": e.job_id, "status": e.status}
    except DrillError as e:
        error = str(e)
    finally:
        try:
            out["delete"] = delete(rds, plan["db_instance_identifier"], production=production_identifiers(entry),
                                   job=job)
        except DrillError as e:  # still report the validation; the run fails naming the instance left behind
            out["delete"] = {"db_instance_identifier": plan["db_instance_identifier"], "deleted": False,
                             "reason": str(e)}
            error = f"{error}; {e}" if error else str(e)
        # A validation is reported on a completed restore job only: a failed or unfinished one has its own state.
        if job.get("status") == "COMPLETED":
            status, message = verdict(out["results"], error)
            try:
                out["report"] = report(backup, job["restore_job_id"], status, message)
            except DrillError as e:
                error = f"{error}; {e}" if error else str(e)
    failed = error is not None or (out.get("report") or {}).get("validation_status") != "SUCCESSFUL"
    out.update(status="failed" if failed else "passed", error=error)
    return out


def critical_tables(rt: AwsBackupRestoreTest, estate: Any) -> tuple[list[str], str | None]:
    """The cluster's ``restore_test.critical_tables`` (none without ``restore_test.cluster``) and the database
    to check (None: the Postgres connection's)."""
    if not rt.cluster:
        return [], None
    c = estate.cluster(rt.cluster)
    return list(c.restore_test.critical_tables if c.restore_test else []), None


# ------------------------------------------------------------------------------- the DAG's steps (estate)
def entry_of(estate: Any, name: str) -> AwsBackup:
    for e in estate.backups.aws_backup:
        if e.name == name:
            return e
    names = ", ".join(e.name for e in estate.backups.aws_backup) or "none"
    raise PreflightError(f"backups.aws_backup has no entry {name!r} (entries: {names}); fix the entry param or "
                         f"the estate")


def _hooks(entry: AwsBackup) -> tuple[Any, Any]:
    from airflow.providers.amazon.aws.hooks.rds import RdsHook

    from drdrill.hooks.aws_backup import AwsBackupHook

    return (AwsBackupHook(aws_conn_id=entry.conn_id, region_name=entry.region),
            RdsHook(aws_conn_id=entry.conn_id, region_name=entry.region))


def preflight_in_estate(name: str, *, run_id: str, recovery_point: str | None = None, seed: int | None = None,
                        estate: Any = None) -> dict[str, Any]:
    """`preflight` of the estate's entry ``name``, with what the later steps need (connection, region, the
    production identifiers the teardown must never delete: the entry's, and RDS instances carrying its
    ``coverage_tags``)."""
    from drdrill.core.estate import load_estate
    from drdrill.drills.backups.aws_backup import tagged_rds_instances

    estate = estate or load_estate()
    entry = entry_of(estate, name)
    rt = restore_test_of(entry)
    if rt.cluster:
        estate.cluster(rt.cluster)  # an unknown cluster fails here, naming it
    backup, rds = _hooks(entry)
    tagged = list(tagged_rds_instances(rds, entry.coverage_tags).values()) if entry.coverage_tags else []
    production = production_identifiers(entry, tagged)
    plan = preflight(entry, backup, run_id=run_id, recovery_point=recovery_point, seed=seed, production=production)
    return {**plan, "conn_id": entry.conn_id, "region": entry.region, "cluster": rt.cluster,
            "production_identifiers": sorted(production), "postgres_conn_id": rt.conn_id}


def validate_in_estate(plan: dict[str, Any], *, estate: Any = None) -> dict[str, Any]:
    """The restored instance's endpoint from RDS, then `validate` with the cluster's critical tables."""
    from drdrill.core.estate import load_estate

    estate = estate or load_estate()
    entry = entry_of(estate, plan["entry"])
    rt = restore_test_of(entry)
    _, rds = _hooks(entry)
    host, port = endpoint(rds, plan["db_instance_identifier"])
    tables, database = critical_tables(rt, estate)
    results = validate(host, port, conn_id=str(rt.conn_id), critical_tables=tables, database=database,
                       target=f"aws_backup/{entry.name}/restore_test")
    for r in results:
        (log.warning if r.failed else log.info)("%s", r.line())
    return {"host": host, "port": port, "results": [r.to_dict() for r in results]}


def report_in_estate(plan: dict[str, Any] | None, waited: dict[str, Any] | None, validated: dict[str, Any] | None,
                     *, dry_run: bool = False, estate: Any = None) -> dict[str, Any]:
    """``PutRestoreValidationResult`` for a completed restore job: SUCCESSFUL when every validation check
    passed, else FAILED with the failed checks (or "not validated" when the validation did not run). A job
    that did not complete gets none (its own state says it)."""
    from drdrill.core.estate import load_estate

    if not plan or not waited or waited.get("status") != "COMPLETED":
        why = "dry run" if dry_run else "the restore job did not complete: no validation to report"
        return {"reported": False, "reason": why}
    status, message = verdict((validated or {}).get("results"),
                              None if validated else "the validation did not run (see the validate step)")
    if dry_run:
        return {"reported": False, "reason": "dry run", "validation_status": status, "message": message}
    entry = entry_of(estate or load_estate(), plan["entry"])
    backup, _ = _hooks(entry)
    return {"reported": True, **report(backup, waited["restore_job_id"], status, message)}


def as_results(items: list[dict[str, Any]] | None) -> list[CheckResult]:
    return [CheckResult.from_dict(d) for d in items or []]
