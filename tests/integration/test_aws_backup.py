"""AWS Backup: the daily checks and the restore test, against moto over HTTP and the sandbox's real PostgreSQL.

moto (5.2.5, one in-process threaded HTTP server for the module, connection ``aws_moto``) serves what
it implements: backup vaults and their vault lock, backup plans, and RDS instances with their tags.
Everything the hooks read from those goes over HTTP to it.

What moto does not serve, and how the tests stand in for it (each test says which):

- backup jobs, copy jobs, recovery points, protected resources, restore jobs and restore validation
  results (moto answers 404/500): botocore's ``Stubber`` on the hook's real client, with AWS's
  response shapes (botocore validates every stubbed response against the service model);
- time: moto cannot age a vault lock past its grace period (``ChangeableForDays`` is at least 3), so a
  test needing a final lock moves its ``LockDate`` into the past in moto's in-process backend, as 3 days
  passing would;
- the restored RDS instance: AWS Backup would create it; the test plays that part in moto's RDS
  (created when ``StartRestoreJob`` is called, deleted for real by the drill's teardown), and since moto
  invents a hostname that resolves nowhere, the instance's endpoint in ``DescribeDBInstances`` is
  answered with the sandbox's pg2 (a real PostgreSQL holding the real data, read-only) standing in for
  the restored database.
"""

from __future__ import annotations

import copy
import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from botocore.stub import ANY, Stubber

from drdrill.core.backups import AwsBackup
from drdrill.core.checks import Status
from drdrill.core.errors import PreflightError
from moto_server import moto_server

REGION = "us-east-1"
DR_REGION = "us-west-2"
ACCOUNT = "123456789012"
VAULT = "production-vault"
DR_ARN = f"arn:aws:backup:{DR_REGION}:{ACCOUNT}:backup-vault:dr-vault"
PROD_DB = f"arn:aws:rds:{REGION}:{ACCOUNT}:db:production-db"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/backup-restore"
SANDBOX_ESTATE = Path(__file__).resolve().parents[2] / "include" / "estate" / "sandbox.yaml"
# The seed's plan (terraform/backup.tf): two rules, the hourly one copying to the DR region's vault.
SEED_PLAN = {"name": "production-backup-plan", "rules": [
    {"name": "hourly-rds", "schedule": "cron(0 * * * ? *)", "target_vault": VAULT,
     "lifecycle": {"cold_storage_after_days": 30, "delete_after_days": 90},
     "copy_actions": [{"destination_vault_arn": DR_ARN, "lifecycle": {"delete_after_days": 30}}]},
    {"name": "daily-full", "schedule": "cron(0 3 * * ? *)", "target_vault": VAULT,
     "lifecycle": {"cold_storage_after_days": 7, "delete_after_days": 365}}]}


def entry(**kw) -> AwsBackup:
    base = {"name": "prod", "conn_id": "aws_moto", "region": REGION, "vault": VAULT, "plan": SEED_PLAN,
            "dr_vault": {"name": "dr-vault", "region": DR_REGION}, "checks": ["vault_lock", "plan"]}
    return AwsBackup(**(base | kw))


@pytest.fixture(scope="module")
def moto_url():
    with moto_server("aws_moto", REGION) as url:
        yield url


def _backup(region: str = REGION):
    from drdrill.hooks.aws_backup import AwsBackupHook

    return AwsBackupHook(aws_conn_id="aws_moto", region_name=region)


def _rds():
    from airflow.providers.amazon.aws.hooks.rds import RdsHook

    return RdsHook(aws_conn_id="aws_moto", region_name=REGION)


def _age_lock(vault: str = VAULT) -> None:
    """3 days pass for the lock: its LockDate moves into the past in moto's backend (see the module doc)."""
    from moto.backup.models import backup_backends

    backup_backends[ACCOUNT][REGION].vaults[vault].lock_date = time.time() - 60


@pytest.fixture
def aws(moto_url):
    """A fresh moto with the seed's vaults: the vault locked (min 7, max 90) and past its grace period, and
    the DR vault. The plan comes from `seed_plan` (moto keeps a deleted plan's name: one plan per test)."""
    req = urllib.request.Request(f"{moto_url}/moto-api/reset", data=b"{}", method="POST")
    urllib.request.urlopen(req, timeout=10).close()
    bk = _backup().conn
    bk.create_backup_vault(BackupVaultName=VAULT)
    bk.put_backup_vault_lock_configuration(BackupVaultName=VAULT, MinRetentionDays=7, MaxRetentionDays=90,
                                           ChangeableForDays=3)
    _age_lock()
    _backup(DR_REGION).conn.create_backup_vault(BackupVaultName="dr-vault")
    return bk


def seed_plan(aws, change=None) -> None:
    """The seed's plan as the estate describes it (what `make sandbox-up` creates), ``change``d first."""
    from drdrill.drills.backups.aws_backup import plan_document

    doc = plan_document(entry().plan, VAULT)
    if change:
        change(doc["Rules"])
    aws.create_backup_plan(BackupPlan=doc)


def daily(e: AwsBackup, **hooks):
    from drdrill.drills.backups import aws_backup

    return aws_backup.daily(e, None, hooks=aws_backup.Clients(**({"backup": _backup()} | hooks)))


def failed(results) -> dict[str, str]:
    return {r.target: r.message for r in results if r.failed}


# ---------------------------------------------------------------------------------------- vault lock, plan
def test_seed_vault_lock_and_plan_pass_on_moto(aws):
    seed_plan(aws)
    results = daily(entry())
    assert [r.status for r in results] == [Status.PASS] * 3, [r.line() for r in results]
    lock = results[0]
    assert lock.name == "aws_backup_vault_lock" and lock.target == "aws_backup/prod"
    assert "min 7 / max 90 days" in lock.message and "compliance mode, immutable since LockDate" in lock.message
    assert {r.target for r in results[1:]} == {"aws_backup/prod/plan/hourly-rds", "aws_backup/prod/plan/daily-full"}


def test_vault_lock_changed_to_one_day_fails_naming_the_field(aws):
    # Still changeable (a new grace period), then final: someone lowered the minimum before it locked.
    from moto.backup.models import backup_backends

    backup_backends[ACCOUNT][REGION].vaults[VAULT].lock_date = None
    aws.put_backup_vault_lock_configuration(BackupVaultName=VAULT, MinRetentionDays=1, MaxRetentionDays=90,
                                            ChangeableForDays=3)
    _age_lock()
    msg = failed(daily(entry(checks=["vault_lock"])))["aws_backup/prod"]
    assert "MinRetentionDays live 1, estate 7" in msg and "MaxRetentionDays" not in msg


def test_lock_in_its_grace_period_fails_naming_the_lock_date_unless_the_estate_accepts_it(aws):
    from moto.backup.models import backup_backends

    backup_backends[ACCOUNT][REGION].vaults[VAULT].lock_date = None
    aws.put_backup_vault_lock_configuration(BackupVaultName=VAULT, MinRetentionDays=7, MaxRetentionDays=90,
                                            ChangeableForDays=3)
    lock_date = backup_backends[ACCOUNT][REGION].vaults[VAULT].lock_date
    shown = datetime.fromtimestamp(lock_date, UTC).isoformat(timespec="seconds")
    msg = failed(daily(entry(checks=["vault_lock"])))["aws_backup/prod"]
    assert f"grace period until LockDate {shown}" in msg and "not immutable" in msg
    # The sandbox's estate says so explicitly (vault_lock.immutable: false): reported, not failed.
    ok = daily(entry(checks=["vault_lock"], vault_lock={"min_retention_days": 7, "max_retention_days": 90,
                                                        "immutable": False}))
    assert ok[0].status is Status.PASS and "not yet immutable" in ok[0].message


def test_governance_mode_lock_is_not_immutable(aws):
    aws.create_backup_vault(BackupVaultName="governed")
    aws.put_backup_vault_lock_configuration(BackupVaultName="governed", MinRetentionDays=7, MaxRetentionDays=90)
    msg = failed(daily(entry(vault="governed", checks=["vault_lock"])))["aws_backup/prod"]
    assert "governance mode (no LockDate)" in msg


def test_unlocked_vault_and_a_vault_the_account_does_not_have_fail_by_name(aws):
    aws.create_backup_vault(BackupVaultName="open-vault")
    msg = failed(daily(entry(vault="open-vault", checks=["vault_lock"])))["aws_backup/prod"]
    assert "vault open-vault has no vault lock" in msg and "put-backup-vault-lock-configuration" in msg
    msg = failed(daily(entry(vault="no-such-vault", checks=["vault_lock"])))["aws_backup/prod"]
    assert "backup vault no-such-vault (us-east-1) does not exist" in msg and "fix the vault name" in msg


def test_plan_rule_drifting_names_each_field_live_and_estate(aws):
    def drift(rules):
        rules[0]["ScheduleExpression"] = "cron(0 */6 * * ? *)"
        rules[0]["CopyActions"][0]["Lifecycle"] = {"DeleteAfterDays": 7}
        rules[1]["Lifecycle"]["DeleteAfterDays"] = 30

    seed_plan(aws, drift)
    f = failed(daily(entry(checks=["plan"])))
    hourly, daily_full = f["aws_backup/prod/plan/hourly-rds"], f["aws_backup/prod/plan/daily-full"]
    assert "ScheduleExpression: live 'cron(0 */6 * * ? *)', estate 'cron(0 * * * ? *)'" in hourly
    assert f"copy action to {DR_ARN}.Lifecycle.DeleteAfterDays: live 7, estate 30" in hourly
    assert "Lifecycle.DeleteAfterDays: live 30, estate 365" in daily_full


def test_plan_rule_missing_or_extra_and_a_plan_the_account_does_not_have(aws):
    def swap(rules):
        rules.pop()  # daily-full gone
        rules.append({"RuleName": "weekly-adhoc", "TargetBackupVaultName": VAULT,
                      "ScheduleExpression": "cron(0 5 ? * 1 *)"})

    seed_plan(aws, swap)
    f = failed(daily(entry(checks=["plan"])))
    assert "rule daily-full is missing (live rules: hourly-rds, weekly-adhoc)" in f["aws_backup/prod/plan/daily-full"]
    assert "rule weekly-adhoc is live but not in the estate" in f["aws_backup/prod/plan/weekly-adhoc"]
    f = failed(daily(entry(checks=["plan"], plan={"name": "nightly-plan"})))
    assert "backup plan nightly-plan does not exist" in f["aws_backup/prod/plan"]
    assert "plans there: production-backup-plan" in f["aws_backup/prod/plan"]


def test_a_check_the_endpoint_does_not_serve_fails_saying_so(aws):
    # moto answers ListBackupJobs with an HTML 404: the sandbox's reason for checks: [vault_lock, plan].
    msg = failed(daily(entry(checks=["jobs"])))["aws_backup/prod/jobs"]
    assert "the endpoint answered HTTP 404 to backup:ListBackupJobs: it does not serve this call" in msg
    assert "<html" not in msg


def test_access_denied_fails_naming_the_vault_and_the_permission(moto_url):
    # Stubber: moto grants everything; AWS answers AccessDeniedException to a role without the action.
    hook = _backup()
    with Stubber(hook.conn) as stub:
        stub.add_client_error("describe_backup_vault", "AccessDeniedException", "User is not authorized",
                              expected_params={"BackupVaultName": VAULT})
        msg = failed(daily(entry(checks=["vault_lock"]), backup=hook))["aws_backup/prod"]
    assert f"backup vault {VAULT} (us-east-1): the connection may not read it" in msg
    assert "Grant backup:DescribeBackupVault" in msg


# ------------------------------------------------------------------------------- jobs (Stubber: moto lacks them)
NOW = datetime.now(UTC)


def _job(state: str, n: int, msg: str = "") -> dict:
    j = {"BackupJobId": f"job-{n}", "BackupVaultName": VAULT, "ResourceArn": PROD_DB, "State": state,
         "CreationDate": NOW - timedelta(hours=n)}
    return j | ({"StatusMessage": msg} if msg else {})


def test_backup_jobs_read_page_by_page_pass_when_all_completed_and_fail_naming_the_failed_one(moto_url):
    hook = _backup()
    with Stubber(hook.conn) as stub:
        # Stubber: list_backup_jobs (moto: not implemented); two pages, the second after NextToken.
        stub.add_response("list_backup_jobs", {"BackupJobs": [_job("COMPLETED", 1)], "NextToken": "p2"},
                          {"ByCreatedAfter": ANY, "ByBackupVaultName": VAULT})
        stub.add_response("list_backup_jobs", {"BackupJobs": [_job("RUNNING", 2)]},
                          {"ByCreatedAfter": ANY, "ByBackupVaultName": VAULT, "NextToken": "p2"})
        stub.add_response("list_backup_jobs", {"BackupJobs": [
            _job("COMPLETED", 1), _job("FAILED", 3, "Insufficient privileges to perform snapshot"),
            _job("EXPIRED", 4)]}, {"ByCreatedAfter": ANY, "ByBackupVaultName": VAULT})
        stub.add_response("list_backup_jobs", {"BackupJobs": []}, {"ByCreatedAfter": ANY, "ByBackupVaultName": VAULT})
        ok = daily(entry(checks=["jobs"]), backup=hook)
        bad = daily(entry(checks=["jobs"]), backup=hook)
        none = daily(entry(checks=["jobs"]), backup=hook)
        stub.assert_no_pending_responses()
    assert ok[0].status is Status.PASS
    assert "1 backup job(s) of the last 26 h COMPLETED, 1 still running" in ok[0].message
    msg = bad[0].message
    assert bad[0].failed and bad[0].target == "aws_backup/prod/jobs"
    assert f"job-3 ({PROD_DB}) FAILED: Insufficient privileges to perform snapshot" in msg and "job-4" in msg
    assert none[0].failed and "no backup job in the last 26 h" in none[0].message


def test_failed_copy_job_fails_naming_it_and_its_destination(moto_url):
    hook = _backup()
    src = f"arn:aws:backup:{REGION}:{ACCOUNT}:backup-vault:{VAULT}"
    jobs = [{"CopyJobId": "copy-1", "SourceBackupVaultArn": src, "DestinationBackupVaultArn": DR_ARN,
             "ResourceArn": PROD_DB, "State": "COMPLETED"},
            {"CopyJobId": "copy-2", "SourceBackupVaultArn": src, "DestinationBackupVaultArn": DR_ARN,
             "ResourceArn": PROD_DB, "State": "FAILED", "StatusMessage": "Access denied by the DR vault's policy"},
            {"CopyJobId": "other", "SourceBackupVaultArn": f"{src}-other", "State": "FAILED"}]
    with Stubber(hook.conn) as stub:  # Stubber: list_copy_jobs (moto: not implemented)
        stub.add_response("list_copy_jobs", {"CopyJobs": jobs}, {"ByCreatedAfter": ANY})
        res = daily(entry(checks=["copy_jobs"]), backup=hook)
    assert res[0].failed and res[0].target == "aws_backup/prod/copy_jobs"
    assert "1 of 2 copy job(s)" in res[0].message
    assert f"copy-2 ({PROD_DB}) FAILED: Access denied by the DR vault's policy -> {DR_ARN}" in res[0].message
    assert "other" not in res[0].message  # another vault's copy job is not this vault's


def test_dr_recovery_point_too_old_fails_under_the_dr_target(moto_url):
    hook, dr = _backup(), _backup(DR_REGION)

    def point(vault: str, hours: float) -> dict:
        return {"RecoveryPointArn": f"arn:aws:rds:{REGION}:{ACCOUNT}:snapshot:awsbackup-{vault}-{hours}",
                "BackupVaultName": vault, "Status": "COMPLETED", "CreationDate": NOW - timedelta(hours=hours)}

    with Stubber(hook.conn) as s1, Stubber(dr.conn) as s2:  # Stubber: recovery points (moto: not implemented)
        s1.add_response("list_recovery_points_by_backup_vault",
                        {"RecoveryPoints": [point(VAULT, 5), point(VAULT, 1)]}, {"BackupVaultName": VAULT})
        s2.add_response("list_recovery_points_by_backup_vault",
                        {"RecoveryPoints": [point("dr-vault", 40), point("dr-vault", 30)]},
                        {"BackupVaultName": "dr-vault"})
        res = daily(entry(checks=["recovery_points"]), backup=hook, dr_backup=dr)
    main, drv = res
    assert main.status is Status.PASS and main.target == "aws_backup/prod" and main.value == pytest.approx(1, abs=.1)
    assert drv.failed and drv.target == "aws_backup/prod/dr_vault"
    assert "vault dr-vault (us-west-2): the newest recovery point" in drv.message
    assert "30.0 h old, over the bound of 26 h" in drv.message


def test_an_rds_instance_tagged_production_without_backup_fails_by_name(aws):
    # moto's RDS serves the instances and their tags; Stubber answers list_protected_resources (moto lacks it).
    rds = _rds().conn
    for name, tags in (("orders-db", {"Environment": "production", "BackupPolicy": "production"}),
                       ("reports-db", {"Environment": "production"}),  # created without the BackupPolicy tag
                       ("scratch-db", {"Environment": "staging"})):
        rds.create_db_instance(DBInstanceIdentifier=name, DBInstanceClass="db.t3.micro", Engine="postgres",
                               AllocatedStorage=20, MasterUsername="app", MasterUserPassword="not-a-secret-1",
                               Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    arn = {d["DBInstanceIdentifier"]: d["DBInstanceArn"] for d in rds.describe_db_instances()["DBInstances"]}
    hook = _backup()
    with Stubber(hook.conn) as stub:
        stub.add_response("list_protected_resources", {"Results": [
            {"ResourceArn": arn["orders-db"], "ResourceType": "RDS", "LastBackupTime": NOW - timedelta(hours=2)},
            {"ResourceArn": PROD_DB, "ResourceType": "RDS", "LastBackupTime": NOW - timedelta(hours=50)}]}, {})
        res = daily(entry(checks=["coverage"], coverage_tags={"Environment": "production"},
                          protected_resources=[PROD_DB]), backup=hook, rds=_rds())
    by = {r.target: r for r in res}
    assert set(by) == {"aws_backup/prod/coverage/orders-db", "aws_backup/prod/coverage/reports-db",
                       "aws_backup/prod/coverage/production-db"}
    assert by["aws_backup/prod/coverage/orders-db"].status is Status.PASS
    msg = by["aws_backup/prod/coverage/reports-db"].message
    assert by["aws_backup/prod/coverage/reports-db"].failed
    assert "reports-db (an RDS instance tagged Environment=production) is not protected" in msg
    assert "BackupPolicy=production" in msg
    old = by["aws_backup/prod/coverage/production-db"]
    assert old.failed and "last backup was 50.0 h ago, over the bound of 26 h" in old.message


def _answer_from(client, answers: dict[str, dict]) -> None:
    """Answer the operations moto lacks on this real client (botocore's ``before-call`` event, the mechanism
    ``Stubber`` uses, without its one-call-each ordering); each answer is validated against the service
    model's output shape first, as ``Stubber`` does. Every other operation goes to moto over HTTP."""
    from botocore.awsrequest import AWSResponse
    from botocore.validate import validate_parameters

    model = client.meta.service_model
    for op, response in answers.items():
        validate_parameters(response, model.operation_model(op).output_shape)

        def handler(response=response, **_):
            return AWSResponse(None, 200, {}, None), copy.deepcopy(response)

        client.meta.events.register(f"before-call.{model.service_name}.{op}", handler)


def test_a_healthy_entry_passes_all_six_checks_in_one_run(aws):
    seed_plan(aws)
    rds = _rds()
    rds.conn.create_db_instance(DBInstanceIdentifier="production-db", DBInstanceClass="db.t3.micro",
                                Engine="postgres", AllocatedStorage=20,
                                Tags=[{"Key": "Environment", "Value": "production"},
                                      {"Key": "BackupPolicy", "Value": "production"}])
    arn = rds.conn.describe_db_instances(DBInstanceIdentifier="production-db")["DBInstances"][0]["DBInstanceArn"]
    src = f"arn:aws:backup:{REGION}:{ACCOUNT}:backup-vault:{VAULT}"
    hook, dr = _backup(), _backup(DR_REGION)
    point = {"RecoveryPointArn": "arn:aws:rds:us-east-1:123456789012:snapshot:awsbackup-1", "Status": "COMPLETED",
             "BackupVaultName": VAULT, "CreationDate": NOW - timedelta(hours=1)}
    _answer_from(hook.conn, {
        "ListBackupJobs": {"BackupJobs": [_job("COMPLETED", 1), _job("COMPLETED", 2)]},
        "ListCopyJobs": {"CopyJobs": [{"CopyJobId": "copy-1", "SourceBackupVaultArn": src,
                                       "DestinationBackupVaultArn": DR_ARN, "State": "COMPLETED"}]},
        "ListRecoveryPointsByBackupVault": {"RecoveryPoints": [point]},
        "ListProtectedResources": {"Results": [{"ResourceArn": arn, "LastBackupTime": NOW - timedelta(hours=1)}]}})
    _answer_from(dr.conn, {"ListRecoveryPointsByBackupVault": {"RecoveryPoints": [point | {
        "BackupVaultName": "dr-vault", "CreationDate": NOW - timedelta(hours=2)}]}})
    e = entry(checks=["vault_lock", "plan", "jobs", "copy_jobs", "recovery_points", "coverage"],
              coverage_tags={"Environment": "production"})
    results = daily(e, backup=hook, dr_backup=dr, rds=rds)
    assert all(r.status is Status.PASS for r in results), [r.line() for r in results]
    assert [(r.name, r.target) for r in results] == [
        ("aws_backup_vault_lock", "aws_backup/prod"),
        ("aws_backup_plan", "aws_backup/prod/plan/hourly-rds"), ("aws_backup_plan", "aws_backup/prod/plan/daily-full"),
        ("aws_backup_jobs", "aws_backup/prod/jobs"), ("aws_backup_copy_jobs", "aws_backup/prod/copy_jobs"),
        ("aws_backup_recovery_point", "aws_backup/prod"), ("aws_backup_recovery_point", "aws_backup/prod/dr_vault"),
        ("aws_backup_coverage", "aws_backup/prod/coverage/production-db")]


# --------------------------------------------------------------------------------------------- the sandbox
@pytest.mark.sandbox
def test_the_sandbox_estate_checks_pass_on_the_sandbox_moto(sandbox, estate):
    """`make sandbox-up` created the seed's vault, lock and plan in the sandbox's moto (over TLS)."""
    from drdrill.drills import backups

    results = backups.daily("aws_backup", estate)
    assert results and all(r.status is Status.PASS for r in results), [r.line() for r in results]
    assert {r.name for r in results} == {"aws_backup_vault_lock", "aws_backup_plan"}
    assert "grace period" in results[0].message  # moto's lock is 3 days young: the estate says immutable: false


# ------------------------------------------------------------------------------------------- restore test
RESTORE_BASE = "drdrill-restore-test"


def _point(hours: float, n: int = 0) -> dict:
    return {"RecoveryPointArn": f"arn:aws:rds:{REGION}:{ACCOUNT}:snapshot:awsbackup-job-{n}",
            "BackupVaultName": VAULT, "Status": "COMPLETED",
            "CreationDate": NOW - timedelta(hours=hours)}


POINTS = [_point(1, 1), _point(25, 2), _point(49, 3), _point(73, 4)]


def restore_entry(**kw) -> AwsBackup:
    rt = {"resource_arn": PROD_DB, "iam_role_arn": ROLE, "conn_id": "pg_sandbox_pg2", "cluster": "main",
          "timeout_seconds": 5, "poll_seconds": 0.05, "metadata": {"DBInstanceClass": "db.t3.micro"}} | kw
    return entry(restore_test=rt)


class RestoredInstances:
    """Plays AWS Backup's part moto lacks: a StartRestoreJob creates the RDS instance in moto (status
    ``available`` at once); DescribeDBInstances answers its endpoint with pg2's address (moto's is a
    hostname that resolves nowhere). Installed on every hook's client through ``get_client_type``."""

    def __init__(self, sandbox_estate) -> None:
        pg2 = sandbox_estate.cluster("main").node("pg2")
        self.host, self.port = pg2.host, int(pg2.port)
        self.created: list[str] = []

    def on_start(self, params, **_):
        ident = params["Metadata"]["DBInstanceIdentifier"]
        _rds().conn.create_db_instance(DBInstanceIdentifier=ident, DBInstanceClass="db.t3.micro", Engine="postgres",
                                       AllocatedStorage=20, Port=self.port)
        self.created.append(ident)

    def on_describe(self, parsed, **_):
        for db in parsed.get("DBInstances") or []:
            if db["DBInstanceIdentifier"].startswith(RESTORE_BASE) and db.get("Endpoint"):
                db["Endpoint"]["Address"] = self.host

    def install(self, monkeypatch, stubbed_backup_client=None) -> None:
        from airflow.providers.amazon.aws.hooks.rds import RdsHook

        from drdrill.hooks.aws_backup import AwsBackupHook

        real_rds = RdsHook.get_client_type

        def rds_client(hook, *a, **kw):
            c = real_rds(hook, *a, **kw)
            c.meta.events.register("after-call.rds.DescribeDBInstances", self.on_describe)
            return c

        monkeypatch.setattr(RdsHook, "get_client_type", rds_client)
        if stubbed_backup_client is not None:
            stubbed_backup_client.meta.events.register("before-parameter-build.backup.StartRestoreJob",
                                                       self.on_start)
            monkeypatch.setattr(AwsBackupHook, "get_client_type", lambda hook, *a, **kw: stubbed_backup_client)


def _instances() -> set[str]:
    return {d["DBInstanceIdentifier"] for d in _rds().conn.describe_db_instances()["DBInstances"]}


def _restore_stubs(stub: Stubber, *, statuses: list[str], status_message: str = "") -> None:
    stub.add_response("list_recovery_points_by_resource", {"RecoveryPoints": POINTS}, {"ResourceArn": PROD_DB})
    stub.add_response("start_restore_job", {"RestoreJobId": "restore-1"}, {
        "RecoveryPointArn": POINTS[0]["RecoveryPointArn"], "IamRoleArn": ROLE, "Metadata": ANY,
        "ResourceType": "RDS", "IdempotencyToken": ANY})
    for s in statuses:
        stub.add_response("describe_restore_job", {"RestoreJobId": "restore-1", "Status": s}
                          | ({"StatusMessage": status_message} if status_message else {}),
                          {"RestoreJobId": "restore-1"})


@pytest.fixture
def restored(aws, sandbox, estate, monkeypatch):
    players = RestoredInstances(estate)
    players.install(monkeypatch)
    return players


def _run(e: AwsBackup, estate_obj, hook, **kw):
    from drdrill.drills.backups import aws_backup_restore as r

    return r.run(e, estate_obj, backup=hook, rds=_rds(), run_id=kw.pop("run_id", "manual__1"),
                 sleep=lambda s: None, **kw)


@pytest.mark.sandbox
def test_restore_job_failed_deletes_the_instance_and_reports_no_validation(restored, estate):
    hook = _backup()
    hook.conn.meta.events.register("before-parameter-build.backup.StartRestoreJob", restored.on_start)
    with Stubber(hook.conn) as stub:  # Stubber: recovery points and restore jobs (moto lacks them)
        _restore_stubs(stub, statuses=["RUNNING", "FAILED"], status_message="DB subnet group not found")
        out = _run(restore_entry(), estate, hook)
        stub.assert_no_pending_responses()  # no put_restore_validation_result on a failed job
    assert out["status"] == "failed"
    assert "restore job restore-1 FAILED: DB subnet group not found" in out["error"]
    ident = out["plan"]["db_instance_identifier"]
    assert out["delete"] == {"db_instance_identifier": ident, "deleted": True}
    assert ident not in _instances() and "report" not in out


@pytest.mark.sandbox
def test_restore_job_that_never_completes_fails_naming_the_bound_and_the_instance_is_still_deleted(restored, estate):
    hook = _backup()
    hook.conn.meta.events.register("before-parameter-build.backup.StartRestoreJob", restored.on_start)
    ticks = iter(range(0, 1000))
    with Stubber(hook.conn) as stub:
        _restore_stubs(stub, statuses=["PENDING", "RUNNING", "RUNNING"])
        out = _run(restore_entry(timeout_seconds=3), estate, hook, clock=lambda: float(next(ticks)))
        stub.assert_no_pending_responses()
    assert "restore job restore-1 still RUNNING after 3s" in out["error"]
    assert "restore_test.timeout_seconds (3s)" in out["error"]
    ident = out["plan"]["db_instance_identifier"]
    assert restored.created == [ident] and out["delete"]["deleted"] is True and ident not in _instances()


@pytest.mark.sandbox
def test_validation_failing_on_a_missing_critical_table_reports_failed(restored, estate):
    main = estate.cluster("main")
    tables = [*main.restore_test.critical_tables, "app.invoices"]  # not in the restored database
    with_missing = main.model_copy(update={"restore_test": main.restore_test.model_copy(
        update={"critical_tables": tables})})
    hook = _backup()
    hook.conn.meta.events.register("before-parameter-build.backup.StartRestoreJob", restored.on_start)
    with Stubber(hook.conn) as stub:
        _restore_stubs(stub, statuses=["COMPLETED"])
        stub.add_response("put_restore_validation_result", {}, {
            "RestoreJobId": "restore-1", "ValidationStatus": "FAILED", "ValidationStatusMessage": ANY})
        out = _run(restore_entry(), SimpleNamespace(cluster=lambda name: with_missing), hook)
        stub.assert_no_pending_responses()
    assert out["status"] == "failed" and out["error"] is None
    assert out["report"]["validation_status"] == "FAILED" and "app.invoices" in out["report"]["message"]
    res = {r["name"]: r for r in out["results"]}
    assert res["critical_not_empty.public.pgbench_accounts"]["status"] == "pass"
    assert out["delete"]["deleted"] is True and out["plan"]["db_instance_identifier"] not in _instances()


def test_metadata_naming_a_production_instance_is_refused_before_anything_starts(aws):
    from pydantic import ValidationError

    from drdrill.drills.backups import aws_backup_restore as r

    # The estate itself: the restored resource's identifier as the scratch instance's name.
    with pytest.raises(ValidationError, match=r"restore_test.metadata names a production instance "
                                              r"\(DBInstanceIdentifier=production-db\)"):
        restore_entry(metadata={"DBInstanceIdentifier": "production-db"})
    # An RDS instance the account tags Environment=production (moto's RDS serves it): found at run time.
    _rds().conn.create_db_instance(DBInstanceIdentifier="billing-db", DBInstanceClass="db.t3.micro", Engine="postgres",
                                   AllocatedStorage=20, Tags=[{"Key": "Environment", "Value": "production"}])
    e = entry(restore_test=restore_entry(metadata={"DBInstanceIdentifier": "billing-db"}).restore_test,
              coverage_tags={"Environment": "production"})
    estate = SimpleNamespace(backups=SimpleNamespace(aws_backup=[e]), cluster=lambda name: None)
    hook = _backup()
    with Stubber(hook.conn) as stub:  # nothing queued: any backup call (even reading recovery points) fails the test
        from drdrill.hooks.aws_backup import AwsBackupHook

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(AwsBackupHook, "get_client_type", lambda hook_, *a, **kw: hook.conn)
            with pytest.raises(PreflightError, match=r"names a production instance \(DBInstanceIdentifier=billing-db"):
                r.preflight_in_estate("prod", run_id="manual__1", estate=estate)
        stub.assert_no_pending_responses()


def test_random_pick_is_replayed_by_its_seed_and_latest_is_the_newest():
    from drdrill.drills.backups.aws_backup_restore import pick_recovery_point, restore_metadata

    first = pick_recovery_point(POINTS, "random")
    assert first["seed"] is not None and first["candidates"] == 4
    again = pick_recovery_point(list(reversed(POINTS)), "random", first["seed"])
    assert again["recovery_point_arn"] == first["recovery_point_arn"]
    picks = {pick_recovery_point(POINTS, "random", s)["recovery_point_arn"] for s in range(20)}
    assert len(picks) > 1
    assert pick_recovery_point(POINTS, "latest")["recovery_point_arn"] == POINTS[0]["RecoveryPointArn"]
    a, b = restore_metadata(restore_entry(), "run-a"), restore_metadata(restore_entry(), "run-b")
    assert a["DBInstanceIdentifier"].startswith(f"{RESTORE_BASE}-") and a != b
    assert a == restore_metadata(restore_entry(), "run-a") and a["DBInstanceClass"] == "db.t3.micro"


@pytest.mark.sandbox
def test_restore_test_dag_restores_validates_deletes_and_reports_successful(dagbag, restored, estate, sandbox,
                                                                           tmp_path, monkeypatch):
    from botocore.session import get_session

    from integration.helpers import failures, journal, run_dag

    raw = copy.deepcopy(yaml.safe_load(SANDBOX_ESTATE.read_text()))
    raw["backups"]["aws_backup"] = [json.loads(restore_entry().model_dump_json(exclude_defaults=True))]
    path = tmp_path / "estate.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("DRDRILL_ESTATE", str(path))
    # One backup client for every task of the run, its restore calls answered by Stubber in order.
    client = get_session().create_client("backup", region_name=REGION, endpoint_url="http://127.0.0.1:1",
                                         aws_access_key_id="testing", aws_secret_access_key="testing")
    restored.install(monkeypatch, client)
    with Stubber(client) as stub:
        _restore_stubs(stub, statuses=["RUNNING", "COMPLETED"])
        stub.add_response("put_restore_validation_result", {}, {
            "RestoreJobId": "restore-1", "ValidationStatus": "SUCCESSFUL", "ValidationStatusMessage": ANY})
        dr = run_dag(dagbag, "dr_monthly_aws_backup_restore_test", {"entry": "prod"})
        doc = journal(estate, "dr_monthly_aws_backup_restore_test", dr.run_id)
        stub.assert_no_pending_responses()
    assert dr.state == "success", failures(doc)
    ident = doc["plan"]["db_instance_identifier"]
    assert restored.created == [ident] and ident.startswith(RESTORE_BASE)
    assert doc["plan"]["recovery_point_arn"] == POINTS[0]["RecoveryPointArn"] and doc["plan"]["mode"] == "latest"
    assert doc["wait"]["status"] == "COMPLETED"
    res = {r["name"]: r for r in doc["results"]}
    for table in ("public.pgbench_accounts", "app.customers", "app.orders"):
        assert res[f"critical_not_empty.{table}"]["status"] == "pass"
    assert doc["delete"] == {"db_instance_identifier": ident, "deleted": True} and ident not in _instances()
    assert doc["validation_reported"]["validation_status"] == "SUCCESSFUL"


def test_restore_dag_deletes_as_a_teardown_and_always_reports_and_journals(dagbag):
    dag = dagbag.get_dag("dr_monthly_aws_backup_restore_test")
    assert dag.get_task("start_restore").is_setup
    delete = dag.get_task("delete_instance")
    assert delete.is_teardown and "start_restore" in delete.upstream_task_ids
    assert delete.__class__.__name__ == "RdsRestoredInstanceDeleteOperator"
    assert dag.get_task("wait").__class__.__name__ == "AwsBackupRestoreJobWaitOperator"
    assert dag.get_task("report_validation").trigger_rule == "all_done"
    assert "delete_instance" in dag.get_task("report_validation").upstream_task_ids
    assert dag.get_task("journal").trigger_rule == "all_done"


def test_the_kill_switch_stops_the_restore_before_anything_starts(moto_url, clean, monkeypatch):
    from airflow.sdk import Variable

    from drdrill.core import killswitch
    from drdrill.hooks.aws_backup import AwsBackupHook
    from drdrill.operators.aws_backup import AwsBackupStartRestoreJobOperator

    client = _backup().conn
    monkeypatch.setattr(AwsBackupHook, "get_client_type", lambda hook, *a, **kw: client)
    Variable.set(killswitch.KILL_SWITCH_VARIABLE, "INC-7: no drills")
    op = AwsBackupStartRestoreJobOperator(task_id="start_restore", recovery_point_arn=POINTS[0]["RecoveryPointArn"],
                                          iam_role_arn=ROLE, metadata={"DBInstanceIdentifier": "scratch-1"},
                                          aws_conn_id="aws_moto")
    with Stubber(client) as stub:  # nothing queued: a StartRestoreJob would fail the test
        with pytest.raises(killswitch.KillSwitchEngaged, match="INC-7"):
            op.run({})
        stub.assert_no_pending_responses()


@pytest.mark.sandbox
def test_restore_dag_dry_run_picks_and_plans_but_restores_nothing(dagbag, aws, estate, tmp_path, monkeypatch):
    from botocore.session import get_session

    from drdrill.hooks.aws_backup import AwsBackupHook
    from integration.helpers import failures, journal, run_dag

    raw = copy.deepcopy(yaml.safe_load(SANDBOX_ESTATE.read_text()))
    raw["backups"]["aws_backup"] = [json.loads(restore_entry().model_dump_json(exclude_defaults=True))]
    path = tmp_path / "estate.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("DRDRILL_ESTATE", str(path))
    client = get_session().create_client("backup", region_name=REGION, endpoint_url="http://127.0.0.1:1",
                                         aws_access_key_id="testing", aws_secret_access_key="testing")
    monkeypatch.setattr(AwsBackupHook, "get_client_type", lambda hook, *a, **kw: client)
    with Stubber(client) as stub:  # Stubber: the recovery points only; any restore call would fail the run
        stub.add_response("list_recovery_points_by_resource", {"RecoveryPoints": POINTS}, {"ResourceArn": PROD_DB})
        dr = run_dag(dagbag, "dr_monthly_aws_backup_restore_test",
                     {"entry": "prod", "dry_run": True, "recovery_point": "random", "seed": 7})
        doc = journal(estate, "dr_monthly_aws_backup_restore_test", dr.run_id)
        stub.assert_no_pending_responses()
    assert dr.state == "success", failures(doc)
    from drdrill.drills.backups.aws_backup_restore import pick_recovery_point

    assert doc["plan"]["seed"] == 7 and doc["plan"]["mode"] == "random"
    assert doc["plan"]["recovery_point_arn"] == pick_recovery_point(POINTS, "random", 7)["recovery_point_arn"]
    assert doc["restore"]["restore_job_id"] is None and doc["wait"]["status"] == "DRY_RUN"
    assert doc["delete"]["reason"] == "dry run" and doc["validation_reported"]["reported"] is False
    assert not any(i.startswith(RESTORE_BASE) for i in _instances())


def test_validation_operator_reports_failed_with_the_failed_checks(moto_url, monkeypatch):
    from drdrill.core.checks import CheckResult
    from drdrill.hooks.aws_backup import AwsBackupHook
    from drdrill.operators.aws_backup import AwsBackupRestoreValidationOperator

    client = _backup().conn
    monkeypatch.setattr(AwsBackupHook, "get_client_type", lambda hook, *a, **kw: client)
    results = [CheckResult("critical_not_empty.app.orders", Status.FAIL, "app.orders is empty").to_dict(),
               CheckResult("critical_not_empty.app.customers", Status.PASS, "12 rows").to_dict()]
    op = AwsBackupRestoreValidationOperator(task_id="report", restore_job_id={"restore_job_id": "restore-9"},
                                            results=results, aws_conn_id="aws_moto")
    with Stubber(client) as stub:  # Stubber: PutRestoreValidationResult (moto lacks it)
        stub.add_response("put_restore_validation_result", {}, {
            "RestoreJobId": "restore-9", "ValidationStatus": "FAILED",
            "ValidationStatusMessage": "FAIL critical_not_empty.app.orders: app.orders is empty"})
        out = op.run({})
        stub.assert_no_pending_responses()
    assert out["validation_status"] == "FAILED"


def test_deleting_an_instance_already_gone_is_fine_and_a_production_one_is_refused(aws):
    from drdrill.drills.backups.aws_backup_restore import delete

    out = delete(_rds(), f"{RESTORE_BASE}-gone", production={"production-db"},
                 job={"restore_job_id": "restore-3", "status": "RUNNING"})
    assert out["deleted"] is False and out["reason"].startswith("not found: nothing to delete")
    assert "restore job restore-3 is still RUNNING: delete the instance it creates later" in out["reason"]
    with pytest.raises(PreflightError, match="refusing to delete RDS instance 'production-db'"):
        delete(_rds(), "production-db", production={"production-db"})
