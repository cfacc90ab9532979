"""The Route53 switch waits for INSYNC in the triggerer, not in a worker slot.

Real Route53 answers a change with PENDING and reaches INSYNC within about a minute; moto answers
INSYNC at once. So the real UPSERT goes to moto's Route53 over TLS, and only the status in its
answer is made PENDING (a botocore ``after-call`` handler on the real client). The deferred half
then polls moto for real through the amazon provider's async waiter.
"""

from __future__ import annotations

import pytest

from integration.helpers import test_dag

DAG_ID = "test_route53_switch"

pytestmark = pytest.mark.sandbox


@pytest.fixture
def switch_dag(airflow_db, sandbox, monkeypatch):
    for name, value in sandbox.airflow_env().items():
        monkeypatch.setenv(name, value)
    return test_dag("route53_switch.py", DAG_ID)


def _answer_pending(monkeypatch):
    """Route53's real first answer: the change is PENDING (moto says INSYNC at once)."""
    from drdrill.hooks.route53 import Route53Hook

    real = Route53Hook.get_client_type
    seen = []

    def pending(parsed, **_):
        seen.append(parsed["ChangeInfo"]["Id"])
        parsed["ChangeInfo"]["Status"] = "PENDING"

    def get_client_type(self, *a, **kw):
        client = real(self, *a, **kw)
        if kw.get("deferrable"):  # the triggerer's async client: moto's real answers
            return client
        client.meta.events.register("after-call.route53.ChangeResourceRecordSets", pending)
        client.meta.events.register("after-call.route53.GetChange", pending)
        return client

    monkeypatch.setattr(Route53Hook, "get_client_type", get_client_type)
    return seen


def test_a_pending_change_is_waited_for_in_the_triggerer(switch_dag, sandbox, estate, monkeypatch):
    seen = _answer_pending(monkeypatch)
    dns = estate.cluster("main").failover.dns
    record = "deferred-switch." + dns.zone
    dr = switch_dag.test(run_conf={"zone": dns.zone, "record": record, "value": "pg2.example.internal"})
    [ti] = dr.get_task_instances()
    out = ti.xcom_pull(task_ids="switch")
    assert str(ti.state) == "success", ti.xcom_pull(task_ids="switch", key="drill_step")
    assert seen, "the UPSERT's answer was not seen"
    assert out["waited_in"] == "triggerer" and out["to"] == "pg2.example.internal"
    step = ti.xcom_pull(task_ids="switch", key="drill_step")
    assert step["status"] == "success"  # one record, written by the resumed half
    # What moto holds: the UPSERT really happened.
    r53 = sandbox.route53_client()
    zone_id = out["change_id"] and r53.list_hosted_zones_by_name(DNSName=dns.zone + ".")["HostedZones"][0]["Id"]
    rrs = r53.list_resource_record_sets(HostedZoneId=zone_id, StartRecordName=record + ".", StartRecordType="CNAME",
                                        MaxItems="1")["ResourceRecordSets"][0]
    assert rrs["Name"] == record + "." and rrs["ResourceRecords"][0]["Value"].rstrip(".") == "pg2.example.internal"


def test_the_trigger_polls_route53_through_the_async_client(sandbox, estate, monkeypatch):
    import asyncio

    from drdrill.hooks.route53 import Route53Hook
    from drdrill.triggers.route53 import Route53ChangeInsyncTrigger

    for name, value in sandbox.airflow_env().items():
        monkeypatch.setenv(name, value)
    dns = estate.cluster("main").failover.dns
    change = Route53Hook(aws_conn_id="aws_sandbox").upsert_record(zone=dns.zone, record="trigger." + dns.zone,
                                                                   value="pg1.example.internal", ttl=5)
    trig = Route53ChangeInsyncTrigger(change_id=change["change_id"], aws_conn_id="aws_sandbox", waiter_delay=1,
                                      waiter_max_attempts=5)

    async def first():
        return await anext(trig.run())

    ev = asyncio.run(first()).payload
    assert ev == {"status": "success", "payload": {"change_id": change["change_id"]}}


def test_a_change_that_stays_pending_fails_the_task_with_its_reason(switch_dag, estate, monkeypatch):
    from contextlib import asynccontextmanager

    from drdrill.hooks.route53 import Route53Hook

    _answer_pending(monkeypatch)
    real = Route53Hook.get_async_conn

    def pending(parsed, **_):
        parsed["ChangeInfo"]["Status"] = "PENDING"

    @asynccontextmanager
    async def stuck(ctx):
        async with ctx as client:  # the triggerer's real async client; its GetChange answers PENDING
            client.meta.events.register("after-call.route53.GetChange", pending)
            yield client

    async def get_async_conn(self):
        return stuck(await real(self))

    monkeypatch.setattr(Route53Hook, "get_async_conn", get_async_conn)
    dns = estate.cluster("main").failover.dns
    dr = switch_dag.test(run_conf={"zone": dns.zone, "record": "stuck." + dns.zone, "value": "pg1.example.internal",
                                   "insync_timeout": 5})
    [ti] = dr.get_task_instances()
    assert str(ti.state) == "failed"
    step = ti.xcom_pull(task_ids="switch", key="drill_step")
    assert step["status"] == "failed" and "did not reach INSYNC" in step["error"], step
