"""drdrill's operators with arguments and connections only (no estate), inside a real DAG run.

The drills use them with ``cluster=`` (tested through the drills' own DAGs); this is the way a
user's DAG uses them. The test DAG lives outside the DAGs folder, so it is written to the
metadata database here, as the DAG processor would.
"""

from __future__ import annotations

import json

import pytest

from integration.helpers import corrupted_newest_full, test_dag

DAG_ID = "test_operators_by_connection"

pytestmark = pytest.mark.sandbox


@pytest.fixture
def user_dag(airflow_db, sandbox, monkeypatch):
    for name, value in sandbox.airflow_env().items():
        monkeypatch.setenv(name, value)
    return test_dag("operators_by_connection.py", DAG_ID)


def _outcome(dr) -> dict[str, tuple[str, object]]:
    out = {}
    for ti in dr.get_task_instances():
        step = ti.xcom_pull(task_ids=ti.task_id, key="drill_step") or {}
        out[ti.task_id] = (str(ti.state), ti.xcom_pull(task_ids=ti.task_id) if str(ti.state) == "success"
                           else step.get("error"))
    return out


def test_operators_act_and_refuse_through_connections(user_dag, sandbox, estate):
    primary = estate.cluster("main").primary
    dns = estate.cluster("main").failover.dns
    record = "drill-test." + dns.zone
    root = estate.scratch.root.parent / "operators-scratch"
    dr = user_dag.test(run_conf={"zone": dns.zone, "record": record, "value": "pg2.example.internal",
                                 "host": primary.host, "port": primary.port, "scratch_root": str(root)})
    out = _outcome(dr)
    # The restore from repo2 (S3) deferred to the trigger at once and resumed when the copy was ready;
    # its teardown removed everything.
    state, restored = out["restore"]
    assert state == "success" and restored["ready_at"] >= restored["started_at"], restored
    assert out["teardown"][0] == "success" and not any(root.iterdir()), out["teardown"]
    # pgBackRest check and verify pass on the healthy sandbox stanza, every check listed.
    state, checks = out["check"]
    assert state == "success", checks
    assert {"archive_round_trip"} <= {c["name"] for c in checks} and all(c["status"] != "fail" for c in checks)
    state, verified = out["verify"]
    assert state == "success" and verified and all(c["status"] == "pass" for c in verified), verified
    # The record really changed in Route53 (moto over HTTPS), and the change was INSYNC.
    state, sw = out["dns_switch"]
    assert state == "success" and sw["switched"] and sw["to"] == "pg2.example.internal", sw
    r53 = sandbox.route53_client()
    sets = r53.list_resource_record_sets(HostedZoneId=sandbox._zone_id(r53),
                                         StartRecordName=record + ".", StartRecordType="CNAME", MaxItems="1")
    assert sets["ResourceRecordSets"][0]["ResourceRecords"][0]["Value"].rstrip(".") == "pg2.example.internal"
    # Promote refuses a server that is already primary: nothing is touched.
    state, err = out["promote"]
    assert state == "failed" and "is not in recovery: it is already a primary" in err, err


def test_verify_operator_fails_on_a_corrupt_backup_naming_the_file(user_dag, estate):
    dns = estate.cluster("main").failover.dns
    with corrupted_newest_full(estate) as label:
        dr = user_dag.test(run_conf={"zone": dns.zone, "record": "drill-test." + dns.zone, "value": "x.internal"})
    state, err = _outcome(dr)["verify"]
    assert state == "failed", err
    assert label in err and "pgbackrest verify of stanza main: " in err, err
    results = dr.get_task_instance("verify").xcom_pull(task_ids="verify", key="check_results")
    assert any(r["status"] == "fail" for r in results), json.dumps(results)[:500]
