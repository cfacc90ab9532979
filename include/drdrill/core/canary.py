"""The canary writer: the RPO and RTO evidence of a failover, seen from the application's side.

A small process writes one row every ``interval_ms`` through the service endpoint (the
application, which resolves the database through the DNS record), sequence number first.
Every write the service acknowledged (HTTP 200: committed) is appended to ``acks.jsonl`` at
once; failures go to the same file as errors. After the failover, `analyse` compares the
acknowledged writes with the rows present on the new primary:

- lost writes: acknowledged but absent (RPO; with asynchronous replication a suffix);
- RTO: the first acknowledged write after the fault.

The writer runs detached (own session), its PID in the run's scratch directory, so the
teardown task stops it whatever happened (and the next run's cleanup if a worker died).
Run: ``python -m drdrill.core.canary --out DIR --run-id ID --url URL [--url URL] --interval-ms 100``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from drdrill.core import httpjson

log = logging.getLogger(__name__)

ACKS = "acks.jsonl"
PIDFILE = "canary.pid"
TABLE_SQL = """
CREATE SCHEMA IF NOT EXISTS drdrill;
CREATE TABLE IF NOT EXISTS drdrill.canary_writes (run_id text NOT NULL, seq bigint NOT NULL,
  committed_at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (run_id, seq));
"""


# ------------------------------------------------------------------ the writer process
def write_loop(out: Path, run_id: str, urls: list[str], interval: float, timeout: float,
               max_seconds: float = 3600) -> None:
    """Write until SIGTERM or ``max_seconds``; one JSON line per attempt, flushed before the next.

    The lifetime is bounded so that a writer whose run died (and whose teardown never came, or ran
    on another worker) stops writing into production by itself.
    """
    stop = False

    def on_term(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    seq = 0
    ends = time.monotonic() + max_seconds
    with (out / ACKS).open("a", buffering=1) as f:
        while not stop and time.monotonic() < ends:
            seq += 1
            t0 = time.time()
            url = urls[seq % len(urls)]
            code, body = httpjson.call(url, timeout=timeout, body={"run_id": run_id, "seq": seq})
            if code != 200 and len(urls) > 1:  # a replica down is not a database failure: try the other
                url = urls[(seq + 1) % len(urls)]
                code, body = httpjson.call(url, timeout=timeout, body={"run_id": run_id, "seq": seq})
            rec: dict[str, Any] = {"seq": seq, "sent_at": t0, "done_at": time.time(), "url": url}
            if code == 200 and body.get("ok"):
                rec.update(ok=True, committed_at=body.get("committed_at"), db=body.get("db"))
            else:
                rec.update(ok=False, code=code, error=str(body.get("error", body))[:300])
            f.write(json.dumps(rec) + "\n")
            time.sleep(max(0.0, interval - (time.time() - t0)))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m drdrill.core.canary", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--run-id", required=True)
    ap.add_argument("--url", action="append", required=True, help="write endpoint (repeat per replica)")
    ap.add_argument("--interval-ms", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--max-seconds", type=float, default=3600, help="stop writing after this long, whatever happens")
    a = ap.parse_args(argv)
    write_loop(a.out, a.run_id, a.url, a.interval_ms / 1000.0, a.timeout, a.max_seconds)


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


def start(workdir: Path, run_id: str, urls: list[str], *, interval_ms: int, timeout: float,
          max_seconds: float = 3600) -> int:
    """Start the writer detached; returns its PID (also in ``workdir/canary.pid``).

    It stops by itself after ``max_seconds`` even if nobody tears it down.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    pidfile = workdir / PIDFILE
    if pidfile.exists() and is_running(workdir):
        raise RuntimeError(f"a canary writer already runs for {workdir}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                                      os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", "drdrill.core.canary", "--out", str(workdir), "--run-id", run_id,
            "--interval-ms", str(interval_ms), "--timeout", str(timeout), "--max-seconds", str(max_seconds)]
    for u in urls:
        argv += ["--url", u]
    with (workdir / "canary.log").open("ab") as errlog:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=errlog, stderr=errlog,
                                start_new_session=True, env=env)
    pidfile.write_text(str(proc.pid))
    log.info("canary writer started (pid %s): a write every %s ms through %s, for at most %.0fs", proc.pid,
             interval_ms, urls, max_seconds)
    return proc.pid


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
    """Stop the writer of ``workdir`` (SIGTERM, then SIGKILL); True when one was running."""
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


def records(workdir: Path) -> list[dict[str, Any]]:
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
    main()
