"""The quarterly failover drill under CeleryExecutor, on two workers that share no local disk.

What docker-compose.yaml ships (CeleryExecutor, several workers) as real processes on this machine:
a Redis broker (Debian ``redis-server``) and a PostgreSQL of its own for Airflow's metadata, both
started here and stopped by PID; ``airflow db migrate``, an api-server (the Task Execution API),
a scheduler, a dag-processor, a triggerer and two ``airflow celery worker``s.

Each worker is a "machine" of its own: its own working directory and Airflow home (task logs),
and its own mount namespace with a private tmpfs over the estate's scratch root, so the same
path holds different files on each worker, as on two hosts. A test-only cluster policy
(``celery_settings/airflow_local_settings.py``) routes the drill's tasks to queue w1 or w2
alternately, and always runs the tasks that read the canary's writes (verify, stop, measure) on
the other worker than the one that started the writer. State that crosses tasks must therefore go
where every worker reads it (XCom, the estate's state store); a PID file or an acks file on the
starting worker's disk is not found, and the run fails.

Run alone: ``pytest -m celery``. Part of ``make test``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
from tests.integration.helpers import failures, journal
from tests.integration.test_failover import assert_home, canary_processes

from drdrill.core import canary
from drdrill.core.estate import load_estate
from drdrill.core.runner import LocalRunner

pytestmark = [pytest.mark.sandbox, pytest.mark.celery]

DRILL = "dr_quarterly_failover_drill"
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
WORKERS = ("w1", "w2")
RUN_TIMEOUT = 480  # the drill takes about 1-2 min here; a hung run fails the test instead of blocking CI


# ------------------------------------------------------------------ processes, by PID
def _free_port(start: int) -> int:
    """A free loopback port below Linux's ephemeral range (a client socket cannot take it meanwhile)."""
    for port in range(start, start + 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}-{start + 199}")


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return False


def _stop_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the process group we started (setsid: its group id is its PID), then SIGKILL it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:  # what the leader left behind in its group (task runners, pool processes)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if proc.poll() is None:
        proc.wait(timeout=10)


def _wait(cond, what: str, timeout: float, procs: dict[str, subprocess.Popen] | None = None,
          logs: Path | None = None):
    """Poll until ``cond()`` is truthy; fail early, with its log, when a process we started died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = cond()
        if out:
            return out
        for name, p in (procs or {}).items():
            if p.poll() is not None:
                tail = (logs / f"{name}.log").read_text()[-4000:] if logs else ""
                raise AssertionError(f"{name} exited with {p.returncode} while waiting for {what}:\n{tail}")
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class Redis:
    def __init__(self, d: Path) -> None:
        self.dir = d
        d.mkdir()
        self.port = _free_port(28100)
        self.pidfile = d / "redis.pid"
        self.pid: int | None = None

    def start(self) -> None:
        subprocess.run(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--daemonize", "yes",
                        "--pidfile", str(self.pidfile), "--dir", str(self.dir), "--logfile",
                        str(self.dir / "redis.log"), "--save", "", "--appendonly", "no"], check=True, timeout=30)
        self.pid = _wait(lambda: self.pidfile.exists() and int(self.pidfile.read_text()), "redis-server's PID file",
                         15)
        _wait(self.ping, "redis-server to answer PING", 15)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.pid and _alive(self.pid):
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while _alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(self.pid):
                os.kill(self.pid, signal.SIGKILL)


class MetadataPostgres:
    """A PostgreSQL 15 of its own for Airflow's metadata (not a drill target), run as postgres."""

    def __init__(self, d: Path) -> None:
        self.dir = d
        self.data = d / "data"
        self.port = _free_port(28200)
        self.runner = LocalRunner("postgres")

    def start(self) -> None:
        self.dir.mkdir()
        (self.dir / "run").mkdir()
        for p in (self.dir, self.dir / "run"):
            shutil.chown(p, "postgres", "postgres")
        self.runner.run([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                         "--no-instructions", "-E", "UTF8", "--locale=C"], timeout=120)
        # A throw-away metadata DB: durability buys nothing here and costs a busy 2-core machine.
        opts = (f"-p {self.port} -k {self.dir / 'run'} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self.runner.run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "postgres.log"), "-w",
                         "-t", "60", "-o", opts, "start"], timeout=90)
        self.runner.run([str(PG_BIN / "psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                         "-d", "postgres", "-c", "CREATE DATABASE airflow"], timeout=60)

    def url(self, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/airflow"

    def stop(self) -> None:
        from drdrill.core import pgctl

        if self.data.exists():
            pgctl.stop(self.runner, PG_BIN, self.data, mode="fast", timeout=60, name="Airflow metadata DB")


class CeleryAirflow:
    """Airflow's components on the CeleryExecutor, each started in its own session and stopped by PID."""

    def __init__(self, tmp: Path, scratch_root: Path) -> None:
        self.tmp = tmp
        self.logs = tmp / "logs"
        self.logs.mkdir()
        self.scratch_root = scratch_root
        self.redis = Redis(tmp / "redis")
        self.pg = MetadataPostgres(tmp / "pg")
        self.api_port = _free_port(28300)
        self.trigger_log_port = _free_port(self.api_port + 1)  # not the default 8794 a local Airflow may hold
        self.procs: dict[str, subprocess.Popen] = {}
        from drdrill.core.paths import estate_path

        self.estate_file = tmp / "estate.yaml"
        self.estate_file.write_text(estate_path().read_text())
        dags = tmp / "dags"  # only the drill: a 2-core machine parses nothing it does not run
        dags.mkdir()
        (dags / f"{DRILL}.py").symlink_to(ROOT / "dags" / f"{DRILL}.py")
        plugins = tmp / "plugins"  # only what the scheduler needs to read the drill back (its timetable)
        plugins.mkdir()
        (plugins / "drdrill_timetables.py").symlink_to(ROOT / "plugins" / "drdrill_timetables.py")
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(tmp / "home"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.pg.url(),
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.redis.port}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": self.pg.url("db+postgresql+psycopg"),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.trigger_log_port),
            "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "airflow_local_settings.worker_hostname",
            # The RTO alert on, with a deadline (0.6 s after the fault) that no failover can meet: the
            # triggerer must fire it while the recovery is still running, and the journal record it.
            "DRDRILL_RTO_DEADLINE_MINUTES": "0.01",
            "PYTHONPATH": os.pathsep.join([str(HERE / "celery_settings"), os.environ.get("PYTHONPATH", "")]),
            # A copy of the estate every component reads (the schedule test below rewrites it).
            "DRDRILL_ESTATE": str(self.estate_file),
        }
        (tmp / "home").mkdir()

    def airflow(self) -> str:
        return str(Path(sys.executable).parent / "airflow")

    def spawn(self, name: str, argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        with (self.logs / f"{name}.log").open("wb") as out:
            self.procs[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                                start_new_session=True, env=env or self.env, cwd=cwd or self.tmp)

    def start(self) -> None:
        self.redis.start()
        self.pg.start()
        res = subprocess.run([self.airflow(), "db", "migrate"], env=self.env, capture_output=True, text=True,
                             timeout=600, cwd=self.tmp)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        # The drill's pools, as docker-compose's airflow-init and `make airflow` create them: a real
        # scheduler never schedules a task whose pool does not exist.
        for pool, slots in (("dr_drills", "4"), ("dr_destructive", "1")):
            res = subprocess.run([self.airflow(), "pools", "set", pool, slots, "drdrill"], env=self.env,
                                 capture_output=True, text=True, timeout=120, cwd=self.tmp)
            assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        self.spawn("api-server", [self.airflow(), "api-server", "--host", "127.0.0.1", "--port", str(self.api_port),
                                  "--workers", "1"])
        for component in ("scheduler", "dag-processor", "triggerer"):
            self.spawn(component, [self.airflow(), component])
        for w in WORKERS:
            self.start_worker(w)
        _wait(lambda: self.get("/api/v2/monitor/health") is not None, "the api-server", 180, self.procs, self.logs)

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

    def stop(self) -> None:
        # Workers first (a running task is ended with them), then the rest, then broker and database.
        for name in [*WORKERS, "scheduler", "triggerer", "dag-processor", "api-server"]:
            if name in self.procs:
                _stop_group(self.procs[name])
        self.redis.stop()
        self.pg.stop()

    # ---------------------------------------------------------------- REST (all users are admins here)
    def request(self, method: str, path: str, body: dict | None = None) -> dict | None:
        req = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise AssertionError(f"{method} {path}: HTTP {e.code} {e.read()[:500]!r}") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def get(self, path: str) -> dict | None:
        return self.request("GET", path)

    def task_log(self, task_id: str, run_id: str) -> str:
        """The task's log from whichever worker ran it (each keeps its own)."""
        out = []
        for w in WORKERS:
            for p in sorted((self.tmp / w / "home" / "logs").glob(f"dag_id={DRILL}/run_id={run_id}/"
                                                                   f"task_id={task_id}/attempt=*.log")):
                out.append(f"--- {w}: {p.name}\n{p.read_text()[-3000:]}")
        return "\n".join(out)


def _fernet_key() -> str:
    """What ``Fernet.generate_key()`` returns: 32 random bytes, URL-safe base64."""
    import base64

    return base64.urlsafe_b64encode(os.urandom(32)).decode()


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def celery_airflow(sandbox):
    estate = load_estate()
    tmp = Path(tempfile.mkdtemp(prefix="drdrill-celery-"))
    tmp.chmod(0o755)  # the metadata PostgreSQL runs as postgres below it
    af = CeleryAirflow(tmp, Path(estate.scratch.root))
    try:
        af.start()
        yield af
    finally:
        af.stop()
        for pid in canary_processes():  # never left writing into the sandbox, whatever happened
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            assert_home(load_estate())
        except Exception:  # noqa: BLE001 - a drill that failed half way: the next test file gets a rebuilt sandbox
            sandbox.down()
            sandbox.up()


# ------------------------------------------------------------------ the test
def test_failover_drill_on_two_celery_workers_that_share_no_disk(celery_airflow, estate):
    af = celery_airflow
    t0 = time.monotonic()
    _wait(lambda: af.get(f"/api/v2/dags/{DRILL}"), "the dag-processor to parse the drill", 180, af.procs, af.logs)
    unpaused_at = time.time()
    af.request("PATCH", f"/api/v2/dags/{DRILL}", {"is_paused": False})
    run = af.request("POST", f"/api/v2/dags/{DRILL}/dagRuns", {"logical_date": None, "conf": {"fault": "kill"}})
    run_id = run["dag_run_id"]
    runs = f"/api/v2/dags/{DRILL}/dagRuns/{run_id}"
    state = _wait(lambda: (af.get(runs) or {}).get("state") in ("success", "failed") and af.get(runs)["state"],
                  f"run {run_id} to finish", RUN_TIMEOUT, af.procs, af.logs)
    seconds = time.monotonic() - t0
    tis = {ti["task_id"]: ti for ti in af.get(f"{runs}/taskInstances?limit=200")["task_instances"]}
    failed = [t for t, ti in tis.items() if ti["state"] == "failed"]
    doc = journal(estate, DRILL, run_id)
    assert state == "success", (f"run {run_id} {state} after {seconds:.0f}s; failed tasks {failed}\n"
                                f"{failures(doc)}\n" + "\n".join(af.task_log(t, run_id) for t in failed))

    # The scheduler ran every task through the drill's pools (it schedules nothing whose pool is missing).
    pools = {t: ti["pool"] for t, ti in tis.items()}
    assert {pools[t] for t in ("failover.inject_fault", "failover.promote", "dns_switch.switch")} == {
        "dr_destructive"}, pools
    assert pools["preflight"] == pools["verify.checks"] == "dr_drills", pools

    # The split really happened: the writer started on one worker; stopped, waited for and measured on the other.
    where = {t: (tis[t]["queue"], tis[t]["hostname"]) for t in
             ("failover.start_canary", "verify.checks", "stop_canary", "measure")}
    assert where["failover.start_canary"] == ("w1", "w1"), where
    for t in ("verify.checks", "stop_canary", "measure"):
        assert where[t] == ("w2", "w2"), where
    ran = {t: ti["hostname"] for t, ti in tis.items() if ti["state"] == "success" and ti["hostname"]}
    assert set(ran.values()) == {"w1", "w2"} and len(ran) >= 20, ran  # (EmptyOperators run on no worker)

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
              for t in ("failover.inject_fault", "rto_watch", "failover.promote", "verify.checks")}
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
    # point is in the past: Airflow's cron timetable would have run it at once).
    runs_of_drill = af.get(f"/api/v2/dags/{DRILL}/dagRuns")["dag_runs"]
    late = [r for r in runs_of_drill if r["run_type"] == "scheduled"
            and datetime.fromisoformat(r["run_after"]).timestamp() < unpaused_at - 600]
    assert late == [] and [r["dag_run_id"] for r in runs_of_drill if r["run_type"] == "manual"] == [run_id], \
        runs_of_drill
    print(f"\ncelery drill: run {run_id} passed in {seconds:.0f}s (trigger -> end); RTO {m['rto_seconds']}s")


def test_a_scheduled_run_starts_at_the_estates_local_time_and_needs_no_approval_inside_the_window(
        celery_airflow, estate):
    """The estate's schedules section drives the real scheduler: the dag-processor re-reads it, the drill
    starts at that local time as a scheduled run, and inside the unattended window of a cluster that is
    not unattended it goes ahead without a human (a manual trigger of it would wait for one)."""
    import pendulum

    af = celery_airflow
    tz = "Europe/Berlin"
    at = pendulum.now(tz).add(seconds=100).start_of("minute").add(minutes=1)  # after the next parse (30 s)
    text = af.estate_file.read_text()
    assert "unattended: true" in text
    text = text.replace("unattended: true", 'unattended: false\n    unattended_window: {days: [mon, tue, wed, thu, '
                                            'fri, sat, sun], start: "00:00", end: "23:59"}\n   ')
    text += (f"\nschedules:\n  timezone: {tz}\n"
             f'  dr_quarterly_failover_drill: {{day: every day, months: monthly, at: "{at:HH:mm}"}}\n')
    tmp = af.estate_file.with_suffix(".new")
    tmp.write_text(text)
    tmp.replace(af.estate_file)  # whole, never half a file for a parse
    summary = f"every day, every month, {at:HH:mm} {tz}"
    _wait(lambda: (af.get(f"/api/v2/dags/{DRILL}") or {}).get("timetable_summary") == summary,
          f"the dag-processor to read the new schedule ({summary})", 150, af.procs, af.logs)

    def scheduled() -> list[dict]:
        runs = (af.get(f"/api/v2/dags/{DRILL}/dagRuns?limit=50") or {}).get("dag_runs", [])
        return [r for r in runs if r["run_type"] == "scheduled"]

    run = _wait(lambda: scheduled() and scheduled()[0], f"the scheduled run at {at}",
                (at - pendulum.now(tz)).total_seconds() + 120, af.procs, af.logs)
    assert pendulum.parse(run["run_after"]) == at.in_tz("UTC"), run
    run_id = run["dag_run_id"]
    runs = f"/api/v2/dags/{DRILL}/dagRuns/{run_id}"
    state = _wait(lambda: (af.get(runs) or {}).get("state") in ("success", "failed") and af.get(runs)["state"],
                  f"run {run_id} to finish", RUN_TIMEOUT, af.procs, af.logs)
    tis = {ti["task_id"]: ti for ti in af.get(f"{runs}/taskInstances?limit=200")["task_instances"]}
    doc = journal(estate, DRILL, run_id)
    failed = [t for t, ti in tis.items() if ti["state"] == "failed"]
    assert state == "success", (f"run {run_id} {state}; failed tasks {failed}\n{failures(doc)}\n"
                                + "\n".join(af.task_log(t, run_id) for t in failed))
    reason = doc["approval"]["reason"]
    assert "scheduled run at" in reason and "inside the unattended window" in reason, reason
    assert tis["approval.approve"]["state"] == "skipped" and tis["approval.not_needed"]["state"] == "success"
    assert doc["measurements"]["rto_seconds"] > 0
    assert canary_processes() == []
    assert_home(estate)
