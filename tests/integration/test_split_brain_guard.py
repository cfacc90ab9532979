"""An incident never promotes the standby beside a primary that is up but refuses drdrill's login.

A rotated password or a pg_hba.conf change makes every connection fail; read as "primary down",
the incident runbook would promote the standby next to a running primary. Real FATALs from the
sandbox's primary (a role it does not know), through the runbook's own Assess probe.
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


def test_a_primary_that_refuses_our_login_is_up_and_blocks_the_promotion(estate):
    cluster = estate.cluster("main")
    role = cluster.postgres.model_copy(update={"user": "drdrill_no_such_role"})
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


def test_readiness_tells_a_refusal_from_a_server_that_does_not_answer(estate):
    primary = estate.cluster("main").primary
    ok, why = PostgresNodeHook(host=primary.host, port=primary.port, database="postgres",
                               user="drdrill_no_such_role").is_ready()
    assert not ok and why.startswith(REFUSED_US + "not authorised"), why
    ok, why = PostgresNodeHook(host=primary.host, port=primary.port, database="postgres", user="postgres").is_ready()
    assert ok, why
