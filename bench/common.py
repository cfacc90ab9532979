"""What both benchmarks share: the Airflow environment, measured subprocesses, a drill run under
``airflow dags test`` read back from its journal, progress lines, and median/min/max figures.

The benchmarks are run as files (``python bench/restore_overhead.py``), so this directory is the
first entry of ``sys.path`` and they import this module as ``common``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = str(Path(sys.executable).parent / "airflow")  # the CLI of the venv running the benchmark


# --------------------------------------------------------------------------- command line, estate
def parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser described by the first paragraph of a benchmark's docstring."""
    return argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def add_estate_options(ap: argparse.ArgumentParser) -> None:
    """``--cluster`` and ``--json``, the options every benchmark has."""
    ap.add_argument("--cluster", default=None, help="cluster of the estate (default: first allowing the drill)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON document")


def use_checkout_package() -> None:
    """Import drdrill from this checkout's include/ (what `make` puts on PYTHONPATH)."""
    sys.path.insert(0, str(PROJECT_ROOT / "include"))


def airflow_env() -> dict[str, str]:
    """The environment `make` gives Airflow, for whatever the caller did not set."""
    env = dict(os.environ)
    include = str(PROJECT_ROOT / "include")
    if include not in env.get("PYTHONPATH", "").split(os.pathsep):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (include, env.get("PYTHONPATH")) if p)
    for key, value in {
        "AIRFLOW_HOME": str(PROJECT_ROOT / "airflow-home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "GX_ANALYTICS_ENABLED": "False",
    }.items():
        env.setdefault(key, value)
    if not env.get("DRDRILL_ESTATE"):  # the sandbox: its connections (moto; the drills' role and its password)
        from drdrill.sandbox import Sandbox

        for key, value in Sandbox().airflow_env().items():
            env.setdefault(key, value)
    return env


def load_cluster(ap: argparse.ArgumentParser, args: argparse.Namespace, drill: str,
                 env: dict[str, str]) -> tuple[Any, Any]:
    """(estate, cluster) as ``env`` selects them; ``args.cluster`` defaults to the first allowing ``drill``."""
    os.environ.update(env)  # journals are read through Airflow's ObjectStoragePath in this process
    from drdrill.core.estate import load_estate

    estate = load_estate()
    if args.cluster is None:
        allowed = estate.clusters_for(drill)
        if not allowed:
            ap.error(f"no cluster in {estate.source} allows {drill}")
        args.cluster = allowed[0].name
    return estate, estate.cluster(args.cluster)


def log_dir(env: dict[str, str]) -> Path:
    """``$AIRFLOW_HOME/bench``, where every run's log goes."""
    logdir = Path(env["AIRFLOW_HOME"]) / "bench"
    logdir.mkdir(parents=True, exist_ok=True)
    return logdir


# --------------------------------------------------------------------------- progress and logs
CONSOLE: Any = sys.stderr  # progress lines; LogsToFile points it at the terminal, logs go to a file


def progress(msg: str) -> None:
    print(msg, file=CONSOLE, flush=True)


class LogsToFile:
    """File descriptors 1 and 2 go to ``log`` meanwhile (Airflow's and drdrill's log lines):
    progress lines still reach the terminal; both descriptors are restored on exit."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def __enter__(self) -> LogsToFile:
        global CONSOLE
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = (os.dup(1), os.dup(2))
        CONSOLE = self.console = os.fdopen(os.dup(2), "w", buffering=1)
        with self.log.open("w") as f:
            os.dup2(f.fileno(), 1)
            os.dup2(f.fileno(), 2)
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        global CONSOLE
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved in zip((1, 2), self.saved, strict=True):
            os.dup2(saved, fd)
            os.close(saved)
        CONSOLE = sys.stderr
        self.console.close()
        if exc_type is not None:
            print(f"(log lines of this run: {self.log})", file=sys.stderr)


# --------------------------------------------------------------------------- measured subprocesses
def run_measured(argv: list[str], env: dict[str, str], log: Path) -> tuple[int, float, int]:
    """Run a command with output to ``log``: (exit code, wall seconds, ru_maxrss in KiB).

    ``ru_maxrss`` from wait4 is the largest single process of the tree (the process itself or
    a child it waited for); daemonized servers (the scratch postmaster) are in neither figure.
    """
    t0 = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.terminate()  # our own child, by PID
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.monotonic() - t0, usage.ru_maxrss


def ensure_airflow_db(env: dict[str, str], logdir: Path) -> float | None:
    """``airflow db migrate`` when AIRFLOW_HOME has no airflow.db yet: its seconds, else None."""
    if env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or (Path(env["AIRFLOW_HOME"]) / "airflow.db").exists():
        return None
    progress(f"no airflow.db in {env['AIRFLOW_HOME']}: airflow db migrate ...")
    rc, wall, _ = run_measured([AIRFLOW, "db", "migrate"], env, logdir / "migrate.log")
    if rc != 0:
        raise SystemExit(f"airflow db migrate failed; see {logdir / 'migrate.log'}")
    return wall


# --------------------------------------------------------------------------- a drill under `airflow dags test`
def epoch(iso: str) -> float:
    """Seconds since the epoch of a journal timestamp."""
    return datetime.fromisoformat(iso).timestamp()


@dataclass(frozen=True)
class DrillRun:
    """One ``airflow dags test`` run of a drill and the journal it wrote."""

    journal: str
    doc: dict[str, Any]
    log: Path
    exit_code: int
    wall: float
    maxrss_kb: int
    launched: float  # epoch seconds, just before the airflow process was started

    def timed_steps(self) -> list[dict[str, Any]]:
        """The journal's steps that ran (they have timestamps and seconds)."""
        return [s for s in self.doc["steps"] if "started_at" in s]

    def startup(self) -> float:
        """Airflow's fixed start-up: launch -> the first task's code (the earliest step start)."""
        return min(epoch(s["started_at"]) for s in self.timed_steps()) - self.launched

    def figures(self) -> dict[str, Any]:
        """What every benchmark keeps of a run: status, failures, where to look, exit code, wall time."""
        return {"status": self.doc["status"], "failures": self.doc.get("failures", []), "journal": self.journal,
                "log": str(self.log), "exit_code": self.exit_code, "process_wall": self.wall}


def run_drill(drill: str, conf: dict[str, Any], estate: Any, env: dict[str, str], log: Path) -> DrillRun:
    """``airflow dags test drill -c conf`` with output to ``log``, and the one journal it wrote."""
    from drdrill.core import journal

    loc, conn = estate.journal.location, estate.journal.conn_id
    before = journal.listed(loc, conn, drill)
    launched = time.time()
    rc, wall, rss = run_measured([AIRFLOW, "dags", "test", drill, "-c", json.dumps(conf)], env, log)
    new = sorted(journal.listed(loc, conn, drill) - before)
    if not new:
        raise SystemExit(f"the drill wrote no journal (airflow exit code {rc}); see {log}")
    return DrillRun(new[-1], journal.read(new[-1], conn), log, rc, wall, rss, launched)


def drill_failed(d: dict[str, Any]) -> None:
    """Say that a drill run failed, where its journal and log are, and its failures."""
    progress(f"the drill FAILED (journal {d['journal']}, log {d['log']}):")
    for f in d["failures"]:
        progress(f"  {f}")


# --------------------------------------------------------------------------- figures
def col(samples: list[dict[str, Any]], key: str) -> list[float]:
    """The values of ``key`` over the runs that have one."""
    return [float(s[key]) for s in samples if s.get(key) is not None]


def stat(values: list[float]) -> dict[str, float] | None:
    """Median, min, max and count for the JSON document (None without values)."""
    if not values:
        return None
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4), "n": len(values)}


def fmt(values: list[float], unit: str = "s", digits: int = 2, *, spread: str = "range") -> str:
    """The median, and with more than one value the spread: ``[min..max]``, or ``(min x)`` for ``spread="min"``."""
    if not values:
        return "-"
    med = f"{statistics.median(values):.{digits}f}"
    if len(values) == 1:
        return f"{med} {unit}".strip()
    if spread == "min":
        return f"{med} {unit} (min {min(values):.{digits}f})".strip()
    return f"{med} [{min(values):.{digits}f}..{max(values):.{digits}f}] {unit}".strip()
