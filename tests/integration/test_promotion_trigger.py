"""The promotion trigger and its deferrable sensor, against real servers of the sandbox."""

from __future__ import annotations

import asyncio

import pytest
from airflow.sdk.exceptions import TaskDeferred

from drdrill.core import scratch
from drdrill.hooks.postgres import conn_id_for
from drdrill.sensors.postgres import PostgresPromotedSensor
from drdrill.triggers.postgres import PostgresPromotedTrigger

pytestmark = pytest.mark.sandbox


def test_serialize_is_exact():
    t = PostgresPromotedTrigger(host="h", port=5, user="u", dbname="d", timeout=9, poll_interval=0.5,
                                started_at=100.0, down_grace=3)
    assert t.serialize() == ("drdrill.triggers.postgres.PostgresPromotedTrigger", {
        "host": "h", "port": 5, "user": "u", "dbname": "d", "conn_id": None, "timeout": 9.0,
        "poll_interval": 0.5, "started_at": 100.0, "down_grace": 3.0, "payload": None})
    cls_path, kwargs = t.serialize()
    assert PostgresPromotedTrigger(**kwargs).serialize() == t.serialize()


async def _first_event(trigger):
    async for ev in trigger.run():
        return ev.payload


def _conn(estate, node):
    return conn_id_for(estate.cluster("main"), node.host, node.port)


def _trigger(estate, node, **kw):
    return PostgresPromotedTrigger(host=node.host, port=node.port, user="drdrill", dbname="postgres",
                                   conn_id=_conn(estate, node), **kw)


def test_fires_success_for_a_primary(estate):
    ev = asyncio.run(_first_event(_trigger(estate, estate.cluster("main").primary)))
    assert ev["status"] == "success" and ev["message"] == "promoted" and ev["ready_at"] > 0


def test_the_connection_is_read_in_the_trigger_and_never_serialised(estate):
    """Login, password and TLS options come from the node's connection (pg2: verify-full); none of it is in
    what the triggerer stores."""
    standby = estate.cluster("main").standbys[0]
    t = _trigger(estate, standby)
    kw = t.connect_kwargs()
    assert kw["user"] == "drdrill" and kw["password"] and kw["sslmode"] == "verify-full", sorted(kw)
    assert kw["password"] not in str(t.serialize()) and "sslmode" not in str(t.serialize())


def test_times_out_while_the_server_stays_in_recovery(estate):
    ev = asyncio.run(_first_event(_trigger(estate, estate.cluster("main").standbys[0], timeout=0.5)))
    assert ev["status"] == "error" and "not promoted after" in ev["message"] and "still in recovery" in ev["message"]


def test_gives_up_early_when_nothing_listens(estate):
    port = scratch.allocate(estate, "probe").port
    t = PostgresPromotedTrigger(host="127.0.0.1", port=port, user="postgres", dbname="postgres", down_grace=0.3)
    ev = asyncio.run(_first_event(t))
    assert ev["status"] == "error" and "is not running" in ev["message"]


def test_sensor_defers_while_in_recovery(estate):
    standby = estate.cluster("main").standbys[0]
    s = PostgresPromotedSensor(task_id="wait", target={"host": standby.host, "port": standby.port},
                               conn_id=_conn(estate, standby))
    with pytest.raises(TaskDeferred) as d:
        s.execute(context={})
    assert isinstance(d.value.trigger, PostgresPromotedTrigger)
    assert d.value.method_name == "execute_complete"


def test_sensor_fails_with_the_trigger_message():
    s = PostgresPromotedSensor(task_id="wait", target={"host": "h", "port": 1})

    class TI:
        def xcom_push(self, key, value):
            self.pushed = value

    ti = TI()
    with pytest.raises(Exception, match="not promoted after 5s"):
        s.execute_complete({"ti": ti}, {"status": "error", "message": "h:1 not promoted after 5s"}, started=1.0)
    assert ti.pushed["status"] == "failed"


# ------------------------------------------------------------------ health is not authentication
def _down(node_or_port, estate, **kw):
    from drdrill.triggers.postgres import PostgresDownTrigger

    host, port = ("127.0.0.1", node_or_port) if isinstance(node_or_port, int) else (node_or_port.host,
                                                                                    node_or_port.port)
    args = {"user": "drdrill", "dbname": "postgres", "failed_for": 0.3, "poll_interval": 0.1, "timeout": 5,
            "conn_id": estate.cluster("main").postgres.conn_id, **kw}
    return PostgresDownTrigger(host=host, port=port, **args)


def test_a_wrong_password_is_not_an_outage(estate, monkeypatch):
    # scram-sha-256: the primary answers FATAL password authentication failed. It is up: no failover.
    import json
    import os

    conn = json.loads(os.environ[f"AIRFLOW_CONN_{estate.cluster('main').postgres.conn_id.upper()}"])
    monkeypatch.setenv("AIRFLOW_CONN_PG_WRONG_PASSWORD", json.dumps({**conn, "password": "not-the-password"}))
    ev = asyncio.run(_first_event(_down(estate.cluster("main").primary, estate, conn_id="pg_wrong_password")))
    assert ev["status"] == "error" and ev["failures"] == 0, ev
    assert "up, but refuses drdrill: password authentication failed" in ev["message"]
    assert "connection pg_wrong_password" in ev["message"] and "not-the-password" not in ev["message"]
    assert "never counts as the server being down" in ev["message"] and "criterion is not met" in ev["message"]


def test_a_role_without_a_password_is_not_an_outage(estate):
    # The primary asks for a password the connection does not have: up, and refusing us.
    ev = asyncio.run(_first_event(_down(estate.cluster("main").primary, estate, user="drdrill_no_such_role",
                                        conn_id=None)))
    assert ev["status"] == "error" and ev["failures"] == 0, ev
    assert "up, but refuses drdrill: the server asks for a password" in ev["message"]


def test_a_database_that_does_not_exist_is_not_an_outage(estate):
    ev = asyncio.run(_first_event(_down(estate.cluster("main").primary, estate, dbname="drdrill_no_such_db")))
    assert ev["status"] == "error" and "the database does not exist" in ev["message"], ev


def test_a_server_that_does_not_answer_meets_the_criterion(estate):
    port = scratch.allocate(estate, "probe").port
    ev = asyncio.run(_first_event(_down(port, estate)))
    assert ev["status"] == "success" and ev["failures"] >= 2 and "connection refused" in ev["message"], ev


def test_a_healthy_primary_never_meets_the_criterion(estate):
    ev = asyncio.run(_first_event(_down(estate.cluster("main").primary, estate, timeout=0.5)))
    assert ev["status"] == "error" and "did not fail its health checks" in ev["message"], ev


def test_waiting_for_a_promotion_stops_at_once_when_the_server_refuses_us(estate):
    t = PostgresPromotedTrigger(host=estate.cluster("main").primary.host, port=estate.cluster("main").primary.port,
                                user="drdrill_no_such_role", dbname="postgres", timeout=60)
    ev = asyncio.run(_first_event(t))
    assert ev["status"] == "error" and "refuses drdrill: the server asks for a password" in ev["message"], ev
