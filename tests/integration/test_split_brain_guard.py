"""An incident never promotes the standby beside a primary that is up but refuses drdrill's login.

A rotated password or a pg_hba.conf change makes every connection fail; read as "primary down",
the incident runbook would promote the standby next to a running primary. Real FATALs from the
sandbox's primary (scram-sha-256: a wrong password, no password), through the runbook's own Assess probe.
"""

from __future__ import annotations

import time

import pytest

from drdrill.core.errors import PreflightError
from drdrill.core.pgerrors import REFUSED_US
from drdrill.drills.failover.assessment import safeguards
from drdrill.drills.failover.plan import INCIDENT, Plan
from drdrill.drills.failover.probes import probe
from drdrill.hooks.postgres import PostgresNodeHook

pytestmark = pytest.mark.sandbox


@pytest.fixture
def wrong_password(estate, monkeypatch) -> str:
    """An Airflow connection like the cluster's, with a password the server does not accept."""
    import json
    import os

    name = estate.cluster("main").postgres.conn_id
    conn = json.loads(os.environ[f"AIRFLOW_CONN_{name.upper()}"])
    monkeypatch.setenv("AIRFLOW_CONN_PG_WRONG_PASSWORD", json.dumps({**conn, "password": "not-the-password"}))
    return "pg_wrong_password"


def test_a_primary_that_refuses_our_login_is_up_and_blocks_the_promotion(estate, wrong_password):
    cluster = estate.cluster("main")
    role = cluster.postgres.model_copy(update={"conn_id": wrong_password})
    wrong = cluster.model_copy(update={"postgres": role})
    primary, standby = cluster.primary, cluster.standbys[0]
    plan = Plan(dag_id=INCIDENT, run_id="split-brain-guard", cluster=cluster.name, primary=primary.name,
                standby=standby.name, fault=None, failback=False, dry_run=False, workdir="/nonexistent",
                started_at=time.time(), approval_required=True, skip_health_wait=True,
                health_check_failed_seconds=120, health_check_interval_seconds=10,
                primary_addr={"host": primary.host, "port": primary.port}, conn_id=None)
    figures = probe(plan, wrong)
    assert figures["primary"]["ready"] is False and figures["primary"]["why"].startswith(REFUSED_US), figures
    with pytest.raises(PreflightError) as e:
        safeguards(plan, figures, stage="assess", cluster=wrong)
    [down] = [r for r in e.value.results if r["name"] == "primary_down"]
    assert down["status"] == "fail" and "it is UP" in down["message"] and "split brain" in down["message"]


def test_readiness_tells_a_refusal_from_a_server_that_does_not_answer(estate, wrong_password):
    cluster = estate.cluster("main")
    primary = cluster.primary
    ok, why = PostgresNodeHook(host=primary.host, port=primary.port, database="postgres",
                               postgres_conn_id=wrong_password).is_ready()
    assert not ok and why.startswith(REFUSED_US + "password authentication failed"), why
    assert "not-the-password" not in why
    ok, why = PostgresNodeHook(host=primary.host, port=primary.port, database="postgres",
                               user="drdrill_no_such_role").is_ready()
    assert not ok and why.startswith(REFUSED_US + "the server asks for a password"), why
    ok, why = PostgresNodeHook(host=primary.host, port=primary.port, database="postgres",
                               postgres_conn_id=cluster.postgres.conn_id).is_ready()
    assert ok, why
