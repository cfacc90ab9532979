"""The canary writer: the RPO and RTO evidence of a failover, seen from the application's side.

A small process writes one row every ``interval_ms`` through the service endpoint (the
application, which resolves the database through the DNS record), sequence number first.
Every attempt is recorded at once: acknowledged (HTTP 200: committed) or failed. After the
failover, `analyse` compares the acknowledged writes with the rows present on the new primary:

- lost writes: acknowledged but absent (RPO; with asynchronous replication a suffix);
- RTO: the first acknowledged write after the fault.

Where its evidence lives. The writer runs detached on the worker that started it, but the tasks
that read its writes (verify, measure) and the one that stops it may run on any other worker
(CeleryExecutor, KubernetesExecutor). So its state is in the estate's state store
(`drdrill.core.statestore`, ``file://`` or ``s3://``), under ``canary/<run tag>/``:

- ``writer.json``: who started it, where, its PID and when its bounded lifetime ends;
- ``acks-NNNNNNNN.jsonl``: its records, published every ``publish_seconds`` (0.5 s) and at exit,
  one object per flush, each written once and whole; the write loop never waits for a publish;
- ``stop``: written by whoever tears down, on any worker; the writer checks for it at every
  flush and stops;
- ``stopped``: written by the writer on its way out (why, how many attempts): the teardown
  waits for it (bounded), and readers check that every attempt up to the last is there.

The writer stops on ``stop``, on SIGTERM, or after ``--max-seconds`` whatever happens. When it
cannot publish for ``publish_grace`` seconds it stops writing and says so (in its log and, if it
can, in ``stopped``): a canary whose evidence nobody can read must not keep writing into
production. Its local scratch directory keeps its own copy (``acks.jsonl``), its log and its PID
file, for that worker only: no other task reads them.

Run: ``python -m drdrill.core.canary --out DIR --run-id ID --url URL [--url URL] --interval-ms 100
[--state LOCATION --state-key canary/TAG [--state-conn-id ID]]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from drdrill.core import httpjson, statestore
from drdrill.core.errors import DrillError

log = logging.getLogger(__name__)

ACKS = "acks.jsonl"
PIDFILE = "canary.pid"
LOGFILE = "canary.log"
SHARED_DIR = "canary"  # under the state store: canary/<run tag>/
WRITER, STOP, STOPPED = "writer.json", "stop", "stopped"
CHUNK_PREFIX, CHUNK_SUFFIX = "acks-", ".jsonl"
PUBLISH_SECONDS = 0.5
PUBLISH_GRACE_SECONDS = 10.0
TABLE_SQL = """
-- CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema exists: only when missing
DO $$ BEGIN IF to_regnamespace('drdrill') IS NULL THEN CREATE SCHEMA drdrill; END IF; END $$;
CREATE TABLE IF NOT EXISTS drdrill.canary_writes (run_id text NOT NULL, seq bigint NOT NULL,
  committed_at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (run_id, seq));
"""


# ------------------------------------------------------------------ the run's state in the state store
class SharedRun:
    """One run's canary state in the state store (``canary/<run tag>/``), for the writer and any task.

    Every error reaching the store, and every object that cannot be parsed, is a `DrillError`
    naming the object: a corrupt or unreadable state file is never read as "no writes".
    """

    def __init__(self, d: Any) -> None:
        self.dir = d
        self._chunks: dict[str, list[dict[str, Any]]] = {}  # chunks are written once: read each once

    def __repr__(self) -> str:
        return f"SharedRun({self.dir})"

    def _json(self, name: str) -> dict[str, Any] | None:
        p = statestore.refresh(self.dir / name)
        try:
            if not p.exists():
                return None
            text = p.read_text()
        except Exception as e:  # noqa: BLE001 - fsspec, s3fs, botocore and the OS all raise their own
            raise DrillError(f"cannot read the canary state {p}: {type(e).__name__}: {e}") from e
        try:
            out = json.loads(text)
        except ValueError:
            out = None
        if not isinstance(out, dict):
            raise DrillError(f"the canary state {p} is corrupt (not a JSON object: {text[:100]!r}); it is written "
                             f"whole, so something else wrote it. Remove {self.dir} once its writer is gone.")
        return out

    def _put(self, name: str, body: str) -> None:
        statestore.write_atomically(self.dir / name, body)

    def writer(self) -> dict[str, Any] | None:
        return self._json(WRITER)

    def stopped(self) -> dict[str, Any] | None:
        return self._json(STOPPED)

    def stop_requested(self) -> bool:
        return statestore.refresh(self.dir / STOP).exists()

    def write_writer(self, info: dict[str, Any]) -> None:
        self._put(WRITER, json.dumps(info))

    def request_stop(self, by: str) -> None:
        self._put(STOP, json.dumps({"by": by, "at": time.time()}))

    def mark_stopped(self, info: dict[str, Any]) -> None:
        self._put(STOPPED, json.dumps(info))

    def publish(self, index: int, recs: list[dict[str, Any]]) -> None:
        self._put(f"{CHUNK_PREFIX}{index:08d}{CHUNK_SUFFIX}", "".join(json.dumps(r) + "\n" for r in recs))

    def _chunk_names(self) -> list[str]:
        try:
            if not statestore.refresh(self.dir).exists():
                return []
            return sorted(p.name for p in self.dir.iterdir()
                          if p.name.startswith(CHUNK_PREFIX) and p.name.endswith(CHUNK_SUFFIX))
        except Exception as e:  # noqa: BLE001
            raise DrillError(f"cannot list the canary state {self.dir}: {type(e).__name__}: {e}") from e

    def _chunk(self, name: str) -> list[dict[str, Any]]:
        p = self.dir / name
        try:
            text = p.read_text()
        except Exception as e:  # noqa: BLE001
            raise DrillError(f"cannot read the canary state {p}: {type(e).__name__}: {e}") from e
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            try:
                rec = json.loads(line)
            except ValueError:
                rec = None
            if not isinstance(rec, dict) or not isinstance(rec.get("seq"), int):
                raise DrillError(f"the canary state {p} is corrupt at line {n} ({line[:100]!r}); chunks are written "
                                 f"whole, so the run's canary evidence cannot be trusted")
            out.append(rec)
        return out

    def records(self) -> list[dict[str, Any]]:
        """Every attempt published so far, by sequence number.

        Once the writer has written ``stopped``, every attempt up to its last must be there:
        a missing one is an error, never a silently shorter record.
        """
        stopped = self.stopped()
        for name in self._chunk_names():
            if name not in self._chunks:
                self._chunks[name] = self._chunk(name)
        by_seq = {r["seq"]: r for chunk in self._chunks.values() for r in chunk}  # a re-published batch: once
        recs = [by_seq[s] for s in sorted(by_seq)]
        if stopped is not None:
            missing = sorted(set(range(1, int(stopped.get("attempts", 0)) + 1)) - set(by_seq))
            if missing:
                raise DrillError(f"the canary state {self.dir} lacks {len(missing)} of the writer's "
                                 f"{stopped.get('attempts')} attempts (seq {missing[:10]}...; the writer said: "
                                 f"{stopped.get('reason')}): its evidence is incomplete")
        return recs

    def remove(self) -> None:
        try:
            statestore.remove_tree(self.dir)
        except Exception as e:  # noqa: BLE001
            raise DrillError(f"cannot remove the canary state {self.dir}: {type(e).__name__}: {e}") from e


def run_dir(store: Any, run_id: str) -> Any:
    """Where the canary state of ``run_id`` lives in the state store."""
    from drdrill.core.scratch import run_tag

    return statestore.path(store, SHARED_DIR, run_tag(run_id))


def shared(store: Any, run_id: str) -> SharedRun:
    return SharedRun(run_dir(store, run_id))


# ------------------------------------------------------------------ the writer process
class _Publisher(threading.Thread):
    """Publishes the writer's new records every ``every`` seconds and looks for the stop marker.

    A thread of its own, so the write loop never waits for the state store; it only reads
    `last_ok` to know that its evidence still reaches the store.
    """

    def __init__(self, run: SharedRun, every: float) -> None:
        super().__init__(daemon=True, name="canary-publisher")
        self.run_state = run
        self.every = every
        self.lock = threading.Lock()
        self.pending: list[dict[str, Any]] = []
        self.index = 0
        self.last_ok = time.monotonic()
        self.error: str | None = None
        self.stop_seen = threading.Event()
        self.done = threading.Event()

    def add(self, rec: dict[str, Any]) -> None:
        with self.lock:
            self.pending.append(rec)

    def run(self) -> None:
        while not self.done.wait(self.every):
            self.flush()

    def flush(self) -> bool:
        with self.lock:
            batch, self.pending = self.pending, []
        try:
            if batch:
                # A new name every time, even for a batch that failed before: a chunk is never rewritten,
                # and a reader that saw a PUT that "failed" after all gets its records twice (deduplicated).
                self.index += 1
                self.run_state.publish(self.index, batch)
            if self.run_state.stop_requested():
                self.stop_seen.set()
        except Exception as e:  # noqa: BLE001 - any failure to publish is the same problem
            with self.lock:
                self.pending = batch + self.pending
            self.error = f"{type(e).__name__}: {e}"
            print(f"canary: publishing to {self.run_state.dir} failed: {self.error}", file=sys.stderr, flush=True)
            return False
        self.last_ok = time.monotonic()
        self.error = None
        return True

    def stale(self, grace: float) -> bool:
        return time.monotonic() - self.last_ok > grace


def write_loop(out: Path, run_id: str, urls: list[str], interval: float, timeout: float,
               max_seconds: float = 3600, run: SharedRun | None = None, *,
               publish_seconds: float = PUBLISH_SECONDS, publish_grace: float = PUBLISH_GRACE_SECONDS) -> bool:
    """Write until stopped; one JSON line per attempt, flushed before the next. True when every
    record reached the state store (always, without one).

    The lifetime is bounded so that a writer whose run died (and whose teardown never came)
    stops writing into production by itself.
    """
    reason: str | None = None

    def on_term(*_: Any) -> None:
        nonlocal reason
        reason = reason or "SIGTERM"

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    pub = _Publisher(run, publish_seconds) if run is not None else None
    if pub:
        pub.start()
    seq = acked = 0
    ends = time.monotonic() + max_seconds
    with (out / ACKS).open("a", buffering=1) as f:
        while reason is None:
            if time.monotonic() >= ends:
                reason = f"its bounded lifetime of {max_seconds:.0f}s ran out"
                break
            if pub and pub.stop_seen.is_set():
                reason = "stop requested through the state store"
                break
            if pub and pub.stale(publish_grace):
                reason = (f"it could not publish its writes to the state store for {publish_grace:.0f}s "
                          f"({pub.error or 'no answer'}): a canary whose evidence nobody can read stops writing")
                break
            seq += 1
            t0 = time.time()
            url = urls[seq % len(urls)]
            code, body = httpjson.call(url, timeout=timeout, body={"run_id": run_id, "seq": seq})
            if code != 200 and len(urls) > 1:  # a replica down is not a database failure: try the other
                url = urls[(seq + 1) % len(urls)]
                code, body = httpjson.call(url, timeout=timeout, body={"run_id": run_id, "seq": seq})
            rec: dict[str, Any] = {"seq": seq, "sent_at": t0, "done_at": time.time(), "url": url}
            if code == 200 and body.get("ok"):
                acked += 1
                rec.update(ok=True, committed_at=body.get("committed_at"), db=body.get("db"))
            else:
                rec.update(ok=False, code=code, error=str(body.get("error", body))[:300])
            f.write(json.dumps(rec) + "\n")
            if pub:
                pub.add(rec)
            time.sleep(max(0.0, interval - (time.time() - t0)))
    print(f"canary: stopped after {seq} attempts ({acked} acknowledged): {reason}", file=sys.stderr, flush=True)
    if pub is None or run is None:
        return True
    pub.done.set()
    pub.join(timeout=publish_grace)
    complete = not pub.is_alive() and pub.flush() and not pub.pending
    info = {"reason": reason, "at": time.time(), "attempts": seq, "acknowledged": acked, "pid": os.getpid(),
            "host": socket.gethostname(), "complete": complete, "publish_error": pub.error}
    if pub.is_alive():
        print(f"canary: the state store did not answer within {publish_grace:.0f}s; the last records are only in "
              f"{out / ACKS}", file=sys.stderr, flush=True)
        return False
    try:
        run.mark_stopped(info)
    except Exception as e:  # noqa: BLE001
        print(f"canary: could not write {STOPPED} to {run.dir}: {type(e).__name__}: {e}", file=sys.stderr,
              flush=True)
        return False
    return complete


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m drdrill.core.canary", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="the run's local scratch directory")
    ap.add_argument("--run-id", required=True)
    ap.add_argument("--url", action="append", required=True, help="write endpoint (repeat per replica)")
    ap.add_argument("--interval-ms", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--max-seconds", type=float, default=3600, help="stop writing after this long, whatever happens")
    ap.add_argument("--state", help="the estate's state store (file:// or s3://...), where every worker reads")
    ap.add_argument("--state-key", help="this run's directory in it (canary/<run tag>)")
    ap.add_argument("--state-conn-id", help="the state store's Airflow connection (AIRFLOW_CONN_<ID> in the env)")
    ap.add_argument("--publish-seconds", type=float, default=PUBLISH_SECONDS)
    ap.add_argument("--publish-grace", type=float, default=PUBLISH_GRACE_SECONDS,
                    help="stop writing when nothing could be published for this long")
    a = ap.parse_args(argv)
    run = None
    if a.state:
        run = SharedRun(statestore.path(a.state, *(a.state_key or "").split("/"), conn_id=a.state_conn_id))
    ok = write_loop(a.out, a.run_id, a.url, a.interval_ms / 1000.0, a.timeout, a.max_seconds, run,
                    publish_seconds=a.publish_seconds, publish_grace=a.publish_grace)
    return 0 if ok else 1


# ------------------------------------------------------------------ control from a task
def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return False


def _connection_env(conn_id: str) -> dict[str, str]:
    """The state store's connection for the detached writer, through its environment (never its command
    line). A task reads connections through the Airflow API; a process it leaves behind cannot, unless the
    connection comes from the environment or a secrets backend already."""
    name = f"AIRFLOW_CONN_{conn_id.upper()}"
    if name in os.environ:
        return {}
    try:
        from airflow.sdk import Connection

        return {name: Connection.get(conn_id).as_json()}
    except Exception as e:  # noqa: BLE001
        raise DrillError(f"cannot read the Airflow connection {conn_id!r} of the state store for the canary "
                         f"writer: {type(e).__name__}: {e}") from e


def start(workdir: Path, run_id: str, urls: list[str], *, interval_ms: int, timeout: float,
          max_seconds: float = 3600, store: Any = None, meta: dict[str, Any] | None = None,
          publish_seconds: float = PUBLISH_SECONDS, publish_grace: float = PUBLISH_GRACE_SECONDS) -> int:
    """Start the writer detached; returns its PID (also in ``workdir/canary.pid``).

    With ``store`` (the estate's state store) its records and its stop control are there, for
    every worker; a store that cannot be written fails here, before anything writes into
    production. It stops by itself after ``max_seconds`` even if nobody tears it down.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    pidfile = workdir / PIDFILE
    if pidfile.exists() and is_running(workdir):
        raise RuntimeError(f"a canary writer already runs for {workdir}")
    run = shared(store, run_id) if store is not None else None
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                                      os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", "drdrill.core.canary", "--out", str(workdir), "--run-id", run_id,
            "--interval-ms", str(interval_ms), "--timeout", str(timeout), "--max-seconds", str(max_seconds)]
    for u in urls:
        argv += ["--url", u]
    info: dict[str, Any] = {**(meta or {}), "run_id": run_id, "host": socket.gethostname(), "workdir": str(workdir),
                            "urls": urls, "max_seconds": max_seconds}
    if run is not None:
        _prepare(run, run_id, info)
        from drdrill.core.scratch import run_tag

        argv += ["--state", store.location, "--state-key", f"{SHARED_DIR}/{run_tag(run_id)}",
                 "--publish-seconds", str(publish_seconds), "--publish-grace", str(publish_grace)]
        if store.conn_id:
            argv += ["--state-conn-id", store.conn_id]
            env.update(_connection_env(store.conn_id))
    with (workdir / LOGFILE).open("ab") as errlog:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=errlog, stderr=errlog,
                                start_new_session=True, env=env)
    pidfile.write_text(str(proc.pid))
    if run is not None:
        now = time.time()
        try:
            run.write_writer({**info, "pid": proc.pid, "started_at": now, "ends_at": now + max_seconds})
        except Exception as e:
            stop(workdir)
            raise DrillError(f"the canary writer was stopped at once: its start could not be recorded in the "
                             f"state store {run.dir} ({type(e).__name__}: {e})") from e
    log.info("canary writer started (pid %s): a write every %s ms through %s, for at most %.0fs%s", proc.pid,
             interval_ms, urls, max_seconds, f"; its writes are published to {run.dir}" if run else "")
    return proc.pid


def _prepare(run: SharedRun, run_id: str, info: dict[str, Any]) -> None:
    """The state store answers, and no writer of this run is still going (a retried start)."""
    try:
        before, stopped = run.writer(), run.stopped()
        if before and before.get("pid") and not stopped:
            raise RuntimeError(f"a canary writer already runs for run {run_id} (pid {before.get('pid')} on "
                               f"{before.get('host')}, {run.dir}); stop it first")
        if before or stopped:
            run.remove()  # a finished writer of this run: start afresh, its chunks would mix with the new ones
        run.write_writer({**info, "starting_at": time.time()})
    except (RuntimeError, DrillError):
        raise
    except Exception as e:  # noqa: BLE001
        raise DrillError(f"the state store {run.dir} cannot be written ({type(e).__name__}: {e}): the canary's "
                         f"writes would be unreadable by the other workers, so no canary was started. Check the "
                         f"estate's state location and its connection.") from e


def is_running(workdir: Path) -> bool:
    try:
        pid = int((workdir / PIDFILE).read_text())
    except (OSError, ValueError):
        return False
    # Only our writer: a recycled PID belongs to someone else and is never signalled.
    args = _cmdline(pid).split(" ")
    return (_alive(pid) and "drdrill.core.canary" in args and "--out" in args
            and args[args.index("--out") + 1:args.index("--out") + 2] == [str(workdir)])


def stop(workdir: Path, *, timeout: float = 10) -> bool:
    """Stop the writer of ``workdir`` on this machine (SIGTERM, then SIGKILL); True when one was running."""
    if not is_running(workdir):
        return False
    pid = int((workdir / PIDFILE).read_text())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    try:  # reap it when this process is its parent (same task)
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    log.info("canary writer stopped (pid %s)", pid)
    return True


def stop_shared(store: Any, run_id: str, *, by: str, wait: float = 15) -> dict[str, Any]:
    """Stop the writer of ``run_id`` wherever it runs: write ``stop`` and wait (at most ``wait`` s) for
    its ``stopped``. ``confirmed`` is False when it did not answer in time."""
    run = shared(store, run_id)
    w = run.writer()
    if not w or not w.get("pid"):
        return {"stopped": False, "reason": "no canary writer was started for this run"}
    done = run.stopped()
    if done is None:
        run.request_stop(by)
        deadline = time.monotonic() + wait
        while done is None and time.monotonic() < deadline:
            time.sleep(0.1)
            done = run.stopped()
    if done is None:
        return {"stopped": False, "confirmed": False, "pid": w.get("pid"), "host": w.get("host"),
                "reason": f"no '{STOPPED}' from the writer within {wait:.0f}s"}
    log.info("canary writer of %s (pid %s on %s) stopped: %s", run_id, w.get("pid"), w.get("host"),
             done.get("reason"))
    return {"stopped": True, "confirmed": True, "pid": w.get("pid"), "host": w.get("host"),
            **{k: done.get(k) for k in ("reason", "attempts", "acknowledged", "complete")}}


def stop_leftovers(store: Any, keep_run_id: str | None, is_active: Any = None) -> list[str]:
    """Canary state of other runs: removed once their writer stopped (or its lifetime ran out); a writer
    of a run that is no longer active is asked to stop (it may run on another worker). Returns what
    was done, one line each."""
    root = statestore.refresh(statestore.path(store, SHARED_DIR))
    try:
        dirs = sorted(root.iterdir(), key=lambda p: p.name) if root.exists() else []
    except Exception as e:  # noqa: BLE001
        raise DrillError(f"cannot list the canary state {root}: {type(e).__name__}: {e}") from e
    done = []
    for d in dirs:
        run = SharedRun(d)
        w, stopped = run.writer(), run.stopped()
        if w and w.get("run_id") == keep_run_id:
            continue
        over = w is not None and float(w.get("ends_at") or 0) + 60 < time.time()
        if stopped is not None or w is None or over:
            run.remove()
            done.append(f"removed the canary state of run {(w or {}).get('run_id', d.name)}")
        elif is_active is not None and is_active(w):
            continue
        elif not run.stop_requested():
            run.request_stop(f"preflight of run {keep_run_id}: leftover of a run that is no longer active")
            done.append(f"asked the canary writer of run {w.get('run_id')} (pid {w.get('pid')} on {w.get('host')}) "
                        f"to stop")
    for line in done:
        log.warning("%s", line)
    return done


def records(workdir: Path) -> list[dict[str, Any]]:
    """The writer's local copy (``workdir/acks.jsonl``), readable on its own worker only."""
    p = workdir / ACKS
    if not p.exists():
        return []
    out = []
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a kill -9 of the writer
    return out


# ------------------------------------------------------------------ analysis
@dataclass(frozen=True)
class CanaryReport:
    attempts: int
    acknowledged: int
    failed_attempts: int
    acked_before_fault: int
    lost: list[int]
    last_surviving_seq: int | None
    last_surviving_committed_at: str | None
    first_lost_committed_at: str | None
    last_lost_committed_at: str | None
    gap_seconds: float | None  # last surviving -> first lost acknowledged write
    loss_window_seconds: float  # last surviving -> last lost: the data the failover lost
    first_ack_after_fault: float | None  # epoch seconds (RTO end)
    last_ack_before_fault: float | None
    endpoint_down_seconds: float | None

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        d = asdict(self)
        d["lost_count"] = len(self.lost)
        d["lost"] = self.lost[:200]
        return d


def _ts(s: str | None) -> float | None:
    return datetime.fromisoformat(s).timestamp() if s else None


def analyse(recs: list[dict[str, Any]], present: set[int], fault_at: float) -> CanaryReport:
    """Compare acknowledged writes with the sequence numbers present on the new primary.

    The writer keeps going after the failover, so the new primary also holds later writes:
    the data-loss window is measured from the last write that survived *before* the first
    lost one, not from the newest surviving write.
    """
    acked = [r for r in recs if r.get("ok")]
    lost_recs = sorted((r for r in acked if r["seq"] not in present), key=lambda r: r["seq"])
    lost = [r["seq"] for r in lost_recs]
    surviving = [r for r in acked if r["seq"] in present]
    first_lost = lost_recs[0] if lost_recs else None
    last_lost = lost_recs[-1] if lost_recs else None
    before_loss = [r for r in surviving if first_lost is None or r["seq"] < first_lost["seq"]]
    last_ok = max(before_loss, key=lambda r: r["seq"], default=None)
    gap = None
    if first_lost and last_ok and first_lost.get("committed_at") and last_ok.get("committed_at"):
        gap = round(_ts(first_lost["committed_at"]) - _ts(last_ok["committed_at"]), 3)
    window = 0.0
    if last_lost and last_lost.get("committed_at"):
        start = last_ok or first_lost
        if start and start.get("committed_at"):
            window = round(max(0.0, _ts(last_lost["committed_at"]) - _ts(start["committed_at"])), 3)
    after = [r["done_at"] for r in acked if r["sent_at"] >= fault_at]
    before = [r["done_at"] for r in acked if r["done_at"] <= fault_at]
    first_after = min(after) if after else None
    last_before = max(before) if before else None
    return CanaryReport(
        attempts=len(recs), acknowledged=len(acked), failed_attempts=len(recs) - len(acked),
        acked_before_fault=len(before), lost=lost,
        last_surviving_seq=last_ok["seq"] if last_ok else None,
        last_surviving_committed_at=last_ok.get("committed_at") if last_ok else None,
        first_lost_committed_at=first_lost.get("committed_at") if first_lost else None,
        last_lost_committed_at=last_lost.get("committed_at") if last_lost else None,
        gap_seconds=gap, loss_window_seconds=window,
        first_ack_after_fault=first_after, last_ack_before_fault=last_before,
        endpoint_down_seconds=round(first_after - last_before, 3) if first_after and last_before else None)


def holes(recs: list[dict[str, Any]], present: set[int], fault_at: float) -> list[int]:
    """Lost writes followed by a surviving write sent before the fault: never normal.

    With asynchronous replication a failover loses a suffix of what the old primary had
    acknowledged; a lost write with a later pre-fault write present means writes were lost
    some other way (a restore, a split brain).
    """
    acked = [r for r in recs if r.get("ok")]
    newest_pre_fault = max((r["seq"] for r in acked if r["seq"] in present and r["sent_at"] < fault_at), default=0)
    return sorted(r["seq"] for r in acked if r["seq"] not in present and r["seq"] < newest_pre_fault)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
