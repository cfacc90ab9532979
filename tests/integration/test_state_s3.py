"""The state store in production is S3: the canary writer publishes its writes there and obeys a stop
written there, through ObjectStoragePath and an Airflow AWS connection (the sandbox's S3, moto over TLS)."""

from __future__ import annotations

import json
import uuid

import pytest
from tests.integration.test_journal_s3 import evidence_bucket  # noqa: F401 - the fixture

from drdrill.core import canary, statestore
from drdrill.core.estate import State
from drdrill.core.polling import wait_until
from drdrill.hooks import postgres as pg

pytestmark = pytest.mark.sandbox


@pytest.fixture(autouse=True)
def fresh_s3_clients(evidence_bucket):  # noqa: F811
    """An earlier test may have rebuilt the sandbox (tests/integration/test_sandbox.py) with a new
    self-signed certificate: the S3 filesystem this process cached still trusts the old one."""
    from airflow.sdk.io import store as object_stores

    _, bucket = evidence_bucket
    type(statestore.path(State(location=f"s3://{bucket}", conn_id="aws_evidence")).fs).clear_instance_cache()
    object_stores._STORE_CACHE.clear()


def test_canary_state_round_trip_on_s3(evidence_bucket, sandbox, estate, tmp_path):  # noqa: F811
    s3, bucket = evidence_bucket
    c = estate.cluster("main")
    with pg.connect(c, c.primary.host, c.primary.port) as conn:
        pg.query(conn, canary.TABLE_SQL)
    store = State(location=f"s3://{bucket}/state", conn_id="aws_evidence")
    run_id = f"manual__s3_{uuid.uuid4().hex}"
    url = sandbox.replicas()[0][1].rstrip("/") + "/write"
    pid = canary.start(tmp_path / "run", run_id, [url], interval_ms=50, timeout=2, max_seconds=120, store=store)
    try:
        run = canary.shared(store, run_id)
        wait_until(lambda: sum(1 for r in run.records() if r.get("ok")) >= 5, timeout=30, interval=0.2,
                   what="5 acknowledged canary writes published to S3")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="state/canary/")["Contents"]]
        assert any(k.endswith(canary.WRITER) for k in keys) and any("/acks-" in k for k in keys), keys
        out = canary.stop_shared(store, run_id, by="test", wait=20)
        assert out["confirmed"] is True and out["complete"] is True, out
        wait_until(lambda: not canary.is_running(tmp_path / "run"), timeout=10, what="the writer to exit")
        assert [r["seq"] for r in run.records()] == list(range(1, out["attempts"] + 1))
    finally:
        canary.stop(tmp_path / "run")
    run.remove()
    left = s3.list_objects_v2(Bucket=bucket, Prefix=f"state/canary/{run.dir.name}/").get("KeyCount")
    assert left == 0 and pid


def test_state_objects_are_replaced_whole_on_s3(evidence_bucket):  # noqa: F811
    s3, bucket = evidence_bucket
    p = statestore.path(State(location=f"s3://{bucket}/state", conn_id="aws_evidence"), "t", f"{uuid.uuid4().hex}.json")
    statestore.write_atomically(p, json.dumps({"a": 1}))
    statestore.write_atomically(p, json.dumps({"a": 2}))
    assert json.loads(p.read_text()) == {"a": 2}
    statestore.remove_tree(p.parent)
    assert not p.exists()
