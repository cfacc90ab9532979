"""S3 Object Lock on the immutable copy: `drdrill.drills.backups.object_lock` through `ObjectLockHook`
(the amazon provider's S3Hook) against moto's S3 over real HTTP (one server for the module, a bucket per
test), and the sandbox's repo2 bucket, which `make sandbox-up` creates under Object Lock COMPLIANCE.

moto serves bucket lock configuration, retention on put (the bucket's default or explicit) and refuses
deleting a locked version; it does not implement ``get_object_retention`` (the hook reads retention with
``head_object``). AccessDenied cannot be produced by moto without IAM policies: that test uses botocore's
``Stubber`` on the hook's real client.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from drdrill.core.backups import ObjectLock
from drdrill.core.checks import Status
from drdrill.drills.backups import object_lock
from drdrill.hooks.s3_lock import ObjectLockHook
from moto_server import moto_server

CONN = "aws_lock_test"
PREFIX = "pgbackrest/backup/main/"


@pytest.fixture(scope="module")
def s3():
    """moto's S3 over HTTP for the module, the Airflow connection to it, and a boto3 client."""
    import boto3

    with moto_server(CONN) as url:
        yield boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                           aws_secret_access_key="testing")


def make_bucket(s3, *, lock: bool = True, mode: str | None = "COMPLIANCE", days: int | None = 30,
                years: int | None = None, versioning: str | None = "Enabled", objects: int = 3) -> str:
    """A fresh bucket configured as asked, with ``objects`` backup files written under PREFIX."""
    name = f"lock-test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, **({"ObjectLockEnabledForBucket": True} if lock else {}))
    if versioning:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if lock and mode:
        default = {"Mode": mode, **({"Days": days} if days else {}), **({"Years": years} if years else {})}
        s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": default}})
    if versioning and versioning != "Enabled":
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": versioning})
    for i in range(objects):
        s3.put_object(Bucket=name, Key=f"{PREFIX}20261206-0{i}0000F/backup.manifest", Body=b"manifest %d" % i)
    return name


def entry(bucket: str, **kw) -> ObjectLock:
    return ObjectLock(**{"name": "immutable", "conn_id": CONN, "bucket": bucket, "prefix": PREFIX,
                         "newest_objects": 3, "delete_probe": True, **kw})


def run(e: ObjectLock) -> dict[str, object]:
    results = object_lock.daily(e)
    assert all(r.target == "object_lock/immutable" for r in results), results
    return {r.name: r for r in results}


def probe_versions(s3, bucket: str) -> list[dict]:
    return s3.list_object_versions(Bucket=bucket, Prefix="drdrill/object-lock-probe/").get("Versions", [])


def test_a_compliance_bucket_passes_and_refuses_the_probe_delete(s3):
    b = make_bucket(s3)
    res = run(entry(b))
    assert [r.status for r in res.values()] == [Status.PASS] * 3, [r.line() for r in res.values()]
    assert "Object Lock enabled, default retention COMPLIANCE 30 days >= 30, versioning Enabled" in \
        res["object_lock_config"].message
    assert "the 3 newest objects under" in res["object_lock_retention"].message
    probe = res["object_lock_delete_probe"]
    assert "was refused (AccessDenied" in probe.message and "locked (COMPLIANCE)" in probe.message
    # The refused probe version is really still there, locked ~30 days from now.
    [v] = probe_versions(s3, b)
    assert v["Key"] == probe.details["key"] and v["VersionId"] == probe.details["version_id"]
    until = dt.datetime.fromisoformat(probe.details["retain_until"])
    assert dt.timedelta(days=29) < until - dt.datetime.now(dt.UTC) <= dt.timedelta(days=30)


def test_default_retention_in_years_counts_365_days(s3):
    res = run(entry(make_bucket(s3, days=None, years=1), min_retention_days=365, delete_probe=False))
    assert res["object_lock_config"].status is Status.PASS and res["object_lock_config"].value == 365
    assert res["object_lock_retention"].status is Status.PASS


def test_object_lock_off_fails_and_the_probe_delete_succeeds(s3):
    b = make_bucket(s3, lock=False)
    res = run(entry(b))
    cfg = res["object_lock_config"]
    assert cfg.status is Status.FAIL
    assert f"Object Lock is not enabled on bucket {b!r}" in cfg.message and "put-object-lock-configuration" in \
        cfg.message
    assert res["object_lock_retention"].status is Status.FAIL
    assert "3 of the 3 newest objects" in res["object_lock_retention"].message and \
        "no retention (no retain-until date)" in res["object_lock_retention"].message
    probe = res["object_lock_delete_probe"]
    assert probe.status is Status.FAIL and "SUCCEEDED" in probe.message and "no immutable copy" in probe.message
    assert probe_versions(s3, b) == []  # the version really is gone


def test_governance_is_reported_weaker_and_fails_when_the_estate_asks_compliance(s3):
    b = make_bucket(s3, mode="GOVERNANCE")
    res = run(entry(b))
    cfg = res["object_lock_config"]
    assert cfg.status is Status.FAIL
    assert "default retention mode GOVERNANCE is weaker than COMPLIANCE" in cfg.message
    assert "s3:BypassGovernanceRetention" in cfg.message
    assert res["object_lock_retention"].status is Status.FAIL and "mode GOVERNANCE, weaker than COMPLIANCE" in \
        res["object_lock_retention"].message
    # A plain delete (no bypass header) is still refused under GOVERNANCE: only the mode is weaker.
    assert res["object_lock_delete_probe"].status is Status.PASS
    # An estate that accepts GOVERNANCE passes, and is still told it is the weaker mode.
    ok = run(entry(b, mode="GOVERNANCE", delete_probe=False))
    assert ok["object_lock_config"].status is Status.PASS and "weaker than COMPLIANCE" in \
        ok["object_lock_config"].message


def test_a_one_day_retention_fails_the_config_and_the_newest_objects(s3):
    res = run(entry(make_bucket(s3, days=1), delete_probe=False))
    cfg = res["object_lock_config"]
    assert cfg.status is Status.FAIL and "default retention 1 day(s) < the 30 days the estate requires" in cfg.message
    ret = res["object_lock_retention"]
    assert ret.status is Status.FAIL and "1.0 days after it was written, less than 30" in ret.message


def test_versioning_suspended_fails(s3):
    # S3 refuses to suspend versioning on an Object Lock bucket; moto allows it, which is what this checks.
    b = make_bucket(s3, versioning="Suspended")
    cfg = run(entry(b, delete_probe=False))["object_lock_config"]
    assert cfg.status is Status.FAIL
    assert cfg.message.startswith(f"versioning is Suspended on bucket {b!r}, expected Enabled")
    assert "put-bucket-versioning" in cfg.message


def test_lock_without_default_retention_leaves_the_newest_objects_without_retain_until(s3):
    # Object Lock on but no default rule: what the writer puts carries no lock. (S3 also lets a default rule
    # be added to a bucket that already holds objects, which leaves those unlocked; moto refuses a rule on a
    # non-empty bucket, so this is the way to get unlocked newest objects on moto.)
    b = make_bucket(s3, mode=None)
    res = run(entry(b, delete_probe=False))
    cfg = res["object_lock_config"]
    assert cfg.status is Status.FAIL and f"bucket {b!r} has Object Lock but no default retention" in cfg.message
    ret = res["object_lock_retention"]
    assert ret.status is Status.FAIL and f"3 of the 3 newest objects under s3://{b}/{PREFIX}" in ret.message
    assert f"{PREFIX}20261206-020000F/backup.manifest: no retention (no retain-until date)" in ret.message


def test_a_newest_object_whose_retention_ended_fails(s3):
    b = make_bucket(s3)
    key = f"{PREFIX}20261206-090000F/backup.manifest"  # moto takes a past date (S3 would refuse it)
    s3.put_object(Bucket=b, Key=key, Body=b"x", ObjectLockMode="COMPLIANCE",
                  ObjectLockRetainUntilDate=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    ret = run(entry(b, delete_probe=False))["object_lock_retention"]
    assert ret.status is Status.FAIL and f"{key}: retention ended 2026-01-01T00:00:00Z" in ret.message
    assert "1 of the 3 newest objects" in ret.message


def test_no_objects_under_the_prefix_fails(s3):
    b = make_bucket(s3, objects=0)
    ret = run(entry(b, delete_probe=False))["object_lock_retention"]
    assert ret.status is Status.FAIL and f"no objects under s3://{b}/{PREFIX}" in ret.message
    assert "check the prefix in the estate" in ret.message


def test_a_bucket_that_does_not_exist_fails_once_naming_it(s3):
    res = run(entry("no-such-bucket-here"))
    cfg = res["object_lock_config"]
    assert cfg.status is Status.FAIL
    assert cfg.message.startswith("S3 bucket 'no-such-bucket-here' does not exist (connection 'aws_lock_test')")
    assert cfg.details["error_code"] == "NoSuchBucket"
    assert {n: r.status for n, r in res.items()} == {"object_lock_config": Status.FAIL,
                                                      "object_lock_retention": Status.SKIP,
                                                      "object_lock_delete_probe": Status.SKIP}


def test_an_endpoint_that_does_not_answer_fails_once_naming_the_bucket(s3, monkeypatch):
    import socket

    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEAD", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"endpoint_url": f"http://127.0.0.1:{port}", "region_name": "us-east-1",
                  "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2}}}))
    res = run(entry("backups-elsewhere", conn_id="aws_dead"))
    cfg = res["object_lock_config"]
    assert cfg.status is Status.FAIL and cfg.details["error_code"] == "EndpointConnectionError"
    assert cfg.message.startswith("S3 get_object_lock_configuration on bucket 'backups-elsewhere' failed "
                                  "(connection 'aws_dead'): EndpointConnectionError")
    assert "check the connection's endpoint, region and credentials" in cfg.message
    assert res["object_lock_retention"].status is Status.SKIP and "could not be reached" in \
        res["object_lock_retention"].message


def test_access_denied_fails_each_check_naming_the_bucket_and_the_permission(s3):
    # moto grants everything without IAM policies: botocore's Stubber on the hook's real S3 client
    # answers AccessDenied the way S3 does for a role without the permissions.
    from botocore.stub import Stubber

    b = "locked-away"
    hook = ObjectLockHook(aws_conn_id=CONN)
    with Stubber(hook.conn) as stub:
        for op in ("get_object_lock_configuration", "get_bucket_versioning", "list_objects_v2", "put_object"):
            if op == "get_bucket_versioning":
                continue  # the config check stops at the first refusal
            stub.add_client_error(op, service_error_code="AccessDenied", service_message="Access Denied",
                                  http_status_code=403)
        res = {r.name: r for r in object_lock.daily(entry(b), s3=hook)}
        stub.assert_no_pending_responses()
    assert all(r.status is Status.FAIL for r in res.values()), res
    assert res["object_lock_config"].message.startswith(
        f"connection {CONN!r} may not get_object_lock_configuration on bucket {b!r} (AccessDenied: Access Denied): "
        f"grant its role s3:GetBucketObjectLockConfiguration on arn:aws:s3:::{b}")
    assert "s3:ListBucket" in res["object_lock_retention"].message and b in res["object_lock_retention"].message
    assert "may not put_object on s3://locked-away/drdrill/object-lock-probe/" in \
        res["object_lock_delete_probe"].message and "s3:PutObject" in res["object_lock_delete_probe"].message


@pytest.mark.parametrize(("locked", "error", "expected"), [
    (True, "InternalError", "the probe is inconclusive: deleting s3://b-x/"),
    (False, "AccessDenied", "but the probe carries no retention: the refusal came from a policy"),
])
def test_a_probe_refusal_that_is_not_the_lock_fails(s3, locked, error, expected):
    # A delete that fails with a server error, or one refused by a policy while the probe carries no lock,
    # proves nothing about the lock. moto cannot answer either way: Stubber on the hook's real client.
    from botocore.stub import ANY, Stubber

    hook = ObjectLockHook(aws_conn_id=CONN)
    lock = {"ObjectLockMode": "COMPLIANCE",
            "ObjectLockRetainUntilDate": dt.datetime.now(dt.UTC) + dt.timedelta(days=30)} if locked else {}
    with Stubber(hook.conn) as stub:
        stub.add_response("put_object", {"VersionId": "v1"}, {"Bucket": "b-x", "Key": ANY, "Body": ANY,
                                                              "ContentMD5": ANY})
        stub.add_response("head_object", {"VersionId": "v1", "LastModified": dt.datetime.now(dt.UTC), **lock},
                          {"Bucket": "b-x", "Key": ANY, "VersionId": "v1"})
        stub.add_client_error("delete_object", service_error_code=error, service_message="no",
                              http_status_code=500 if error == "InternalError" else 403)
        r = object_lock.check_delete_probe(hook, entry("b-x"), "object_lock/immutable")
        stub.assert_no_pending_responses()
    assert r.status is Status.FAIL and expected in r.message, r.message


@pytest.mark.sandbox
def test_the_sandbox_repo2_bucket_is_an_immutable_copy(sandbox, estate):
    # `make sandbox-up` made repo2's bucket Object Lock COMPLIANCE 30 days before pgBackRest wrote to it:
    # the estate's entry passes through the frame, and every backup file is locked, the largest too
    # (pgBackRest uploads those in parts; the sandbox's moto gives them the default retention, as S3 does).
    from drdrill.drills import backups

    res = {r.name: r for r in backups.daily("object_lock", estate)}
    assert {n: r.status for n, r in res.items()} == {n: Status.PASS for n in (
        "object_lock_config", "object_lock_retention", "object_lock_delete_probe")}, [r.line() for r in res.values()]
    assert all(r.target == "object_lock/repo2-bucket" for r in res.values())
    [e] = estate.backups.object_lock
    c = sandbox.s3_client()
    files = [o for p in c.get_paginator("list_objects_v2").paginate(Bucket=e.bucket, Prefix="pgbackrest/")
             for o in p.get("Contents", [])]
    biggest = max(files, key=lambda o: o["Size"])
    assert biggest["Size"] > 5 * 1024 * 1024  # above pgBackRest's upload chunk: a multipart upload
    assert c.head_object(Bucket=e.bucket, Key=biggest["Key"]).get("ObjectLockMode") == "COMPLIANCE"
