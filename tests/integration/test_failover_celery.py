"""The quarterly failover drill under CeleryExecutor, on two workers that share no local disk.

What docker-compose.yaml ships (CeleryExecutor, several workers) as real processes on this machine:
a Redis broker (Debian ``redis-server``) and a PostgreSQL of its own for Airflow's metadata, both
started here and stopped by PID; ``airflow db migrate``, an api-server (the Task Execution API),
a scheduler, a dag-processor, a triggerer and two ``airflow celery worker``s
(`drdrill.sandbox.airflow.AirflowProcesses`, which ``make bench`` uses too).

Each worker is a "machine" of its own: its own working directory and Airflow home (task logs),
and its own mount namespace with a private tmpfs over the estate's scratch root, so the same
path holds different files on each worker, as on two hosts. A test-only cluster policy
(``celery_settings/airflow_local_settings.py``) routes the drill's tasks to queue w1 or w2
alternately, and always runs the tasks that read the canary's writes (verify, stop, measure) on
the other worker than the one that started the writer. State that crosses tasks must therefore go
where every worker reads it (XCom, the estate's state store); a PID file or an acks file on the
starting worker's disk is not found, and the run fails.

The drill's outcome notification runs there too: the estate copy every component reads has a Slack
channel (a webhook endpoint on loopback, `notify_servers`), and a failed journal of the drill on the
same cluster is seeded before the run, so the run's pass is a recovery: the journal task's callback
tells it from the Celery worker that ran it.

Run alone: ``pytest -m celery``. Part of ``make test``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pytest
from tests.integration.helpers import failures, journal
from tests.integration.test_failover import assert_home, canary_processes
from tests.notify_servers import SLACK_TOKEN, _serve

from drdrill.core import canary
from drdrill.core.estate import load_estate
from drdrill.sandbox.airflow import AirflowProcesses, wait_for

pytestmark = [pytest.mark.sandbox, pytest.mark.celery]

DRILL = "dr_quarterly_failover_drill"
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORKERS = ("w1", "w2")
RUN_TIMEOUT = 480  # the drill takes about 1-2 min here; a hung run fails the test instead of blocking CI
SLACK_CONN = "drill_slack_celery"
SEEDED = "manual__celery_seeded_failure"  # the failed run the scheduled one recovers from


class CeleryAirflow(AirflowProcesses):
    """Airflow's components on the CeleryExecutor (`drdrill.sandbox.airflow`), and two workers that share no disk."""

    def __init__(self, tmp: Path, scratch_root: Path, slack_url: str) -> None:
        from drdrill.core.paths import estate_path

        # A copy of the estate every component reads (the schedule test below rewrites it), with a Slack channel.
        self.estate_file = tmp / "estate.yaml"
        self.estate_file.write_text(estate_path().read_text()
                                    + f"\nnotifications:\n  slack: {{conn_id: {SLACK_CONN}}}\n")
        super().__init__(tmp, dags=[ROOT / "dags" / f"{DRILL}.py"], executor="CeleryExecutor", env={
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            # The schedule test waits for the dag-processor to re-read the estate: every 10 s, not 30 (one DAG file).
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "airflow_local_settings.worker_hostname",
            # The RTO alert on, with a deadline (0.6 s after the fault) that no failover can meet: the
            # triggerer must fire it while the recovery is still running, and the journal record it.
            "DRDRILL_RTO_DEADLINE_MINUTES": "0.01",
            "PYTHONPATH": os.pathsep.join([str(HERE / "celery_settings"), os.environ.get("PYTHONPATH", "")]),
            "DRDRILL_ESTATE": str(self.estate_file),
            f"AIRFLOW_CONN_{SLACK_CONN.upper()}": json.dumps({"conn_type": "slackwebhook",
                                                              "host": f"{slack_url}/services",
                                                              "password": SLACK_TOKEN}),
        })
        self.scratch_root = scratch_root

    def start(self) -> CeleryAirflow:
        super().start(wait=False)
        for w in WORKERS:
            self.start_worker(w)
        self.wait_api()
        return self

    def start_worker(self, name: str) -> None:
        """A worker with its own working directory, Airflow home and scratch root (a tmpfs in its own mount
        namespace, at the estate's scratch path): nothing on its local disk is visible to the other."""
        home = self.tmp / name
        (home / "home").mkdir(parents=True)
        env = {**self.env, "AIRFLOW_HOME": str(home / "home"), "DRDRILL_TEST_WORKER": name}
        script = 'mount -t tmpfs -o mode=0755,size=64m "drdrill-$0" "$1" && shift && exec "$@"'
        self.spawn(name, ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, name,
                          str(self.scratch_root), self.airflow(), "celery", "worker", "--queues", name,
                          "--concurrency", "2", "--celery-hostname", f"{name}@%h", "--skip-serve-logs",
                          "--without-mingle", "--without-gossip"], env=env, cwd=home)

    def stop(self, first=WORKERS) -> None:
        # Workers first (a running task is ended with them), then the rest, then broker and database.
        super().stop(first)

    def task_log(self, task_id: str, run_id: str) -> str:
        """The task's log from whichever worker ran it (each keeps its own)."""
        out = []
        for w in WORKERS:
            for p in sorted((self.tmp / w / "home" / "logs").glob(f"dag_id={DRILL}/run_id={run_id}/"
                                                                   f"task_id={task_id}/attempt=*.log")):
                out.append(f"--- {w}: {p.name}\n{p.read_text()[-3000:]}")
        return "\n".join(out)


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def celery_airflow(sandbox):
    estate = load_estate()
    tmp = Path(tempfile.mkdtemp(prefix="drdrill-celery-"))
    tmp.chmod(0o755)  # the metadata PostgreSQL runs as postgres below it
    slack_server, af_slack = _serve(None)
    af = CeleryAirflow(tmp, Path(estate.scratch.root), af_slack.url)
    af.slack = af_slack
    try:
        af.start()
        yield af
    finally:
        af.stop()
        slack_server.shutdown()
        slack_server.server_close()
        for pid in canary_processes():  # never left writing into the sandbox, whatever happened
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            assert_home(load_estate())
        except Exception:  # noqa: BLE001 - a drill that failed half way: the next test file gets a rebuilt sandbox
            sandbox.down()
            sandbox.up()


@pytest.fixture
def seeded_failure(estate):
    """A failed run of the drill on main before the test's run, as the journal task writes it (so the test run's
    pass is a recovery to tell); removed after: it is no evidence the page and the reports should read."""
    from drdrill.core import journal as j

    path = j.write(estate.journal.location, estate.journal.conn_id, {
        "drill": DRILL, "run_id": SEEDED, "run_type": "manual", "params": {}, "cluster": "main",
        "written_at": datetime.now().astimezone().isoformat(), "status": "failed", "steps": [], "results": [],
        "failures": ["FAIL rto [main]: seeded by the Celery test: the failure its scheduled run recovers from"]})
    try:
        yield SEEDED
    finally:
        j.storage(path, estate.journal.conn_id).unlink()


# ------------------------------------------------------------------ the test
def test_a_scheduled_drill_starts_at_local_time_needs_no_approval_in_the_window_and_runs_on_two_workers(
        celery_airflow, estate, seeded_failure):
    """The estate's schedules section drives the real scheduler: the dag-processor re-reads it, the drill
    starts at that local time as a scheduled run, and inside the unattended window of a cluster that is
    not unattended it goes ahead without a human (a manual trigger of it would wait for one). The run is
    the quarter's region failover (the sandbox's cluster has a DR region), on two workers that share no disk.

    One drill for both points: each drill under Celery costs about a minute, and the wait for the scheduled
    minute another."""
    import pendulum

    af = celery_airflow
    af.wait_parsed(DRILL)
    af.request("PATCH", f"/api/v2/dags/{DRILL}", {"is_paused": False})
    unpaused_at = time.time()
    tz = "Europe/Berlin"
    # the next whole minute at least 45 s away: after the next parse (every 10 s here), whatever the load
    at = pendulum.now(tz).add(seconds=45).start_of("minute").add(minutes=1)
    text = af.estate_file.read_text()
    assert "unattended: true" in text
    text = text.replace("unattended: true", 'unattended: false\n    unattended_window: {days: [mon, tue, wed, thu, '
                                            'fri, sat, sun], start: "00:00", end: "23:59"}\n   ', 1)  # the cluster's
    text += (f"\nschedules:\n  timezone: {tz}\n"
             f'  dr_quarterly_failover_drill: {{day: every day, months: monthly, at: "{at:HH:mm}"}}\n')
    tmp = af.estate_file.with_suffix(".new")
    tmp.write_text(text)
    tmp.replace(af.estate_file)  # whole, never half a file for a parse
    summary = f"every day, every month, {at:HH:mm} {tz}"
    wait_for(lambda: (af.get(f"/api/v2/dags/{DRILL}") or {}).get("timetable_summary") == summary,
             f"the dag-processor to read the new schedule ({summary})", 150, af.procs, af.logs)

    def scheduled() -> list[dict]:
        runs = (af.get(f"/api/v2/dags/{DRILL}/dagRuns?limit=50") or {}).get("dag_runs", [])
        return [r for r in runs if r["run_type"] == "scheduled"]

    run = wait_for(lambda: scheduled() and scheduled()[0], f"the scheduled run at {at}",
                   (at - pendulum.now(tz)).total_seconds() + 120, af.procs, af.logs)
    assert pendulum.parse(run["run_after"]) == at.in_tz("UTC"), run
    run_id = run["dag_run_id"]
    runs = f"/api/v2/dags/{DRILL}/dagRuns/{run_id}"
    t0 = time.monotonic()
    state = af.wait_run(DRILL, run_id, RUN_TIMEOUT)
    seconds = time.monotonic() - t0
    tis = af.task_instances(DRILL, run_id)
    doc = journal(estate, DRILL, run_id)
    failed = [t for t, ti in tis.items() if ti["state"] == "failed"]
    assert state == "success", (f"run {run_id} {state} after {seconds:.0f}s; failed tasks {failed}\n"
                                f"{failures(doc)}\n" + "\n".join(af.task_log(t, run_id) for t in failed))
    reason = doc["approval"]["reason"]
    assert "scheduled run at" in reason and "inside the unattended window" in reason, reason
    assert tis["approval.approve"]["state"] == "skipped" and tis["approval.not_needed"]["state"] == "success"
    # the quarterly schedule runs the region failover
    assert doc["plan"]["scope"] == "region" and doc["measurements"]["region"]["rto_phases_seconds"]["restore"] > 0

    # The scheduler ran every task through the drill's pools (it schedules nothing whose pool is missing).
    pools = {t: ti["pool"] for t, ti in tis.items()}
    assert pools["failover.promote_and_switch"] == "dr_destructive", pools
    assert pools["preflight"] == pools["verify.checks"] == pools["dns_switch.insync"] == "dr_drills", pools

    # The lease on the cluster: taken on w1 in the 1-slot pool, released on w2 (it lives in the metadata DB).
    assert pools["failover.lock_targets"] == "dr_destructive", pools
    assert (tis["failover.lock_targets"]["hostname"], tis["release_targets"]["hostname"]) == ("w1", "w2")
    assert doc["targets"]["lock"]["lease"]["holder"]["run_id"] == run_id
    assert doc["targets"]["release"]["released"] == ["cluster:main"]
    assert not [v for v in af.get("/api/v2/variables")["variables"] if v["key"].startswith("drdrill_lock:")]

    # The split really happened: the writer started on one worker; stopped, waited for and measured on the other.
    where = {t: (tis[t]["queue"], tis[t]["hostname"]) for t in
             ("failover.start_canary", "verify.checks", "stop_canary", "measure")}
    assert where["failover.start_canary"] == ("w1", "w1"), where
    for t in ("verify.checks", "stop_canary", "measure"):
        assert where[t] == ("w2", "w2"), where
    ran = {t: ti["hostname"] for t, ti in tis.items() if ti["state"] == "success" and ti["hostname"]}
    assert set(ran.values()) == {"w1", "w2"} and len(ran) >= 20, ran  # (EmptyOperators run on no worker)

    # The critical path ran as one task (no scheduling hop between the fault and the DNS UPSERT), each
    # runbook step still in the journal with its own times, in order: here the DR node's restore from the DR
    # repo and its replay too.
    crit = [st for st in doc["steps"] if st.get("in_task") == "failover.promote_and_switch"]
    assert [(st["task_id"], st["status"]) for st in crit] == [
        ("failover.inject_fault", "success"), ("failover.restore", "success"), ("failover.replay", "success"),
        ("failover.promote", "success"), ("failover.wait_writable", "success"), ("dns_switch.switch", "success")], crit
    assert all(a["ended_at"] <= b["started_at"] for a, b in zip(crit, crit[1:], strict=False)), crit
    assert doc["failover"]["dns"]["waited_in"] == "sender"  # moto is INSYNC at once: seen by the sender
    assert {"failover", "dns_switch"} <= set(doc["phases"])

    # RTO and RPO measured from the canary's acknowledged writes, read on the other worker.
    m = doc["measurements"]
    assert doc["status"] == "passed" and 0 < m["rto_seconds"] <= m["rto_target_seconds"]
    assert m["canary"]["acked_before_fault"] >= 3 and m["canary"]["first_ack_after_fault"]
    assert m["rpo_seconds"] <= m["rpo_target_seconds"]
    assert {"rto", "rpo", "canary_no_holes", "canary_writes_resumed"} <= {
        r["name"] for r in doc["results"] if r["status"] == "pass"}
    # Stopped by the teardown on w2, confirmed by the writer on w1; no writer is left anywhere.
    stopped = af.get(f"{runs}/taskInstances/stop_canary/xcomEntries/return_value")["value"]
    assert stopped["stopped"] is True and stopped["confirmed"] is True, stopped
    assert canary_processes() == []
    assert not canary.run_dir(estate.state_store, run_id).exists(), "the run's canary state was not removed"
    assert_home(estate)

    # The RTO alert counted from the fault, fired in the triggerer before verify ended, went out
    # through the cluster's channel, and is in the journal (record, timeline event, message).
    alert = doc["rto_alert"]
    timing = {t: (tis[t]["queue"], tis[t]["queued_when"], tis[t]["start_date"], tis[t]["end_date"])
              for t in ("failover.promote_and_switch", "rto_watch", "verify.checks")}
    assert alert["status"] == "missed", (alert, timing)
    assert alert["since"] == pytest.approx(doc["failover"]["fault"]["fault_at"])
    assert alert["deadline_at"] == pytest.approx(alert["since"] + 0.6)
    assert alert["fired_at"] >= alert["deadline_at"]
    verified = datetime.fromisoformat(tis["verify.checks"]["end_date"]).timestamp()
    if alert.get("recovered_at") is None:  # fired by the triggerer while the recovery was still running
        assert alert["fired_at"] < verified and alert["states"]["verify.checks"] != "success", (alert, timing)
    else:  # the watch got a worker slot only after verify (busy workers): reported late, with when
        assert alert["deadline_at"] < alert["recovered_at"] <= verified, (alert, timing)
    print(f"\nRTO alert fired {alert['fired_at'] - alert['since']:.1f}s after the fault"
          f"{' (late)' if alert.get('recovered_at') else ', while the recovery was running'}")
    assert alert["alert"]["sent"] == [{"kind": "log", "sent": True}]
    assert any("RTO alert" in e[1] for e in doc["events"]), doc["events"]
    assert [c for c in doc["comms"] if c.get("phase") == "rto_missed"]
    assert tis["rto_watch"]["state"] == "success"

    # Unpausing the drill under a real scheduler started no failover of its own (the quarter's last
    # point is in the past: Airflow's cron timetable would have run it at once); nor did the new schedule's
    # last point, yesterday at the same time.
    runs_of_drill = af.get(f"/api/v2/dags/{DRILL}/dagRuns")["dag_runs"]
    late = [r for r in runs_of_drill if r["run_type"] == "scheduled"
            and datetime.fromisoformat(r["run_after"]).timestamp() < unpaused_at - 600]
    assert late == [] and [r["dag_run_id"] for r in runs_of_drill] == [run_id], runs_of_drill

    # The pass after the seeded failure was told as a recovery, by the journal task's callback on its worker.
    wait_for(lambda: af.slack.requests, "the recovery notification on the Slack endpoint", 60, af.procs, af.logs)
    [sent] = af.slack.requests
    text = sent["body"]["text"]
    assert f"RECOVERED: {DRILL} on main passed again" in text and f"Run: {run_id}" in text, text
    assert f"recovered from the failure of run {SEEDED}" in text, text
    assert sent["path"] == f"/services/{SLACK_TOKEN}"
    log = af.task_log("journal", run_id)
    assert f"recovery notification of {DRILL} sent through slack" in log, log
    assert SLACK_TOKEN not in log
    print(f"\ncelery drill: scheduled run {run_id} passed in {seconds:.0f}s; RTO {m['rto_seconds']}s")
