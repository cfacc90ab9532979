"""End to end: the failover runbook DAGs on the real sandbox (PostgreSQL, pgBackRest, Route53 in
moto, the demo service under supervisord), run with dag.test().

Every test leaves the sandbox as it found it: pg1 primary, pg2 streaming from it, the service
record on pg1. The drill is topology-aware, so a test that ends elsewhere puts it back.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from tests.integration.helpers import as_superuser, assert_no_secret_in, failures, journal, scratch_dirs
from tests.integration.helpers import run_dag as _run_dag

from drdrill.core import topology
from drdrill.core.estate import load_estate
from drdrill.core.polling import wait_until
from drdrill.hooks import postgres as pg

DRILL = "dr_quarterly_failover_drill"
INCIDENT = "dr_postgres_primary_failover"


# ------------------------------------------------------------------ helpers
def run_dag(dagbag, dag_id: str, conf: dict | None = None):
    """This module's drills fail over to the standby in the same region (scope node); the region scope, the
    default for the sandbox's cluster (it has a DR region), is tests/integration/test_region_failover.py's."""
    conf = dict(conf or {})
    if dag_id == DRILL:
        conf.setdefault("scope", "node")
    return _run_dag(dagbag, dag_id, conf)


def cluster():
    return load_estate().cluster("main")


def postmaster(name: str) -> int | None:
    from drdrill.sandbox import postmaster_pid

    return postmaster_pid(cluster().node(name).data_dir)


def in_recovery(name: str) -> bool:
    c = cluster()
    n = c.node(name)
    with pg.connect(c, n.host, n.port, "postgres") as conn:
        return pg.query_one(conn, "SELECT pg_is_in_recovery()")[0]


def streaming_standbys(primary: str) -> list[str]:
    c = cluster()
    n = c.node(primary)
    with pg.connect(c, n.host, n.port, "postgres") as conn:
        return [r[0] for r in pg.query(conn, "SELECT application_name FROM pg_stat_replication "
                                             "WHERE state = 'streaming'")]


def dns_points_at() -> str | None:
    from drdrill.drills.failover import dns_state

    return dns_state(cluster())["points_at"]


def canary_processes() -> list[int]:
    """Canary writers of this sandbox (by their scratch directory in the command line)."""
    root = str(load_estate().scratch.root).encode()
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes()
                if b"drdrill.core.canary" in cmd and root in cmd:
                    out.append(int(proc.name))
            except OSError:
                continue
    return out


def assert_home(estate) -> None:
    """pg1 primary, pg2 streaming from it, the record on pg1, topology says pg1; nothing left over."""
    assert cluster().primary.name == "pg1"
    assert not in_recovery("pg1") and in_recovery("pg2")
    assert wait_until(lambda: "pg2" in streaming_standbys("pg1"), timeout=30, what="pg2 streaming")
    assert dns_points_at() == "pg1"
    assert canary_processes() == []
    assert scratch_dirs(estate) == []


def estate_with(tmp_path, monkeypatch, *edits: tuple[str, str]) -> None:
    from drdrill.core.paths import DEFAULT_ESTATE

    text = DEFAULT_ESTATE.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)  # the first: the cluster's (e.g. unattended; the services follow it)
    f = tmp_path / "estate.yaml"
    f.write_text(text)
    monkeypatch.setenv("DRDRILL_ESTATE", str(f))


def failed_names(doc) -> set[str]:
    return {r["name"] for r in doc["results"] if r["status"] == "fail"}


@pytest.fixture(scope="module", autouse=True)
def home_topology_after(sandbox):
    """Whatever happens in this module, the next test file gets pg1 primary and pg2 streaming."""
    yield
    try:
        assert_home(load_estate())
    except Exception:  # noqa: BLE001 - a broken estate is rebuilt rather than left to the next file
        sandbox.down()
        sandbox.up()


@pytest.fixture
def at_home(sandbox, estate):
    """Each test starts from home; after a failed test the sandbox is rebuilt, so one failure
    does not cascade into every later test."""
    try:
        assert_home(estate)
    except Exception:  # noqa: BLE001
        sandbox.down()
        sandbox.up()
        assert_home(estate)
    return estate


# ------------------------------------------------------------------ refusals
def test_bad_params_are_refused_before_anything_is_touched(dagbag, at_home):
    pid = postmaster("pg1")
    dr = run_dag(dagbag, DRILL, {"cluster": "nope"})
    doc = journal(at_home, DRILL, dr.run_id)
    assert dr.state == "failed" and "unknown cluster 'nope'" in failures(doc)
    # The other refusals at the preflight itself (the run above shows how a refusal is journalled).
    from drdrill.core.errors import DrillError
    from drdrill.drills import failover

    for params, phrase in [({"standby": "pg1"}, "pg1 is the current primary"), ({"standby": "pg9"},
                                                                                "has no node 'pg9'")]:
        with pytest.raises(DrillError, match=phrase):
            failover.preflight({"cluster": "main", "scope": "node", "fault": "kill", **params}, "manual__refused",
                               failover.DRILL)
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError):
        run_dag(dagbag, DRILL, {"fault": "explode"})
    # Nothing was touched: same postmaster, still primary, no canary, no scratch.
    assert postmaster("pg1") == pid
    assert_home(at_home)
    assert set(doc["not_run"]) >= {"failover.inject_fault", "failover.promote", "dns_switch.switch"}


def test_a_cluster_that_does_not_allow_the_drill_is_refused(dagbag, at_home, tmp_path, monkeypatch):
    estate_with(tmp_path, monkeypatch, ("      - dr_quarterly_failover_drill\n", ""))
    pid = postmaster("pg1")
    dr = run_dag(dagbag, DRILL)
    doc = journal(at_home, DRILL, dr.run_id)
    assert dr.state == "failed"
    assert "does not allow dr_quarterly_failover_drill" in failures(doc)
    assert postmaster("pg1") == pid


def test_a_failover_is_refused_while_another_failover_runs(dagbag, at_home):
    """Drill and incident DAGs are separate (each max_active_runs=1): they must not overlap."""
    from airflow._shared.timezones import timezone
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunType

    pid = postmaster("pg1")
    with create_session() as s:
        s.add(DagRun(dag_id=INCIDENT, run_id="manual__someone-else", run_type=DagRunType.MANUAL,
                     state="running", run_after=timezone.utcnow(), conf={}))
    try:
        dr = run_dag(dagbag, DRILL)
    finally:
        with create_session() as s:
            s.query(DagRun).filter(DagRun.run_id == "manual__someone-else").delete()
    doc = journal(at_home, DRILL, dr.run_id)
    assert dr.state == "failed"
    assert "another failover is running (dr_postgres_primary_failover: 1 active run(s))" in failures(doc)
    assert postmaster("pg1") == pid
    assert_home(at_home)


# ------------------------------------------------------------------ the drill
def test_drill_fails_over_measures_and_fails_back_twice_in_a_row(dagbag, at_home, sandbox, capfd, caplog):
    for _ in range(2):
        killed = postmaster("pg1")
        dr = run_dag(dagbag, DRILL, {"fault": "kill"})
        doc = journal(at_home, DRILL, dr.run_id)
        assert dr.state == "success", failures(doc)
        # Password authentication all along (pg2 over TLS), pg_rewind included: no password or connection
        # URI with one in any log line or in the journal; pg_rewind's argv names the role, never a password.
        out, err = capfd.readouterr()
        assert_no_secret_in(sandbox, out, err, caplog.text, json.dumps(doc))
        rewinds = [r.getMessage() for r in caplog.records if "pg_rewind" in r.getMessage() and "run:" in
                   r.getMessage()]
        assert rewinds and all("user=drdrill" in m and "password" not in m for m in rewinds), rewinds
        caplog.clear()
        assert doc["status"] == "passed"
        m = doc["measurements"]
        # RTO: fault injected -> first acknowledged write through the service, against the target.
        assert 0 < m["rto_seconds"] <= m["rto_target_seconds"]
        assert m["canary"]["acked_before_fault"] >= 3 and m["canary"]["first_ack_after_fault"]
        assert m["canary"]["failed_attempts"] >= 1, "the canary never saw the outage: the fault did nothing"
        assert m["rpo_seconds"] <= m["rpo_target_seconds"] and m["lag_bytes_before_fault"] is not None
        assert {"rto", "rpo", "canary_no_holes", "write_test", "not_in_recovery", "archive_round_trip",
                "endpoint_points_at_new_primary"} <= {r["name"] for r in doc["results"]}
        # The runbook's phases, each measured; the failback really happened.
        assert {"assess", "approval", "failover", "dns_switch", "verify", "stabilize", "failback"} <= set(
            doc["phases"])
        assert doc["failover"]["fault"]["action"] == "kill -9"
        # The lease on the cluster from before the canary to the end, then released; the kill switch was off
        # right before the fault (enforced) and recorded before the promotion.
        assert doc["targets"]["lock"]["lease"]["holder"]["run_id"] == dr.run_id
        assert doc["targets"]["release"]["released"] == ["cluster:main"]
        fault_step = next(s for s in doc["steps"] if s["task_id"] == "failover.inject_fault")
        assert fault_step["guard"]["kill_switch"]["engaged"] is False
        assert fault_step["guard"]["lease"] == {"cluster:main": "held"}
        assert next(s for s in doc["steps"] if s["task_id"] == "failover.promote")["kill_switch"]["engaged"] is False
        assert doc["failover"]["dns"]["to"] == "pg2.sandbox.drdrill.internal"
        assert postmaster("pg1") != killed, "pg1 was not restarted: it was never killed"
        # Evidence: messages from the seed's template at each phase, the timeline beside the journal.
        phases_sent = [c["phase"] for c in doc["comms"]]
        assert phases_sent[0] == "assess" and phases_sent[-1] == "resolved"
        assert {"failover", "verify", "stabilize", "failback"} <= set(phases_sent)
        assert all("ETA to resolution" in c["message"] for c in doc["comms"])
        tl = Path(doc["attachments"]["timeline.md"].removeprefix("file://")).read_text()
        assert "**RTO**" in tl and "fault injected: kill -9" in tl and "`failover.promote` success" in tl
        # Back to the start: pg1 primary, pg2 streaming, record on pg1, nothing left behind.
        assert_home(at_home)
        hist = topology.read(at_home.state_store)["main"]["history"]
        assert [h["to"] for h in hist[-2:]] == ["pg2", "pg1"] and hist[-1]["run_id"] == dr.run_id


def test_drill_aborts_before_touching_the_primary_when_the_standby_is_down(dagbag, at_home, sandbox):
    c = cluster()
    pid = postmaster("pg1")
    sandbox.pg.run([str(c.postgres.bin_dir / "pg_ctl"), "-D", str(c.node("pg2").data_dir), "-m", "fast", "-w",
                    "stop"], timeout=60)
    try:
        dr = run_dag(dagbag, DRILL)
    finally:
        sandbox._start_pg(c.node("pg2"))
    doc = journal(at_home, DRILL, dr.run_id)
    assert dr.state == "failed"
    assert "standby_ready" in failed_names(doc) and "the primary was not touched" in failures(doc)
    assert postmaster("pg1") == pid and not in_recovery("pg1")
    assert doc["status"] == "failed" and "failover.inject_fault" in doc["not_run"]
    assert doc["comms"][-1]["phase"] == "failed"
    assert_home(at_home)


def test_drill_aborts_when_standby_lag_is_over_the_limit(dagbag, at_home, sandbox, tmp_path, monkeypatch):
    estate_with(tmp_path, monkeypatch, ("max_replication_lag_bytes: 16777216", "max_replication_lag_bytes: 65536"))
    c = cluster()
    pid = postmaster("pg1")
    # The DBA's side of the setup, as the superuser (the drills' role may not pause replay or create tables)
    as_superuser(sandbox, c.node("pg2"), "SELECT pg_wal_replay_pause()")
    try:
        as_superuser(sandbox, c.node("pg1"), "CREATE TABLE app.lag_probe AS SELECT g, repeat('x', 200) AS pad "
                                             "FROM generate_series(1, 8000) g")
        dr = run_dag(dagbag, DRILL)
    finally:
        as_superuser(sandbox, c.node("pg2"), "SELECT pg_wal_replay_resume()")
        as_superuser(sandbox, c.node("pg1"), "DROP TABLE IF EXISTS app.lag_probe")
    doc = journal(at_home, DRILL, dr.run_id)
    assert dr.state == "failed"
    assert "standby_lag_bytes" in failed_names(doc) and "exceeds the target of 65536" in failures(doc)
    assert postmaster("pg1") == pid
    monkeypatch.delenv("DRDRILL_ESTATE")
    assert_home(at_home)


def test_verify_failure_rolls_back_to_the_original_primary(dagbag, at_home, sandbox):
    """The standby is misconfigured read-only: promoted, it refuses writes; the run rolls back."""
    c = cluster()
    auto = c.node("pg2").data_dir / "postgresql.auto.conf"
    original = auto.read_text()
    sandbox._write_as_postgres(auto, original + "default_transaction_read_only = on\n", 0o600)
    as_superuser(sandbox, c.node("pg2"), "SELECT pg_reload_conf()")
    try:
        dr = run_dag(dagbag, DRILL, {"fault": "stop"})
    finally:
        text = auto.read_text().replace("default_transaction_read_only = on\n", "")
        sandbox._write_as_postgres(auto, text, 0o600)
        as_superuser(sandbox, c.node("pg2"), "SELECT pg_reload_conf()")
    doc = journal(at_home, DRILL, dr.run_id)
    assert dr.state == "failed"
    assert "write_test" in failed_names(doc) and "read-only transaction" in failures(doc)
    rb = doc["rollback"]
    assert rb["rolled_back"] is True, rb
    assert rb["dns"]["to"] == "pg1.sandbox.drdrill.internal"
    assert any(a.startswith("restarted pg1") for a in rb["actions"])
    assert "stabilize.new_standby" in doc["not_run"] and "failback.switchover" in doc["not_run"]
    assert "rollback" in [m["phase"] for m in doc["comms"]]
    assert_home(at_home)
    hist = topology.read(at_home.state_store)["main"]["history"]
    assert [h["reason"] for h in hist[-2:]] == ["failover", "rollback"]
    # The next failover still archives: the abandoned promotion's .partial WAL file must not
    # collide with the next promotion's (the rollback switches WAL segments for that).
    dr = run_dag(dagbag, DRILL, {"fault": "stop"})
    doc = journal(at_home, DRILL, dr.run_id)
    assert dr.state == "success", failures(doc)
    assert {r["name"] for r in doc["results"] if r["status"] == "pass"} >= {"archive_round_trip"}
    assert_home(at_home)


def test_dry_run_walks_the_graph_without_acting(dagbag, at_home):
    pid = postmaster("pg1")
    dr = run_dag(dagbag, DRILL, {"dry_run": True})
    doc = journal(at_home, DRILL, dr.run_id)
    assert dr.state == "success", failures(doc)
    assert doc["failover"]["fault"]["dry_run"] is True
    assert postmaster("pg1") == pid
    assert_home(at_home)


class Responder:
    """A DBA answering the approval from outside the run, through Airflow's own HITL API route.

    dag.test() parks a Human-in-the-loop task in AWAITING_INPUT until a response is recorded
    (it runs no triggerer, so the response timeout is not enforced there). This thread records
    one with the core API's ``update_hitl_detail``, the code behind the UI's Required Actions.
    """

    def __init__(self, choice: str) -> None:
        import threading

        self.choice = choice
        self.answered: dict | None = None
        self.body: str | None = None
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._answer()
        except Exception as e:  # noqa: BLE001 - never leave dag.test() waiting forever
            self.error = e
            from airflow.models.taskinstance import TaskInstance
            from airflow.utils.session import create_session

            with create_session() as s:
                for ti in s.query(TaskInstance).filter(TaskInstance.task_id == "approval.approve",
                                                       TaskInstance.state == "awaiting_input"):
                    ti.state = "failed"

    def _answer(self) -> None:
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
        from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
        from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
        from airflow.models.hitl import HITLDetail
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with create_session() as s:
                ti = s.query(TaskInstance).filter(TaskInstance.dag_id == DRILL, TaskInstance.task_id ==
                                                  "approval.approve",
                                                  TaskInstance.state == TaskInstanceState.AWAITING_INPUT).first()
                if ti is not None:
                    self.body = s.query(HITLDetail).filter(HITLDetail.ti_id == ti.id).one().body
                    resp = update_hitl_detail(DRILL, ti.run_id, "approval.approve",
                                              UpdateHITLDetailPayload(chosen_options=[self.choice]),
                                              user=SimpleAuthManagerUser(username="dba-lead", role="admin"),
                                              session=s)
                    self.answered = resp.model_dump(mode="json")
                    return
            time.sleep(0.3)


# Every day, all day (to the minute): a triggered run is inside the window's hours and still asks a human.
ALL_DAY_WINDOW = ("unattended: true", 'unattended: false\n    unattended_window: {days: [mon, tue, wed, thu, fri, '
                                      'sat, sun], start: "00:00", end: "23:59"}\n   ')


def test_approval_gate_a_human_rejects_and_nothing_is_touched(dagbag, at_home, tmp_path, monkeypatch):
    estate_with(tmp_path, monkeypatch, ALL_DAY_WINDOW)
    pid = postmaster("pg1")
    dba = Responder("Reject")
    dr = run_dag(dagbag, DRILL)
    doc = journal(at_home, DRILL, dr.run_id)
    assert dba.error is None, dba.error
    assert dba.answered and dba.answered["chosen_options"] == ["Reject"]
    # The approver saw the Assess figures.
    assert "Standby pg2: in recovery=True" in dba.body and "lag" in dba.body
    assert dr.state == "failed"
    assert "approval.approve" in failures(doc) and "Reject by dba-lead" in failures(doc)
    assert "failover.inject_fault" in doc["not_run"]
    assert postmaster("pg1") == pid
    # The unattended window is for scheduled runs: a trigger by hand always asks, and the journal says why.
    assert "a triggered run (the unattended window" in doc["approval"]["reason"]
    monkeypatch.delenv("DRDRILL_ESTATE")
    assert_home(at_home)


WINDOW = ("unattended: true", 'unattended: false\n    unattended_window: {days: [tue, wed, thu], start: "10:00", '
                              'end: "16:00"}\n   ')


def test_a_scheduled_drill_needs_no_approval_inside_the_unattended_window_and_does_outside(
        at_home, tmp_path, monkeypatch):
    import pendulum

    from drdrill.drills import failover

    estate_with(tmp_path, monkeypatch, WINDOW, ("version: 1\n", "version: 1\nschedules: {timezone: Europe/Berlin}\n"))
    params = {"cluster": "main", "fault": "kill", "failback": True, "scope": "node"}

    def decide(local: str, scheduled: bool = True) -> tuple[bool, str]:
        now = pendulum.parse(local, tz="Europe/Berlin").timestamp()
        p = failover.preflight(params, "scheduled__probe", DRILL, scheduled=scheduled, now=now)
        return p["approval_required"], p["approval_reason"]

    assert decide("2027-01-05T10:00") == (False, "scheduled run at Tue 2027-01-05 10:00, inside the unattended "
                                                 "window tue, wed, thu 10:00-16:00 Europe/Berlin: no approval")
    assert decide("2027-01-07T15:59")[0] is False
    for outside in ("2027-01-05T09:59", "2027-01-05T16:00", "2027-01-04T12:00", "2027-01-09T12:00"):
        needed, why = decide(outside)
        assert needed and "outside the unattended window" in why, (outside, why)
    needed, why = decide("2027-01-05T10:30", scheduled=False)
    assert needed and "triggered run" in why
    monkeypatch.delenv("DRDRILL_ESTATE")
    assert_home(at_home)


def test_approval_gate_a_human_approves_and_the_drill_runs(dagbag, at_home, tmp_path, monkeypatch):
    estate_with(tmp_path, monkeypatch, ("unattended: true", "unattended: false"))
    dba = Responder("Approve")
    dr = run_dag(dagbag, DRILL, {"fault": "stop"})
    doc = journal(at_home, DRILL, dr.run_id)
    assert dba.error is None, dba.error
    assert dr.state == "success", failures(doc)
    assert dba.answered and dba.answered["chosen_options"] == ["Approve"]
    assert doc["approval"]["chosen_options"] == ["Approve"]
    assert doc["approval"]["responded_by_user"]["name"] == "dba-lead"
    monkeypatch.delenv("DRDRILL_ESTATE")
    assert_home(at_home)


# ------------------------------------------------------------------ the incident DAG
FAST_TRIGGER = [("health_check_failed_minutes: 2", "health_check_failed_minutes: 0.05"),
                ("health_check_interval_seconds: 5", "health_check_interval_seconds: 0.5")]


def test_incident_dag_waits_and_gives_up_while_the_primary_is_healthy(dagbag, at_home, tmp_path, monkeypatch):
    estate_with(tmp_path, monkeypatch, *FAST_TRIGGER)
    pid = postmaster("pg1")
    dr = run_dag(dagbag, INCIDENT, {"max_wait_minutes": 0.1})
    doc = journal(at_home, INCIDENT, dr.run_id)
    assert dr.state == "failed"
    assert "trigger criteria are not met" in failures(doc)
    assert {"failover.promote", "assess.probe"} <= set(doc["not_run"])
    assert postmaster("pg1") == pid
    monkeypatch.delenv("DRDRILL_ESTATE")
    assert_home(at_home)


def test_incident_dag_fails_over_when_the_primary_is_really_down_and_a_drill_brings_it_home(
        dagbag, at_home, sandbox, tmp_path, monkeypatch, passed_restore_test):
    estate_with(tmp_path, monkeypatch, *FAST_TRIGGER)
    c = cluster()
    sandbox.pg.run([str(c.postgres.bin_dir / "pg_ctl"), "-D", str(c.node("pg1").data_dir), "-m", "immediate",
                    "-w", "stop"], timeout=60)
    outage = time.time()
    # Drills are frozen (the kill switch): a real incident's recovery goes on regardless, and holds the
    # cluster's lease so no drill starts on it meanwhile.
    from airflow.models.variable import Variable

    Variable.set("drdrill_kill_switch", "drills frozen during the outage")
    assert Variable.get("drdrill_kill_switch") == "drills frozen during the outage"
    try:
        dr = run_dag(dagbag, INCIDENT)
    finally:
        Variable.delete("drdrill_kill_switch")
    doc = journal(at_home, INCIDENT, dr.run_id)
    assert dr.state == "success", failures(doc)
    lock = doc["targets"]["lock"]
    assert lock["kill_switch"]["applies"] is False and lock["lease"]["holder"]["dag_id"] == INCIDENT
    assert doc["targets"]["release"]["released"] == ["cluster:main"]
    det = doc["steps"][[s["task_id"] for s in doc["steps"]].index("detect.primary_down")]
    assert det["status"] == "success" and det["seconds"] >= 3 * 0.9
    m = doc["measurements"]
    assert m["rto_start"] == "run start" and 0 < m["rto_seconds"] <= m["rto_target_seconds"]
    assert not in_recovery("pg2") and dns_points_at() == "pg2"
    assert cluster().primary.name == "pg2", "the topology state must name the new primary"
    # Stabilize: the old primary came back as a standby of the new one.
    assert in_recovery("pg1") and "pg1" in streaming_standbys("pg2")
    assert "failback" not in doc["phases"] and doc["comms"][-1]["phase"] == "resolved"
    assert outage < doc["failover"]["promote"]["promoted_at"]
    assert canary_processes() == [] and scratch_dirs(at_home) == []
    # The daily verification now checks the real primary (pg2) and passes.
    monkeypatch.delenv("DRDRILL_ESTATE")
    daily = run_dag(dagbag, "dr_daily_verification")
    assert daily.state == "success", failures(journal(at_home, "dr_daily_verification", daily.run_id))
    # A drill without failback, from this topology, takes the primary role back to pg1.
    dr = run_dag(dagbag, DRILL, {"failback": False, "fault": "stop"})
    doc = journal(at_home, DRILL, dr.run_id)
    assert dr.state == "success", failures(doc)
    assert doc["plan"]["primary"] == "pg2" and doc["plan"]["standby"] == "pg1"
    assert "failback.switchover" in [s["task_id"] for s in doc["steps"] if s.get("status") != "success"] or \
        "failback.switchover" in doc["not_run"]
    assert_home(at_home)
    assert json.loads(json.dumps(topology.read(at_home.state_store)))["main"]["primary"] == "pg1"
