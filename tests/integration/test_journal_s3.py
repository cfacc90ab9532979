"""Journals in production go to S3: written through ObjectStoragePath and an Airflow AWS
connection, here against the sandbox's S3 (moto over TLS) with a bucket under Object Lock."""

from __future__ import annotations

import json
import uuid

import pytest

from drdrill.core import journal
from drdrill.core.errors import DrillError

pytestmark = pytest.mark.sandbox


@pytest.fixture
def evidence_bucket(sandbox, monkeypatch):
    s3 = sandbox.s3_client()
    bucket = "drdrill-evidence"
    if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    conn = {"conn_type": "aws", "login": sandbox._secret("s3-key"), "password": sandbox._secret("s3-key-secret"),
            "extra": {"endpoint_url": f"https://localhost:{sandbox.spec.s3_port}", "region_name": "us-east-1"}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_EVIDENCE", json.dumps(conn))
    # A private CA is trusted the way botocore always trusts one: AWS_CA_BUNDLE.
    monkeypatch.setenv("AWS_CA_BUNDLE", str(sandbox.layout.ca))
    return s3, bucket


def test_journal_is_written_to_s3_once(evidence_bucket):
    s3, bucket = evidence_bucket
    run_id = f"manual__s3_{uuid.uuid4().hex}"
    doc = {"drill": "dr_monthly_restore_test", "run_id": run_id, "status": "passed"}
    path = journal.write(f"s3://{bucket}/journal", "aws_evidence", dict(doc), {"gx": {"validations": {}}})
    # ObjectStoragePath names the connection in the URL it prints.
    assert path == f"s3://aws_evidence@{bucket}/journal/dr_monthly_restore_test/{run_id}.json"
    body = s3.get_object(Bucket=bucket, Key=f"journal/dr_monthly_restore_test/{run_id}.json")["Body"]
    stored = json.loads(body.read())
    assert stored["status"] == "passed" and stored["attachments"]["gx"].endswith(".gx.json")
    with pytest.raises(DrillError, match="already exists"):
        journal.write(f"s3://{bucket}/journal", "aws_evidence", dict(doc))
