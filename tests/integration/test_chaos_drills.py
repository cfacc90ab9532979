"""dr_weekly_pod_kill and dr_monthly_az_failure end to end on the real sandbox: supervisord's replicas,
HAProxy's front door, the customer probe through it. Every outcome is read from the journal and from
supervisord itself (PIDs before and after), never from the drill's own word alone."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
import yaml

from drdrill.core.paths import DEFAULT_ESTATE
from integration.helpers import failures, journal, run_dag, step
from integration.test_fis import aws, moto_url  # noqa: F401 - fixtures: moto over HTTP for the FIS engine

pytestmark = pytest.mark.sandbox
KILL = "dr_weekly_pod_kill"
AZ = "dr_monthly_az_failure"
WEB = {"service": "web"}


@pytest.fixture
def ops(estate):
    from drdrill.drills.chaos.process import ProcessOps

    o = ProcessOps(estate.service("web").process)
    o.start_stopped()
    assert o.wait_healthy(30)["healed"], "the demo service is not healthy before the test"
    yield o
    o.start_stopped()  # whatever the test did
    o.wait_healthy(30)


def pids(ops) -> dict[str, int | None]:
    return {name: p.pid for name, p in ops.status().items()}


@pytest.fixture
def estate_with(tmp_path, monkeypatch):
    """A copy of the sandbox estate with the web service edited, used by the drills of this test."""
    def make(edit):
        raw = yaml.safe_load(Path(DEFAULT_ESTATE).read_text())
        edit(raw["services"][0])
        p = tmp_path / "estate.yaml"
        p.write_text(yaml.safe_dump(raw))
        monkeypatch.setenv("DRDRILL_ESTATE", str(p))
        return p

    return make


def test_pod_kill_replaces_the_victim_with_no_customer_error(dagbag, estate, ops):
    before = pids(ops)
    dr = run_dag(dagbag, KILL, WEB)
    doc = journal(estate, KILL, dr.run_id)
    assert dr.state == "success", failures(doc)
    c = doc["chaos"]
    assert len(c["victims"]) == 1 and c["victims"][0] in before
    victim = c["victims"][0]
    assert c["killed"][0]["pid"] == before[victim]
    after = pids(ops)
    assert after[victim] not in (None, before[victim]), "supervisord did not start a new process"
    assert all(after[n] == before[n] for n in before if n != victim), "only the victim may be killed"
    assert 0 < c["recover_seconds"] <= 300 and c["detect_seconds"] is not None
    for period in ("before", "during", "after"):
        assert c["probe"][period]["requests"] > 0 and c["probe"][period]["errors"] == 0, period
    assert isinstance(c["seed"], int)
    assert {g["name"] for g in c["guards"]} >= {"allow_list", "window", "kill_switch", "blast_radius"}
    # Replay: the same seed picks the same victim (dry run: nothing is touched).
    now = pids(ops)
    dr2 = run_dag(dagbag, KILL, {**WEB, "seed": c["seed"], "dry_run": True})
    doc2 = journal(estate, KILL, dr2.run_id)
    assert dr2.state == "success", failures(doc2)
    assert doc2["chaos"]["victims"] == c["victims"] and doc2["chaos"]["dry_run"] is True
    assert pids(ops) == now, "a dry run killed something"


def test_outside_the_window_the_run_is_skipped_and_nothing_killed(dagbag, estate_with, ops):
    from drdrill.core.estate import load_estate

    today = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[dt.datetime.now(dt.UTC).weekday()]
    other = [d for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun") if d != today]
    estate_with(lambda s: s.update(window={"days": other, "start": "00:00", "end": "23:59"}))
    before = pids(ops)
    dr = run_dag(dagbag, KILL, WEB)
    doc = journal(load_estate(), KILL, dr.run_id)
    assert dr.state == "success", failures(doc)
    assert doc["status"] == "skipped" and "outside the chaos window" in doc["skipped_reason"]
    assert step(doc, "preflight")["status"] == "skipped"
    assert pids(ops) == before


def test_the_kill_switch_stops_the_action(dagbag, estate, ops):
    from airflow.models import Variable  # noqa: AIR311 - the test is the operator: it writes the metadata DB

    before = pids(ops)
    Variable.set("drdrill_kill_switch", "INC-4711: payments incident, no chaos")  # noqa: AIR311
    try:
        dr = run_dag(dagbag, KILL, WEB)
    finally:
        Variable.delete("drdrill_kill_switch")  # noqa: AIR311
    doc = journal(estate, KILL, dr.run_id)
    assert doc["status"] == "skipped" and "INC-4711" in doc["skipped_reason"]
    assert pids(ops) == before


def test_a_replica_that_does_not_come_back_fails_not_healed_within(dagbag, estate_with, ops, estate):
    from drdrill.core.estate import load_estate

    conf = Path(estate.service("web").process.supervisor_conf)
    original = conf.read_text()
    conf.write_text(original.replace("autorestart=true", "autorestart=false"))
    try:
        ops._ctl("update")  # supervisord re-reads: the programs restart without autorestart
        assert ops.wait_healthy(30)["healed"]
        estate_with(lambda s: s.update(heal_seconds=3))
        dr = run_dag(dagbag, KILL, WEB)
        doc = journal(load_estate(), KILL, dr.run_id)
        assert dr.state == "failed"
        assert "not healed within 3 s" in failures(doc)
        victim = doc["chaos"]["victims"][0]
        assert victim in failures(doc)  # what is missing is named
    finally:
        conf.write_text(original)
        ops._ctl("update")
    # teardown started it again: a failed run leaves no replica stopped
    assert all(p.state in ("RUNNING", "STARTING") for p in ops.status().values())


def test_az_failure_stops_one_zone_with_no_customer_error(dagbag, estate, ops):
    dr = run_dag(dagbag, AZ, {"zone": "b", "duration_seconds": 3})
    doc = journal(estate, AZ, dr.run_id)
    assert dr.state == "success", failures(doc)
    c = doc["chaos"]
    assert c["zone"] == "b" and c["victims"] == ["service-2"]
    # The probe kept its pace through the 3 s fault (at least half its steady-state rate, measured in the same
    # run: a busy machine slows both), and customers saw no error.
    probe = estate.service("web").probe
    steady_rate = c["probe"]["before"]["requests"] / probe.baseline_seconds
    assert c["probe"]["fault"]["requests"] >= 0.5 * steady_rate * 3, (c["probe"]["before"], c["probe"]["fault"])
    assert c["probe"]["fault"]["errors"] == 0
    assert c["recover_seconds"] is not None
    assert all(p.state == "RUNNING" for p in ops.status().values())


def test_az_failure_that_customers_notice_aborts_fails_with_the_count_and_restarts(dagbag, estate_with, ops):
    from drdrill.core.estate import load_estate

    def one_zone(s):  # every replica in zone a: the zone's failure is the whole service
        for r in s["process"]["replicas"]:
            r["zone"] = "a"
        s["az_failure"]["percent"] = 100

    estate_with(one_zone)
    t0 = time.monotonic()
    dr = run_dag(dagbag, AZ, {"zone": "a", "duration_seconds": 60})
    doc = journal(load_estate(), AZ, dr.run_id)
    assert dr.state == "failed"
    assert "customers saw" in failures(doc) and "aborted" in failures(doc)
    assert doc["chaos"]["probe"]["fault"]["errors"] > 0
    assert time.monotonic() - t0 < 55, "the drill did not abort early"
    assert all(p.state in ("RUNNING", "STARTING") for p in ops.status().values())


def test_unknown_zone_is_refused_before_anything_stops(dagbag, estate, ops):
    before = pids(ops)
    dr = run_dag(dagbag, AZ, {"zone": "eu-west-1z", "duration_seconds": 3})
    doc = journal(estate, AZ, dr.run_id)
    assert dr.state == "failed"
    assert "unknown zone 'eu-west-1z'" in failures(doc) and "a, b, c" in failures(doc)
    assert step(doc, "act")["status"] in ("not run", "skipped", "upstream_failed")
    assert pids(ops) == before


def test_the_next_run_starts_what_a_killed_run_left_stopped(estate, ops):
    from drdrill.drills.chaos.common import repair

    ops.stop(["service-2"])
    assert ops.status()["service-2"].state == "STOPPED"
    assert repair(estate.service("web")) == ["service-2"]
    assert ops.status()["service-2"].state == "RUNNING"


def test_the_instance_case_kills_the_standby_and_it_streams_again(dagbag, estate, ops):
    from drdrill.drills.failover.node_ops import NodeOps

    c = estate.cluster("main")
    nodes = NodeOps(c)
    primary_pid, before = nodes.running_pid(c.primary), nodes.running_pid(c.node("pg2"))
    dr = run_dag(dagbag, KILL, {"service": "db-standby"})
    doc = journal(estate, KILL, dr.run_id)
    assert dr.state == "success", failures(doc)
    ch = doc["chaos"]
    assert ch["victims"] == ["pg2"] and ch["killed"][0]["pid"] == before
    assert nodes.running_pid(c.node("pg2")) not in (None, before)
    assert nodes.running_pid(c.primary) == primary_pid, "the primary was touched"
    assert ch["probe"]["during"]["errors"] == 0 and ch["probe"]["during"]["requests"] > 0
    # customers were probed across the kill and the restart too, not only once it was over
    assert ch["probe"]["kill"]["requests"] > 0 and ch["probe"]["kill"]["errors"] == 0
    assert ch["recover_seconds"] > 0


def test_without_haproxy_retries_the_drill_fails_with_the_error_count(dagbag, sandbox, estate, ops):
    """The front door's retries are what make a kill invisible: without them, the drill must say so."""
    sandbox.haproxy.reload(retries=False)
    try:
        dr = run_dag(dagbag, KILL, WEB)
    finally:
        sandbox.haproxy.reload(retries=True)
    doc = journal(estate, KILL, dr.run_id)
    assert dr.state == "failed"
    during = doc["chaos"]["probe"]["during"] or {}
    assert "customer-visible error(s)" in failures(doc) or "customers saw" in failures(doc)
    assert f"customers saw {during['errors']} error(s)" in failures(doc) or during["errors"] > 0


def _k8s_service(ns: str):
    def edit(s):
        for k in ("process", "az_failure", "cluster"):
            s.pop(k, None)
        s.update(name="web", allowed_drills=["dr_weekly_pod_kill"], heal_seconds=30,
                 kubernetes={"conn_id": "k8s_emulator", "namespace": ns, "selector": "app=web",
                             "namespaces_allowed": [ns], "min_pod_age_seconds": 60, "grace_period_seconds": 0})
    return edit


def test_kubernetes_pod_kill_heals_through_the_drill(dagbag, estate_with, k8s, k8s_namespace, sandbox):
    """The same DAG against a Kubernetes API (kmock's emulator; the test plays the ReplicaSet controller)."""
    from drdrill.core.estate import load_estate

    ns = k8s_namespace
    k8s.create_deployment(ns, "web", labels={"app": "web"}, replicas=3)
    k8s.create_deployment(ns, "db", labels={"app": "db"}, replicas=1)
    estate_with(_k8s_service(ns))
    before = {p["metadata"]["uid"] for p in k8s.pods(ns, "app=web")}
    dr = run_dag(dagbag, KILL, WEB)
    doc = journal(load_estate(), KILL, dr.run_id)
    assert dr.state == "success", failures(doc)
    c = doc["chaos"]
    [victim] = c["killed"]
    assert victim["name"].startswith("web-rs-") and victim["uid"] in before
    after = {p["metadata"]["uid"] for p in k8s.pods(ns, "app=web")}
    assert victim["uid"] not in after and len(after) == 3, "the victim was not replaced"
    assert [p["metadata"]["name"] for p in k8s.pods(ns, "app=db")] == ["db-rs-0"], "another workload was touched"
    assert c["recover_seconds"] > 0 and c["probe"]["during"]["requests"] > 0


def test_kubernetes_pdb_at_zero_skips_and_deletes_nothing(dagbag, estate_with, k8s, k8s_namespace, sandbox):
    from drdrill.core.estate import load_estate

    ns = k8s_namespace
    k8s.create_deployment(ns, "web", labels={"app": "web"}, replicas=3)
    k8s.create_pdb(ns, "web-pdb", match_labels={"app": "web"}, disruptions_allowed=0)
    estate_with(_k8s_service(ns))
    before = {p["metadata"]["uid"] for p in k8s.pods(ns, "app=web")}
    dr = run_dag(dagbag, KILL, WEB)
    doc = journal(load_estate(), KILL, dr.run_id)
    assert dr.state == "success", failures(doc)
    assert doc["status"] == "skipped" and "web-pdb" in doc["skipped_reason"]
    assert {p["metadata"]["uid"] for p in k8s.pods(ns, "app=web")} == before


def test_a_pod_kill_while_a_failover_drill_acts_on_the_cluster_skips_and_kills_nothing(dagbag, estate, ops, clean):
    from drdrill.core import targetlock
    from integration.lockhelpers import live_run, stored

    run_id = live_run("dr_quarterly_failover_drill")
    targetlock.acquire("cluster:main", holder=targetlock.Holder("dr_quarterly_failover_drill", run_id,
                                                                "failover.lock_targets", "failover drill"),
                       ttl_seconds=600)
    before = pids(ops)
    dr = run_dag(dagbag, KILL, WEB)
    doc = journal(estate, KILL, dr.run_id)
    assert doc["status"] == "skipped", failures(doc)
    assert "target_lock" in doc["skipped_reason"] and run_id in doc["skipped_reason"]
    assert pids(ops) == before
    assert stored("cluster:main")["run_id"] == run_id  # the failover's lease is untouched
    assert stored("service:web") is None  # all keys or none: the chaos run holds nothing


def test_a_chaos_run_holds_its_targets_while_it_acts_and_releases_them(dagbag, estate, ops, clean):
    from integration.lockhelpers import stored

    dr = run_dag(dagbag, AZ, {"zone": "c", "duration_seconds": 2})
    doc = journal(estate, AZ, dr.run_id)
    assert dr.state == "success", failures(doc)
    assert sorted(doc["chaos"]["lease"]["keys"]) == ["cluster:main", "service:web"]
    assert sorted(doc["chaos"]["teardown"]["released"]) == ["cluster:main", "service:web"]
    assert stored("cluster:main") is None and stored("service:web") is None


@pytest.mark.usefixtures("aws")
def test_az_failure_on_aws_runs_the_estate_fis_template_through_the_same_dag(dagbag, estate_with, ops):
    """Engine fis: the plan's template (zone chosen by the param) reaches FisExperimentOperator through
    native templating; moto over HTTP plays FIS, ECS and CloudWatch (tests/integration/test_fis.py)."""
    from drdrill.core.estate import load_estate
    from drdrill.hooks.fis import FisHook
    from integration.test_fis import ACCOUNT, REGION

    def fis(s):
        s["az_failure"] = {"engine": "fis", "percent": 33, "duration": "PT5M", "fis": {
            "conn_id": "aws_moto", "region": REGION, "template_name": "web-az-failure",
            "role_arn": f"arn:aws:iam::{ACCOUNT}:role/fis-drdrill", "ecs_cluster": "prod", "ecs_services": ["web"],
            "zones": [f"{REGION}a", f"{REGION}b"],
            "stop_alarm_arn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:web-5xx"}}

    estate_with(fis)
    before = pids(ops)
    dr = run_dag(dagbag, AZ, {"zone": f"{REGION}b"})
    doc = journal(load_estate(), AZ, dr.run_id)
    assert dr.state == "success", failures(doc)
    assert doc["chaos"]["zone"] == f"{REGION}b"
    fis_api = FisHook(aws_conn_id="aws_moto", region_name=REGION).conn
    [template] = fis_api.list_experiment_templates()["experimentTemplates"]
    assert template["tags"]["drdrill-zone"] == f"{REGION}b" and template["tags"]["Name"] == "web-az-failure"
    states = sorted(e["state"]["status"] for e in fis_api.list_experiments()["experiments"])
    assert states == ["completed", "completed"], states  # the preview, then the experiment
    assert doc["chaos"]["fis"]["state"] == "completed" and doc["chaos"]["fis"]["preview_id"]
    assert pids(ops) == before  # the sandbox's replicas are not the FIS engine's target
    bad = run_dag(dagbag, AZ, {"zone": "us-east-1a"})
    bad_doc = journal(load_estate(), AZ, bad.run_id)
    assert bad.state == "failed" and "us-east-1a" in failures(bad_doc)
    assert len(fis_api.list_experiments()["experiments"]) == 2  # nothing started for the unknown zone
