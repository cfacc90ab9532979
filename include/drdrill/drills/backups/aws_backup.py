"""AWS Backup's daily checks: vault lock, plan, jobs, copy jobs, recovery points, coverage.

`daily` runs the checks an ``backups.aws_backup`` entry lists in ``checks`` through
`drdrill.hooks.aws_backup.AwsBackupHook` (and the amazon provider's ``RdsHook`` for coverage):

- ``aws_backup_vault_lock``: the vault is locked with the estate's min/max retention; with
  ``vault_lock.immutable`` the lock must be final: compliance mode (a ``LockDate``) whose grace
  period has ended. A lock still in its grace period (``LockDate`` ahead) or in governance mode (no
  ``LockDate``: anyone with the IAM permission may remove it) fails, naming the ``LockDate``.
- ``aws_backup_plan``: the plan exists and each rule matches the estate (schedule, target vault,
  lifecycle, copy actions with their destination and lifecycle), each drifted field named live vs
  estate; a rule the estate names that is missing, or a live rule it does not name, fails.
- ``aws_backup_jobs``: every backup job of the vault created in the last ``max_job_age_hours`` is
  ``COMPLETED`` (jobs still running are reported, not failed); ``FAILED`` / ``ABORTED`` /
  ``EXPIRED`` / ``PARTIAL`` are named with their ``StatusMessage``; no job at all fails.
- ``aws_backup_copy_jobs``: the copy jobs from the vault in the same window are ``COMPLETED``;
  failed ones named. With a ``dr_vault``, no copy job at all fails too (the plan copies there).
- ``aws_backup_recovery_point``: the newest completed recovery point of the vault, and of the DR
  vault (read in its own region), is younger than its bound.
- ``aws_backup_coverage``: every ``protected_resources`` ARN, and every RDS instance carrying
  ``coverage_tags``, appears in ``list_protected_resources`` with a backup inside the bound. A
  database created without the plan's selection tag is named as unprotected.

Targets: ``aws_backup/<entry>`` (vault lock, recovery point), ``aws_backup/<entry>/plan[/<rule>]``,
``aws_backup/<entry>/jobs``, ``aws_backup/<entry>/copy_jobs``, ``aws_backup/<entry>/dr_vault``,
``aws_backup/<entry>/coverage/<resource>``. A vault, plan or resource the account does not have,
or may not read, is a failed check naming it and the fix, never an exception.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from drdrill.core.backups import AwsBackup, BackupPlan, CopyAction, Lifecycle, PlanRule
from drdrill.core.checks import CheckResult, Status
from drdrill.core.errors import DrillError
from drdrill.drills.backups import target

log = logging.getLogger(__name__)

KIND = "aws_backup"
BAD_JOB_STATES = ("FAILED", "ABORTED", "EXPIRED", "PARTIAL")
RUNNING_JOB_STATES = ("CREATED", "PENDING", "RUNNING", "ABORTING")


@dataclass
class Clients:
    """The hooks one entry's checks use (built from its connection; tests hand in their own)."""

    backup: Any
    dr_backup: Any | None = None
    rds: Any | None = None


def clients(entry: AwsBackup) -> Clients:
    """`AwsBackupHook` of the entry's region, one of the DR vault's region, and an ``RdsHook``."""
    from airflow.providers.amazon.aws.hooks.rds import RdsHook

    from drdrill.hooks.aws_backup import AwsBackupHook

    dr = AwsBackupHook(aws_conn_id=entry.conn_id, region_name=entry.dr_vault.region) if entry.dr_vault else None
    return Clients(backup=AwsBackupHook(aws_conn_id=entry.conn_id, region_name=entry.region), dr_backup=dr,
                   rds=RdsHook(aws_conn_id=entry.conn_id, region_name=entry.region))


def daily(entry: AwsBackup, estate: Any = None, *, hooks: Clients | None = None,
          now: datetime | None = None) -> list[CheckResult]:
    """The checks ``entry.checks`` lists, in that order; a check that cannot read what it needs fails by name."""
    hooks = hooks or clients(entry)
    now = now or datetime.now(UTC)
    runs: dict[str, tuple[str, str, Callable[[], list[CheckResult]]]] = {
        "vault_lock": ("aws_backup_vault_lock", target(KIND, entry.name),
                       lambda: check_vault_lock(entry, hooks.backup, now)),
        "plan": ("aws_backup_plan", target(KIND, entry.name, "plan"), lambda: check_plan(entry, hooks.backup)),
        "jobs": ("aws_backup_jobs", target(KIND, entry.name, "jobs"), lambda: check_jobs(entry, hooks.backup, now)),
        "copy_jobs": ("aws_backup_copy_jobs", target(KIND, entry.name, "copy_jobs"),
                      lambda: check_copy_jobs(entry, hooks.backup, now)),
        "recovery_points": ("aws_backup_recovery_point", target(KIND, entry.name),
                            lambda: check_recovery_points(entry, hooks.backup, hooks.dr_backup, now)),
        "coverage": ("aws_backup_coverage", target(KIND, entry.name, "coverage"),
                     lambda: check_coverage(entry, hooks.backup, hooks.rds, now)),
    }
    out: list[CheckResult] = []
    for check in entry.checks:
        name, where, run = runs[check]
        try:
            out += run()
        except DrillError as e:  # a resource missing or unreadable: this check fails, the others still run
            out.append(CheckResult(name, Status.FAIL, str(e), where))
    return out


# ------------------------------------------------------------------------------------------ vault lock
def _when(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds") if epoch is not None else "never"


def check_vault_lock(entry: AwsBackup, hook: Any, now: datetime) -> list[CheckResult]:
    name, where, want = "aws_backup_vault_lock", target(KIND, entry.name), entry.vault_lock
    if want is None:
        return [CheckResult(name, Status.SKIP, f"vault {entry.vault}: no vault_lock in the estate", where)]
    lock = hook.vault_lock(entry.vault)
    details = {"vault": entry.vault, **lock}
    if not lock["locked"]:
        return [CheckResult(name, Status.FAIL, f"vault {entry.vault} has no vault lock: its recovery points can be "
                            f"deleted before their retention. Lock it (aws backup put-backup-vault-lock-configuration "
                            f"--backup-vault-name {entry.vault} --min-retention-days {want.min_retention_days} "
                            f"--max-retention-days {want.max_retention_days} --changeable-for-days 3)", where,
                            details=details)]
    problems = [f"{label} live {lock[key]}, estate {getattr(want, key)}"
                for key, label in (("min_retention_days", "MinRetentionDays"),
                                   ("max_retention_days", "MaxRetentionDays"))
                if getattr(want, key) is not None and lock[key] != getattr(want, key)]
    lock_date = lock["lock_date"]
    if lock_date is None:
        mode = ("governance mode (no LockDate): anyone with backup:DeleteBackupVaultLockConfiguration can "
                "remove the lock")
        immutable = False
    elif lock_date > now.timestamp():
        mode = (f"compliance mode still in its grace period until LockDate {_when(lock_date)}: it can be changed "
                f"or removed until then")
        immutable = False
    else:
        mode = f"compliance mode, immutable since LockDate {_when(lock_date)}"
        immutable = True
    details["immutable"] = immutable
    if want.immutable and not immutable:
        problems.append(f"the lock is not immutable: {mode}. The estate requires an immutable lock "
                        f"(vault_lock.immutable: true): lock it in compliance mode (--changeable-for-days) and wait "
                        f"for the LockDate, or set vault_lock.immutable: false while the grace period runs")
    retention = f"min {lock['min_retention_days']} / max {lock['max_retention_days']} days"
    if problems:
        return [CheckResult(name, Status.FAIL, f"vault {entry.vault} lock ({retention}) differs from the estate: "
                            + "; ".join(problems), where, details=details)]
    note = "" if immutable else " (not yet immutable: accepted, vault_lock.immutable is false)"
    return [CheckResult(name, Status.PASS, f"vault {entry.vault} locked, {retention}, {mode}{note}", where,
                        details=details)]


# ------------------------------------------------------------------------------------------------ plan
def _lifecycle_fields(prefix: str, live: dict[str, Any] | None, want: Lifecycle) -> list[str]:
    live = live or {}
    out = []
    for key, label in (("cold_storage_after_days", "MoveToColdStorageAfterDays"),
                       ("delete_after_days", "DeleteAfterDays")):
        a, b = live.get(label), getattr(want, key)
        if a != b:
            out.append(f"{prefix}.{label}: live {a}, estate {b}")
    return out


def _copy_action_drift(rule: str, live: list[dict[str, Any]], want: list[CopyAction]) -> list[str]:
    out = []
    by_dest = {str(c.get("DestinationBackupVaultArn")): c for c in live}
    for c in want:
        got = by_dest.pop(c.destination_vault_arn, None)
        if got is None:
            out.append(f"copy action to {c.destination_vault_arn}: missing from the live rule")
        elif c.lifecycle is not None:
            out += _lifecycle_fields(f"copy action to {c.destination_vault_arn}.Lifecycle", got.get("Lifecycle"),
                                     c.lifecycle)
    out += [f"copy action to {dest}: live, not in the estate" for dest in by_dest]
    return out


def rule_drift(live: dict[str, Any], want: PlanRule) -> list[str]:
    """Each field of a live plan rule that differs from the estate's: ``field: live X, estate Y``."""
    out = []
    if want.schedule is not None and live.get("ScheduleExpression") != want.schedule:
        out.append(f"ScheduleExpression: live {live.get('ScheduleExpression')!r}, estate {want.schedule!r}")
    if want.target_vault is not None and live.get("TargetBackupVaultName") != want.target_vault:
        out.append(f"TargetBackupVaultName: live {live.get('TargetBackupVaultName')!r}, estate {want.target_vault!r}")
    if want.lifecycle is not None:
        out += _lifecycle_fields("Lifecycle", live.get("Lifecycle"), want.lifecycle)
    if want.copy_actions is not None:
        out += _copy_action_drift(want.name, live.get("CopyActions") or [], want.copy_actions)
    return out


def check_plan(entry: AwsBackup, hook: Any) -> list[CheckResult]:
    name, where = "aws_backup_plan", target(KIND, entry.name, "plan")
    want = entry.plan
    if want is None:
        return [CheckResult(name, Status.SKIP, "no plan in the estate", where)]
    plan = hook.plan_by_name(want.name)
    rules = {str(r.get("RuleName")): r for r in (plan.get("BackupPlan") or {}).get("Rules") or []}
    live_names = ", ".join(sorted(rules)) or "none"
    if not want.rules:
        return [CheckResult(name, Status.PASS, f"plan {want.name} exists ({len(rules)} rule(s); the estate names "
                            f"none to compare)", where)]
    out = []
    for rule in want.rules:
        at = target(KIND, entry.name, "plan", rule.name)
        live = rules.pop(rule.name, None)
        if live is None:
            out.append(CheckResult(name, Status.FAIL, f"plan {want.name}: rule {rule.name} is missing (live rules: "
                                   f"{live_names}). "
                                   f"Add it to the plan, or remove it from the estate", at))
            continue
        drift = rule_drift(live, rule)
        if drift:
            out.append(CheckResult(name, Status.FAIL, f"plan {want.name}: rule {rule.name} drifted from the estate: "
                                   + "; ".join(drift) + ". Fix the plan (or the estate, if the change was meant)",
                                   at, details={"drift": drift}))
        else:
            out.append(CheckResult(name, Status.PASS, f"plan {want.name}: rule {rule.name} matches the estate "
                                   f"({live.get('ScheduleExpression')} -> {live.get('TargetBackupVaultName')})", at))
    for extra in sorted(rules):
        out.append(CheckResult(name, Status.FAIL, f"plan {want.name}: rule {extra} is live but not in the estate "
                               f"({rules[extra].get('ScheduleExpression')} -> "
                               f"{rules[extra].get('TargetBackupVaultName')}). Add it to the estate's plan.rules, "
                               f"or remove it from the plan", target(KIND, entry.name, "plan", extra)))
    return out


def plan_document(plan: BackupPlan, vault: str) -> dict[str, Any]:
    """The estate's plan as ``create_backup_plan``'s ``BackupPlan`` (what the sandbox creates in moto);
    a rule without ``target_vault`` backs up into ``vault``."""
    def lifecycle(lc: Lifecycle | None) -> dict[str, int]:
        if lc is None:
            return {}
        out = {"MoveToColdStorageAfterDays": lc.cold_storage_after_days, "DeleteAfterDays": lc.delete_after_days}
        return {k: v for k, v in out.items() if v is not None}

    rules = []
    for r in plan.rules:
        rule: dict[str, Any] = {"RuleName": r.name, "TargetBackupVaultName": r.target_vault or vault}
        if r.schedule:
            rule["ScheduleExpression"] = r.schedule
        if lifecycle(r.lifecycle):
            rule["Lifecycle"] = lifecycle(r.lifecycle)
        copies = [{"DestinationBackupVaultArn": c.destination_vault_arn,
                   **({"Lifecycle": lifecycle(c.lifecycle)} if lifecycle(c.lifecycle) else {})}
                  for c in r.copy_actions or []]
        if copies:
            rule["CopyActions"] = copies
        rules.append(rule)
    return {"BackupPlanName": plan.name, "Rules": rules}


# ------------------------------------------------------------------------------------------------ jobs
def _job_line(j: dict[str, Any], id_key: str) -> str:
    msg = j.get("StatusMessage") or "no StatusMessage"
    return f"{j.get(id_key)} ({j.get('ResourceArn') or j.get('ResourceName') or 'resource ?'}) {j.get('State')}: {msg}"


def check_jobs(entry: AwsBackup, hook: Any, now: datetime) -> list[CheckResult]:
    name, where, hours = "aws_backup_jobs", target(KIND, entry.name, "jobs"), entry.max_job_age_hours
    jobs = hook.backup_jobs(since=now - timedelta(hours=hours), vault=entry.vault)
    bad = [j for j in jobs if j.get("State") in BAD_JOB_STATES]
    running = [j for j in jobs if j.get("State") in RUNNING_JOB_STATES]
    done = [j for j in jobs if j.get("State") == "COMPLETED"]
    details = {"jobs": len(jobs), "completed": len(done), "running": len(running), "failed": len(bad)}
    if not jobs:
        return [CheckResult(name, Status.FAIL, f"vault {entry.vault}: no backup job in the last {hours:g} h. Check "
                            f"that the plan's rules run (schedule, start window) and that its selection matches "
                            f"resources", where, 0, hours, details)]
    if bad:
        return [CheckResult(name, Status.FAIL, f"vault {entry.vault}: {len(bad)} of {len(jobs)} backup job(s) of the "
                            f"last {hours:g} h did not complete: "
                            + "; ".join(_job_line(j, "BackupJobId") for j in bad),
                            where, len(bad), 0, details)]
    more = f", {len(running)} still running" if running else ""
    return [CheckResult(name, Status.PASS, f"vault {entry.vault}: {len(done)} backup job(s) of the last {hours:g} h "
                        f"COMPLETED{more}", where, len(done), None, details)]


def check_copy_jobs(entry: AwsBackup, hook: Any, now: datetime) -> list[CheckResult]:
    name, where, hours = "aws_backup_copy_jobs", target(KIND, entry.name, "copy_jobs"), entry.max_job_age_hours
    jobs = hook.copy_jobs(since=now - timedelta(hours=hours), source_vault=entry.vault)
    bad = [j for j in jobs if j.get("State") in BAD_JOB_STATES]
    done = [j for j in jobs if j.get("State") == "COMPLETED"]
    details = {"jobs": len(jobs), "completed": len(done), "failed": len(bad)}
    if bad:
        return [CheckResult(name, Status.FAIL, f"vault {entry.vault}: {len(bad)} of {len(jobs)} copy job(s) of the "
                            f"last {hours:g} h did not complete: "
                            + "; ".join(f"{_job_line(j, 'CopyJobId')} -> {j.get('DestinationBackupVaultArn')}"
                                        for j in bad), where, len(bad), 0, details)]
    if not jobs and entry.dr_vault is not None:
        return [CheckResult(name, Status.FAIL, f"vault {entry.vault}: no copy job in the last {hours:g} h although "
                            f"the plan copies to {entry.dr_vault.name} ({entry.dr_vault.region}). Check the rules' "
                            f"copy actions and the DR vault's access policy", where, 0, None, details)]
    return [CheckResult(name, Status.PASS, f"vault {entry.vault}: {len(done)} copy job(s) of the last {hours:g} h "
                        f"COMPLETED, {len(jobs) - len(done)} in progress", where, len(done), None, details)]


# ------------------------------------------------------------------------------------- recovery points
def _age_hours(point: dict[str, Any], now: datetime) -> float:
    created = point.get("CreationDate")
    ts = created.timestamp() if hasattr(created, "timestamp") else float(created)
    return (now.timestamp() - ts) / 3600


def _newest(hook: Any, vault: str, bound: float, now: datetime, where: str) -> CheckResult:
    name = "aws_backup_recovery_point"
    points = [p for p in hook.recovery_points(vault) if p.get("Status", "COMPLETED") == "COMPLETED"]
    if not points:
        return CheckResult(name, Status.FAIL, f"vault {vault} ({hook.where}) holds no completed recovery point. "
                           f"Check its backup (or copy) jobs", where, None, bound)
    newest = points[0]
    age = _age_hours(newest, now)
    details = {"vault": vault, "recovery_point": newest.get("RecoveryPointArn"), "region": hook.where}
    if age > bound:
        return CheckResult(name, Status.FAIL, f"vault {vault} ({hook.where}): the newest recovery point "
                           f"{newest.get('RecoveryPointArn')} is {age:.1f} h old, over the bound of {bound:g} h. "
                           f"Check the plan's jobs and copy jobs", where, round(age, 2), bound, details)
    return CheckResult(name, Status.PASS, f"vault {vault} ({hook.where}): newest recovery point {age:.1f} h old "
                       f"<= {bound:g} h", where, round(age, 2), bound, details)


def check_recovery_points(entry: AwsBackup, hook: Any, dr_hook: Any | None, now: datetime) -> list[CheckResult]:
    out = [_newest(hook, entry.vault, entry.max_recovery_point_age_hours, now, target(KIND, entry.name))]
    if entry.dr_vault is not None:
        where = target(KIND, entry.name, "dr_vault")
        try:
            out.append(_newest(dr_hook, entry.dr_vault.name, entry.dr_vault.max_recovery_point_age_hours, now, where))
        except DrillError as e:
            out.append(CheckResult("aws_backup_recovery_point", Status.FAIL, str(e), where))
    return out


# -------------------------------------------------------------------------------------------- coverage
def tagged_rds_instances(rds: Any, tags: dict[str, str]) -> dict[str, str]:
    """{DBInstanceArn: identifier} of every RDS instance carrying all ``tags``."""
    from drdrill.hooks.aws_backup import aws_errors

    out: dict[str, str] = {}
    with aws_errors("RDS instances", "rds:DescribeDBInstances and rds:ListTagsForResource"):
        for page in rds.conn.get_paginator("describe_db_instances").paginate():
            for db in page.get("DBInstances") or []:
                arn = db["DBInstanceArn"]
                tag_list = db.get("TagList")
                if tag_list is None:
                    tag_list = rds.conn.list_tags_for_resource(ResourceName=arn).get("TagList") or []
                have = {t["Key"]: t.get("Value") for t in tag_list}
                if all(have.get(k) == v for k, v in tags.items()):
                    out[arn] = db["DBInstanceIdentifier"]
    return out


def check_coverage(entry: AwsBackup, hook: Any, rds: Any | None, now: datetime) -> list[CheckResult]:
    name, bound = "aws_backup_coverage", entry.max_recovery_point_age_hours
    required = {arn: arn.rsplit(":", 1)[-1].rsplit("/", 1)[-1] for arn in entry.protected_resources}
    why = {arn: "named in protected_resources" for arn in required}
    out: list[CheckResult] = []
    if entry.coverage_tags:
        tags = ",".join(f"{k}={v}" for k, v in sorted(entry.coverage_tags.items()))
        try:
            for arn, ident in tagged_rds_instances(rds, entry.coverage_tags).items():
                required.setdefault(arn, ident)
                why.setdefault(arn, f"an RDS instance tagged {tags}")
        except DrillError as e:
            out.append(CheckResult(name, Status.FAIL, f"RDS instances tagged {tags} could not be listed: {e}",
                                   target(KIND, entry.name, "coverage")))
    if not required:
        return out or [CheckResult(name, Status.SKIP, "no protected_resources and no RDS instance with the "
                                   "coverage_tags: nothing to check", target(KIND, entry.name, "coverage"))]
    protected = hook.protected_resources()
    for arn, ident in sorted(required.items()):
        where = target(KIND, entry.name, "coverage", ident)
        got = protected.get(arn)
        if got is None:
            out.append(CheckResult(name, Status.FAIL, f"{ident} ({why[arn]}) is not protected: AWS Backup has no "
                                   f"recovery point of {arn}. A database created without the plan's selection tag "
                                   f"(the seed selects BackupPolicy=production) is silently unprotected: tag it, or "
                                   f"add it to a backup selection", where))
            continue
        last = got.get("LastBackupTime")
        age = _age_hours({"CreationDate": last}, now) if last is not None else None
        if age is None or age > bound:
            shown = "never" if age is None else f"{age:.1f} h ago"
            out.append(CheckResult(name, Status.FAIL, f"{ident} ({why[arn]}) is protected but its last backup was "
                                   f"{shown}, over the bound of {bound:g} h. Check its backup jobs", where,
                                   None if age is None else round(age, 2), bound))
        else:
            out.append(CheckResult(name, Status.PASS, f"{ident} ({why[arn]}) protected, last backup {age:.1f} h ago "
                                   f"<= {bound:g} h", where, round(age, 2), bound))
    return out
