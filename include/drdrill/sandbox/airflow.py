"""Airflow the way users run it: scheduler, dag-processor, triggerer and api-server as processes.

What the end-to-end test under CeleryExecutor (``tests/integration/test_failover_celery.py``) and
the failover benchmark under a real scheduler (``bench/failover_rto.py``) share: a PostgreSQL 15
of its own for Airflow's metadata, optionally a Redis broker (Debian ``redis-server``), ``airflow
db migrate``, then each component in its own session, recorded by PID and stopped by PID (its
process group: what it forked goes with it), and a REST client for triggering runs as a user
would (``POST /api/v2/dags/{id}/dagRuns``). All users are admins here
(``SIMPLE_AUTH_MANAGER_ALL_ADMINS``): this serves tests and benchmarks on loopback, never a
deployment.

The executor decides what else runs: ``LocalExecutor`` runs tasks in the scheduler's own pool;
``CeleryExecutor`` needs workers, which the caller starts with `AirflowProcesses.spawn` (the Celery
test gives each its own mount namespace). Ports are chosen below Linux's ephemeral range.

Usage::

    with AirflowProcesses(tmp, dags=[Path("dags/dr_quarterly_failover_drill.py")]) as af:
        run_id = af.trigger("dr_quarterly_failover_drill", {"fault": "kill"})
        state = af.wait_run("dr_quarterly_failover_drill", run_id, timeout=480)
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from drdrill.core.paths import PROJECT_ROOT
from drdrill.core.runner import LocalRunner

PG_BIN = Path("/usr/lib/postgresql/15/bin")



def scheduler_settings(env: dict[str, str]) -> dict[str, str]:
    """The ``[scheduler]`` settings ``env`` sets (what decides a hop between two tasks), for reports."""
    prefix = "AIRFLOW__SCHEDULER__"
    return {k.removeprefix(prefix).lower(): v for k, v in sorted(env.items()) if k.startswith(prefix)}


# ------------------------------------------------------------------ processes, by PID
def free_port(start: int) -> int:
    """A free loopback port below Linux's ephemeral range (a client socket cannot take it meanwhile)."""
    for port in range(start, start + 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}-{start + 199}")


def alive(pid: int) -> bool:
    """Running and not a zombie (`kill -0` counts a zombie as alive)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return False


def stop_group(proc: subprocess.Popen, timeout: float = 30) -> None:
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


def wait_for(cond: Callable[[], Any], what: str, timeout: float, procs: dict[str, subprocess.Popen] | None = None,
             logs: Path | None = None, interval: float = 0.5) -> Any:
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
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class Redis:
    """Debian's ``redis-server`` as a Celery broker: daemonized with a PID file, stopped by that PID."""

    def __init__(self, d: Path) -> None:
        self.dir = d
        self.port = free_port(28100)
        self.pidfile = d / "redis.pid"
        self.pid: int | None = None

    def start(self) -> None:
        self.dir.mkdir()
        subprocess.run(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--daemonize", "yes",
                        "--pidfile", str(self.pidfile), "--dir", str(self.dir), "--logfile",
                        str(self.dir / "redis.log"), "--save", "", "--appendonly", "no"], check=True, timeout=30)
        self.pid = wait_for(lambda: self.pidfile.exists() and int(self.pidfile.read_text() or 0),
                            "redis-server's PID file", 15)
        wait_for(self.ping, "redis-server to answer PING", 15)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.pid and alive(self.pid):
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if alive(self.pid):
                os.kill(self.pid, signal.SIGKILL)


class MetadataPostgres:
    """A PostgreSQL 15 of its own for Airflow's metadata (not a drill target), run as postgres."""

    def __init__(self, d: Path) -> None:
        self.dir = d
        self.data = d / "data"
        self.port = free_port(28200)
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


def fernet_key() -> str:
    """What ``Fernet.generate_key()`` returns: 32 random bytes, URL-safe base64."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


class AirflowProcesses:
    """Airflow's components as separate processes over a metadata PostgreSQL of their own.

    :param tmp: an empty directory for everything (Airflow home, logs, the metadata DB); it must be
        traversable by ``postgres`` (mode 0755)
    :param dags: DAG files linked into a DAGs folder of their own (a busy machine parses nothing
        it does not run)
    :param executor: ``LocalExecutor`` (tasks in the scheduler's pool) or ``CeleryExecutor`` (a Redis
        broker is started; the caller starts the workers)
    :param env: more environment for every component (e.g. ``DRDRILL_RTO_DEADLINE_MINUTES``)
    :param plugins: plugin files linked into a plugins folder of their own (default: the drills'
        timetables, which the scheduler needs to read a drill back)
    """

    COMPONENTS = ("scheduler", "dag-processor", "triggerer")

    def __init__(self, tmp: Path, *, dags: Iterable[Path], executor: str = "LocalExecutor",
                 env: dict[str, str] | None = None, plugins: Iterable[Path] | None = None) -> None:
        self.tmp = tmp
        self.logs = tmp / "logs"
        self.logs.mkdir()
        self.executor = executor
        self.redis = Redis(tmp / "redis") if executor == "CeleryExecutor" else None
        self.pg = MetadataPostgres(tmp / "pg")
        self.api_port = free_port(28300)
        self.trigger_log_port = free_port(self.api_port + 1)  # not the default 8794 a local Airflow may hold
        self.procs: dict[str, subprocess.Popen] = {}
        self.dags = tmp / "dags"
        self.dags.mkdir()
        for f in dags:
            (self.dags / f.name).symlink_to(f.resolve())
        plugin_dir = tmp / "plugins"
        plugin_dir.mkdir()
        for f in plugins if plugins is not None else [PROJECT_ROOT / "plugins" / "drdrill_timetables.py"]:
            (plugin_dir / f.name).symlink_to(f.resolve())
        (tmp / "home").mkdir()
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(tmp / "home"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugin_dir),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.pg.url(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.trigger_log_port),
            "AIRFLOW__CORE__FERNET_KEY": fernet_key(),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "GX_ANALYTICS_ENABLED": "False",
            **(env or {}),
        }
        if self.redis is not None:
            self.env.update({"AIRFLOW__CELERY__BROKER_URL": self.redis.url(),
                             "AIRFLOW__CELERY__RESULT_BACKEND": self.pg.url("db+postgresql+psycopg")})
        include = str(PROJECT_ROOT / "include")
        if include not in self.env.get("PYTHONPATH", "").split(os.pathsep):
            self.env["PYTHONPATH"] = os.pathsep.join(p for p in (self.env.get("PYTHONPATH"), include) if p)

    @staticmethod
    def airflow() -> str:
        """The CLI of the venv running us."""
        return str(Path(sys.executable).parent / "airflow")

    def spawn(self, name: str, argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        """Start ``argv`` in a session of its own (stopped with its process group), output to logs/NAME.log."""
        with (self.logs / f"{name}.log").open("wb") as out:
            self.procs[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                                start_new_session=True, env=env or self.env, cwd=cwd or self.tmp)

    def start(self, *, wait: bool = True) -> AirflowProcesses:
        """Broker and metadata DB, ``db migrate``, api-server, scheduler, dag-processor, triggerer.

        With ``wait`` (default), returns once the api-server answers; a Celery caller starts its
        workers first and calls `wait_api` itself.
        """
        if self.redis is not None:
            self.redis.start()
        self.pg.start()
        res = subprocess.run([self.airflow(), "db", "migrate"], env=self.env, capture_output=True, text=True,
                             timeout=600, cwd=self.tmp)
        if res.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{res.stdout[-3000:]}{res.stderr[-3000:]}")
        # The drills' pools, as docker-compose's airflow-init and `make airflow` create them: a real
        # scheduler never schedules a task whose pool does not exist.
        from drdrill.core.limits import DESTRUCTIVE_POOL, DRILL_POOL

        for pool, slots in ((DRILL_POOL, "4"), (DESTRUCTIVE_POOL, "1")):
            res = subprocess.run([self.airflow(), "pools", "set", pool, slots, "drdrill"], env=self.env,
                                 capture_output=True, text=True, timeout=120, cwd=self.tmp)
            if res.returncode != 0:
                raise RuntimeError(f"airflow pools set {pool} failed:\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
        self.spawn("api-server", [self.airflow(), "api-server", "--host", "127.0.0.1", "--port", str(self.api_port),
                                  "--workers", "1"])
        for component in self.COMPONENTS:
            self.spawn(component, [self.airflow(), component])
        if wait:
            self.wait_api()
        return self

    def wait_api(self, timeout: float = 180) -> None:
        wait_for(lambda: self.get("/api/v2/monitor/health") is not None, "the api-server", timeout, self.procs,
                 self.logs)

    def stop(self, first: Iterable[str] = ()) -> None:
        """Stop by PID: ``first`` (e.g. workers: a running task ends with them), then every other component,
        then the broker and the metadata DB. Safe to call twice and after a failed start."""
        order = [*first, *[n for n in self.procs if n not in first]]
        steps = [lambda p=self.procs[n]: stop_group(p) for n in order if n in self.procs]
        steps += [self.redis.stop] if self.redis is not None else []
        steps.append(self.pg.stop)
        errors = []
        for stop in steps:  # each one whatever happened to the one before
            try:
                stop()
            except Exception as e:  # noqa: BLE001 - the others are stopped first, then this is raised
                errors.append(e)
        if errors:
            raise errors[0]

    def __enter__(self) -> AirflowProcesses:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *_: Any) -> None:
        self.stop()

    # ---------------------------------------------------------------- REST (all users are admins here)
    def request(self, method: str, path: str, body: dict | None = None) -> dict | None:
        """JSON in, JSON out; None for 404 and for a server that does not answer (yet)."""
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

    def wait_parsed(self, dag_id: str, timeout: float = 180) -> None:
        """Until the dag-processor has written the DAG (the REST API knows it)."""
        wait_for(lambda: self.get(f"/api/v2/dags/{dag_id}"), f"the dag-processor to parse {dag_id}", timeout,
                 self.procs, self.logs)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Unpause ``dag_id`` and trigger a run through the REST API, as a user would: its run id."""
        self.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        run = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
        if not run:
            raise AssertionError(f"triggering {dag_id} returned nothing: is the api-server up?")
        return run["dag_run_id"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        """Until the run ends: ``success`` or ``failed`` (a hung run fails the caller instead of blocking)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"

        def ended() -> str | None:
            state = (self.get(path) or {}).get("state")
            return state if state in ("success", "failed") else None

        return wait_for(ended, f"run {run_id} to finish", timeout, self.procs, self.logs)

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        out = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=200") or {}
        return {ti["task_id"]: ti for ti in out.get("task_instances", [])}
