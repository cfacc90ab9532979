"""The canary writer: RPO/RTO analysis of its records, and the real writer process against a local endpoint."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from drdrill.core import canary
from drdrill.core.polling import wait_until

T0 = 1_775_000_000.0  # 2026-03-31T23:33:20Z; one write every 100 ms from here


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def _ack(seq: int, t: float) -> dict:
    """An acknowledged write as the writer records it: sent at t, committed 5 ms later, answered 10 ms later."""
    return {"seq": seq, "sent_at": t, "done_at": t + 0.010, "url": "http://127.0.0.1:1/write", "ok": True,
            "committed_at": _iso(t + 0.005), "db": "pg"}


def _err(seq: int, t: float) -> dict:
    return {"seq": seq, "sent_at": t, "done_at": t + 2.0, "url": "http://127.0.0.1:1/write", "ok": False,
            "code": 0, "error": "URLError: <urlopen error [Errno 111] Connection refused>"}


def _at(seq: int) -> float:
    return T0 + 0.1 * seq


# ------------------------------------------------------------------ analyse
def test_no_loss_measures_the_outage_and_the_first_write_after_the_fault():
    # 1-5 acknowledged, fault between 5 and 6, 6-10 fail, 11-14 acknowledged by the new primary.
    fault_at = _at(5) + 0.05
    recs = ([_ack(s, _at(s)) for s in range(1, 6)] + [_err(s, _at(s)) for s in range(6, 11)]
            + [_ack(s, _at(s)) for s in range(11, 15)])
    present = set(range(1, 6)) | set(range(11, 15))
    r = canary.analyse(recs, present, fault_at)
    assert (r.attempts, r.acknowledged, r.failed_attempts, r.acked_before_fault) == (14, 9, 5, 5)
    assert r.lost == [] and r.gap_seconds is None and r.loss_window_seconds == 0.0
    assert r.first_lost_committed_at is None and r.last_lost_committed_at is None
    assert r.first_ack_after_fault == pytest.approx(_at(11) + 0.010)
    assert r.last_ack_before_fault == pytest.approx(_at(5) + 0.010)
    assert r.endpoint_down_seconds == pytest.approx(_at(11) - _at(5), abs=0.001)


def test_failed_attempts_are_never_counted_as_lost():
    recs = [_ack(1, _at(1)), _err(2, _at(2)), _err(3, _at(3)), _ack(4, _at(4))]
    r = canary.analyse(recs, {1, 4}, _at(2))
    assert r.lost == [] and r.failed_attempts == 2


def test_acknowledged_writes_missing_on_the_new_primary_are_lost():
    # Asynchronous replication: 7 and 8 were acknowledged by the old primary but never reached the standby.
    recs = [_ack(s, _at(s)) for s in range(1, 9)]
    r = canary.analyse(recs, set(range(1, 7)), _at(8) + 0.05)
    assert r.lost == [7, 8]
    assert r.last_surviving_seq == 6
    assert r.last_surviving_committed_at == _iso(_at(6) + 0.005)
    assert r.first_lost_committed_at == _iso(_at(7) + 0.005)
    assert r.last_lost_committed_at == _iso(_at(8) + 0.005)
    assert r.gap_seconds == pytest.approx(0.1, abs=0.001)  # last surviving -> first lost
    assert r.loss_window_seconds == pytest.approx(0.2, abs=0.001)  # last surviving -> last lost
    assert r.first_ack_after_fault is None and r.endpoint_down_seconds is None


def test_lost_writes_are_measured_when_the_canary_keeps_writing_after_the_failover():
    # What measure() really sees: the writer runs until stop_canary, after verify, so the new primary holds
    # this run's writes from after the failover too (13-15).
    fault_at = _at(8) + 0.05
    recs = ([_ack(s, _at(s)) for s in range(1, 9)] + [_err(s, _at(s)) for s in range(9, 13)]
            + [_ack(s, _at(s)) for s in range(13, 16)])
    present = set(range(1, 7)) | set(range(13, 16))
    r = canary.analyse(recs, present, fault_at)
    assert r.lost == [7, 8]
    assert r.last_surviving_seq == 6
    assert r.gap_seconds == pytest.approx(0.1, abs=0.001)
    assert r.loss_window_seconds == pytest.approx(0.2, abs=0.001)


def test_every_acknowledged_write_lost_measures_from_the_first_lost_one():
    recs = [_ack(s, _at(s)) for s in range(1, 5)]
    r = canary.analyse(recs, set(), _at(4) + 0.05)
    assert r.lost == [1, 2, 3, 4] and r.last_surviving_seq is None and r.gap_seconds is None
    assert r.loss_window_seconds == pytest.approx(0.3, abs=0.001)


def test_report_dict_counts_every_lost_write_but_lists_at_most_200():
    recs = [_ack(s, _at(s)) for s in range(1, 301)]
    d = canary.analyse(recs, {1}, _at(301)).to_dict()
    assert d["lost_count"] == 299 and d["lost"] == list(range(2, 202))
    json.dumps(d)  # goes into the journal as is


# ------------------------------------------------------------------ records
def test_records_skip_a_line_cut_by_a_kill(tmp_path):
    lines = [json.dumps(_ack(1, _at(1))), json.dumps(_err(2, _at(2))), '{"seq": 3, "sent_at": 17750000']
    (tmp_path / canary.ACKS).write_text("\n".join(lines))
    assert [r["seq"] for r in canary.records(tmp_path)] == [1, 2]


def test_records_of_a_writer_that_never_wrote(tmp_path):
    assert canary.records(tmp_path) == []


# ------------------------------------------------------------------ the writer process, for real
class _Endpoint(BaseHTTPRequestHandler):
    """The demo service's write endpoint, reduced to its answer."""

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        if self.server.failing:
            code, out = 503, {"ok": False, "error": "database is down"}
        else:
            self.server.seen.append(body)
            code, out = 200, {"ok": True, "committed_at": datetime.now(UTC).isoformat(), "db": "x"}
        data = json.dumps(out).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    srv.seen, srv.failing = [], False
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/write"
    yield srv
    srv.shutdown()
    srv.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(cond, what: str, timeout: float = 60):
    """Poll until cond() is truthy (a wait, not a timing assertion: only 'never' fails)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = cond()
        if out:
            return out
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


@pytest.fixture
def writers():
    """PIDs of writers a test started; killed at the end if the test left one running."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_writer_appends_acknowledged_writes_and_stops(tmp_path, endpoint, writers):
    workdir = tmp_path / "run"
    pid = canary.start(workdir, "manual__t1", [endpoint.url], interval_ms=20, timeout=2)
    writers.append(pid)
    assert int((workdir / canary.PIDFILE).read_text()) == pid
    _wait_for(lambda: len([r for r in canary.records(workdir) if r.get("ok")]) >= 5, "5 acknowledged writes")
    assert canary.is_running(workdir)
    with pytest.raises(RuntimeError, match="already runs"):
        canary.start(workdir, "manual__t1", [endpoint.url], interval_ms=20, timeout=2)

    assert canary.stop(workdir) is True
    assert _gone(pid) and not canary.is_running(workdir)
    assert canary.stop(workdir) is False  # nothing left to stop

    recs = canary.records(workdir)
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    assert all(r["ok"] and r["db"] == "x" and r["url"] == endpoint.url and r["committed_at"] for r in recs)
    assert all(b["run_id"] == "manual__t1" for b in endpoint.seen)
    # Every write the endpoint acknowledged was committed: nothing lost.
    assert canary.analyse(recs, {b["seq"] for b in endpoint.seen}, recs[0]["sent_at"]).lost == []


def test_writer_records_failures_then_recovers(tmp_path, endpoint, writers):
    endpoint.failing = True
    workdir = tmp_path / "run"
    writers.append(canary.start(workdir, "manual__t2", [endpoint.url], interval_ms=20, timeout=2))
    _wait_for(lambda: len(canary.records(workdir)) >= 3, "3 failed attempts")
    endpoint.failing = False
    _wait_for(lambda: any(r.get("ok") for r in canary.records(workdir)), "an acknowledged write")
    assert canary.stop(workdir)
    recs = canary.records(workdir)
    first_ok = next(i for i, r in enumerate(recs) if r["ok"])
    assert first_ok >= 3
    assert all(r["code"] == 503 and "database is down" in r["error"] for r in recs[:first_ok])


def test_a_replica_that_is_down_is_bypassed(tmp_path, endpoint, writers):
    dead = f"http://127.0.0.1:{_free_port()}/write"
    workdir = tmp_path / "run"
    writers.append(canary.start(workdir, "manual__t3", [dead, endpoint.url], interval_ms=20, timeout=2))
    _wait_for(lambda: len(canary.records(workdir)) >= 6, "6 attempts")
    assert canary.stop(workdir)
    recs = canary.records(workdir)
    assert all(r["ok"] and r["url"] == endpoint.url for r in recs), recs


def _sleeper(*argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", *argv])


@pytest.mark.parametrize("who", ["this test process", "a process naming the workdir",
                                 "a canary-like process of another workdir"])
def test_stop_never_signals_a_process_that_is_not_this_workdirs_writer(tmp_path, who):
    workdir = tmp_path / "run"
    workdir.mkdir()
    proc = None
    if who == "this test process":
        pid = os.getpid()
    elif who == "a process naming the workdir":
        proc = _sleeper("--out", str(workdir))
        pid = proc.pid
    else:
        proc = _sleeper("drdrill.core.canary", "--out", str(tmp_path / "other"))
        pid = proc.pid
    try:
        (workdir / canary.PIDFILE).write_text(str(pid))  # a stale PID file, the PID since reused
        assert canary.is_running(workdir) is False
        assert canary.stop(workdir) is False
        assert proc is None or proc.poll() is None
    finally:
        if proc:
            proc.kill()
            proc.wait()


def test_a_writer_of_a_workdir_sharing_the_prefix_is_not_ours(tmp_path, endpoint, writers):
    other = tmp_path / "run10"
    pid = canary.start(other, "manual__t4", [endpoint.url], interval_ms=50, timeout=2)
    writers.append(pid)
    try:
        mine = tmp_path / "run1"
        mine.mkdir()
        (mine / canary.PIDFILE).write_text(str(pid))
        assert canary.is_running(mine) is False
    finally:
        canary.stop(other)


def test_a_writer_nobody_stops_stops_by_itself(tmp_path, endpoint, writers):
    workdir = tmp_path / "run-orphan"
    pid = canary.start(workdir, "manual__t9", [endpoint.url], interval_ms=20, timeout=2, max_seconds=2)
    writers.append(pid)
    wait_until(lambda: canary.records(workdir), timeout=15, interval=0.05, what="the writer's first write")
    wait_until(lambda: not canary.is_running(workdir), timeout=15, interval=0.1, what="the writer to stop")
    wrote = [r for r in canary.records(workdir) if r.get("ok")]
    assert wrote and max(r["sent_at"] for r in wrote) - min(r["sent_at"] for r in wrote) < 2.5


# ------------------------------------------------------------------ state every worker reads
@pytest.fixture
def store(tmp_path):
    from drdrill.core.estate import State

    return State(location=f"file://{tmp_path}/state")


def test_writes_and_stop_control_go_through_the_state_store(tmp_path, endpoint, writers, store):
    """What another worker sees: no PID file, no local acks; only the state store."""
    workdir = tmp_path / "worker-a" / "run"
    pid = canary.start(workdir, "manual__s1", [endpoint.url], interval_ms=20, timeout=2, store=store,
                       meta={"dag_id": "d"})
    writers.append(pid)
    run = canary.shared(store, "manual__s1")
    assert run.writer()["pid"] == pid and run.writer()["dag_id"] == "d" and run.writer()["ends_at"]
    _wait_for(lambda: len([r for r in run.records() if r.get("ok")]) >= 5, "5 acknowledged writes, published")
    out = canary.stop_shared(store, "manual__s1", by="a test on worker b", wait=15)
    assert out["stopped"] is True and out["confirmed"] is True and out["reason"] == (
        "stop requested through the state store"), out
    _wait_for(lambda: _gone(pid), "the writer to exit")
    recs = run.records()  # complete: every attempt up to the last, checked against `stopped`
    assert [r["seq"] for r in recs] == list(range(1, out["attempts"] + 1))
    assert recs == canary.records(workdir)  # the same as the writer's local copy
    assert canary.stop_shared(store, "manual__s1", by="again", wait=1)["confirmed"] is True
    run.remove()
    assert not run.dir.exists()


def test_stop_of_a_run_that_started_no_writer(store):
    assert canary.stop_shared(store, "manual__none", by="t", wait=1) == {
        "stopped": False, "reason": "no canary writer was started for this run"}


def test_a_state_store_that_cannot_be_written_starts_no_writer(tmp_path, endpoint, writers):
    from drdrill.core.errors import DrillError
    from drdrill.core.estate import State

    (tmp_path / "blocker").write_text("a file where the state directory should be")
    bad = State(location=f"file://{tmp_path}/blocker/state")
    workdir = tmp_path / "run"
    with pytest.raises(DrillError, match="cannot be written.*no canary was started"):
        canary.start(workdir, "manual__s2", [endpoint.url], interval_ms=20, timeout=2, store=bad)
    assert not (workdir / canary.PIDFILE).exists() and endpoint.seen == []


def test_a_writer_that_cannot_publish_stops_writing(tmp_path, endpoint, writers, store):
    workdir = tmp_path / "run"
    pid = canary.start(workdir, "manual__s3", [endpoint.url], interval_ms=20, timeout=2, store=store,
                       publish_seconds=0.1, publish_grace=1)
    writers.append(pid)
    run = canary.shared(store, "manual__s3")
    _wait_for(lambda: run.records(), "the first published writes")
    import shutil

    shutil.rmtree(run.dir)
    run.dir.write_text("the store is gone")  # every publish fails from now on
    _wait_for(lambda: _gone(pid), "the writer to stop by itself", timeout=20)
    seen = len(endpoint.seen)
    time.sleep(0.3)
    assert len(endpoint.seen) == seen, "it kept writing into production"
    assert "could not publish its writes to the state store" in (workdir / canary.LOGFILE).read_text()


def test_corrupt_or_incomplete_canary_state_is_an_error(store):
    from drdrill.core.errors import DrillError

    run = canary.shared(store, "manual__s4")
    run.publish(1, [_ack(1, _at(1)), _ack(2, _at(2))])
    run.publish(2, [_ack(3, _at(3))])
    assert [r["seq"] for r in run.records()] == [1, 2, 3]
    run.publish(3, [_ack(3, _at(3)), _ack(4, _at(4))])  # a batch published again after a "failed" PUT
    assert [r["seq"] for r in run.records()] == [1, 2, 3, 4]
    run.mark_stopped({"reason": "t", "attempts": 5})
    with pytest.raises(DrillError, match=r"lacks 1 of the writer's 5 attempts \(seq \[5\]"):
        run.records()
    (run.dir / "acks-00000004.jsonl").write_text('{"seq": 5, "sent_at": 17\n')
    with pytest.raises(DrillError, match="acks-00000004.jsonl is corrupt at line 1"):
        canary.shared(store, "manual__s4").records()
    (run.dir / canary.STOPPED).write_text("{not json")
    with pytest.raises(DrillError, match="stopped is corrupt"):
        run.stopped()


def test_leftover_canary_state_of_other_runs(store):
    now = time.time()
    done = canary.shared(store, "manual__done")
    done.write_writer({"run_id": "manual__done", "pid": 1, "ends_at": now + 600})
    done.mark_stopped({"reason": "t", "attempts": 0})
    dead = canary.shared(store, "manual__dead")
    dead.write_writer({"run_id": "manual__dead", "pid": 2, "ends_at": now + 600})
    live = canary.shared(store, "manual__live")
    live.write_writer({"run_id": "manual__live", "pid": 3, "ends_at": now + 600})
    old = canary.shared(store, "manual__old")
    old.write_writer({"run_id": "manual__old", "pid": 4, "ends_at": now - 3600})
    mine = canary.shared(store, "manual__mine")
    mine.write_writer({"run_id": "manual__mine", "pid": 5, "ends_at": now + 600})
    canary.stop_leftovers(store, "manual__mine", is_active=lambda w: w["run_id"] == "manual__live")
    assert not done.dir.exists() and not old.dir.exists()  # stopped, or past its lifetime: removed
    assert dead.stop_requested() and dead.dir.exists()  # its writer, wherever it runs, is told to stop
    assert not live.stop_requested() and not mine.stop_requested()
