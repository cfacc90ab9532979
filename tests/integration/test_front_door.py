"""The sandbox's front door, measured: HAProxy in front of three demo-service replicas (one per zone),
the customer probe at 20 requests/s through it. Losing a replica (SIGKILL, restarted by supervisord)
or a whole zone's replica (stopped) costs no request (one measured exception: a request the killed
replica had not read yet, see `_no_error_but_unread_resets`); the same kill behind an HAProxy without
retries does; a reload of HAProxy loses none. Real servers throughout: HAProxy, supervisord, the
replicas, PostgreSQL, moto's Route53."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from drdrill.core.httpjson import call
from drdrill.core.probe import CustomerProbe
from drdrill.sandbox import _pid_alive
from integration.test_demo_service import _point_record_at, _until

pytestmark = pytest.mark.sandbox

RATE = 20
BACKEND = "web_replicas"


@pytest.fixture(scope="module")
def front(sandbox) -> str:
    """The front door, with every replica UP behind it."""
    sandbox.haproxy.wait()
    return sandbox.front_door("web")


def _running_pid(sandbox, name: str) -> int | None:
    prog = sandbox.supervised().get(name, {})
    return prog.get("pid") if prog.get("state") == "RUNNING" else None


def _replaced_and_up(sandbox, name: str, url: str, old_pid: int):
    """A fresh process answers the replica's /health with 200 and HAProxy sees the replica UP."""
    code, body = call(url + "/health", timeout=1)
    fresh = code == 200 and body.get("pid") not in (None, old_pid)
    return fresh and sandbox.haproxy.servers()[BACKEND].get(name) == "UP", body.get("pid"), code


def _served_by_front(front: str, tries: int = 9) -> set[int]:
    """PIDs of the replicas that answered /health through the front door (round robin reaches each)."""
    return {call(front + "/health", timeout=2)[1].get("pid") for _ in range(tries)}


def _kill_one_under_probe(sandbox, front: str, name: str) -> tuple[dict, int, list]:
    """SIGKILL replica ``name`` while the probe runs through the front door; probe until supervisord
    restarted it and HAProxy sees it UP, then one more second. Returns (report, new PID, the errors
    HAProxy logged meanwhile)."""
    url = dict((n, u) for n, u, _p in sandbox.replicas())[name]
    pid = _running_pid(sandbox, name)
    assert pid, sandbox.supervised()
    since = time.time()
    with CustomerProbe(front, run_id=f"front-{uuid.uuid4().hex}", rate=RATE, timeout=2) as probe:
        time.sleep(1)
        probe.mark("during")
        os.kill(pid, signal.SIGKILL)
        _ok, new_pid, _code = _until(f"{name} replaced (new PID answering /health) and UP in HAProxy",
                                     lambda: _replaced_and_up(sandbox, name, url, pid), timeout=30, interval=0.05)
        probe.mark("after")
        time.sleep(1)
    return probe.report(), new_pid, sandbox.haproxy.logged(since)


def _no_error_but_unread_resets(report: dict, logged: list, name: str) -> None:
    """0 customer-visible errors: a refused connection, a close without answer and a request the killed
    replica had accepted but not read (reset by the kernel; HAProxy holds the whole request with
    ``option http-buffer-request`` and sends it again) are all retried on another replica."""
    assert report["total"]["errors"] == 0 and logged == [], (report["total"], logged)


def test_a_killed_replica_costs_no_request_through_the_front_door(sandbox, front):
    name = "service-2"
    report, new_pid, logged = _kill_one_under_probe(sandbox, front, name)
    assert report["before"]["errors"] == report["after"]["errors"] == 0, report
    _no_error_but_unread_resets(report, logged, name)
    # The probe kept its rate through the two one-second periods around the kill; "during" lasts only
    # as long as the replacement takes (0.4 s on a fast run), so it is not held to a count.
    assert report["during"]["requests"] > 0, report
    assert report["before"]["requests"] >= RATE * 0.8 and report["after"]["requests"] >= RATE * 0.8, report
    # The replacement really serves customers again through HAProxy.
    assert new_pid in _served_by_front(front), new_pid
    assert sandbox.problems() == []


def test_every_acknowledged_write_through_the_front_door_is_committed_exactly_once(sandbox, front):
    """Retries include POSTs on empty-response: the demo service's write is idempotent by (run_id, seq)."""
    run_id = f"front-{uuid.uuid4().hex}"
    name = "service-3"
    pid = _running_pid(sandbox, name)
    since = time.time()
    with CustomerProbe(front, run_id=run_id, rate=RATE, timeout=2) as probe:
        time.sleep(0.5)
        os.kill(pid, signal.SIGKILL)
        url = dict((n, u) for n, u, _p in sandbox.replicas())[name]
        _until(f"{name} back", lambda: _replaced_and_up(sandbox, name, url, pid), timeout=30, interval=0.05)
        time.sleep(0.5)
    rep = probe.report()
    logged = sandbox.haproxy.logged(since)
    _no_error_but_unread_resets(rep, logged, name)
    unacknowledged_writes = sum(r.request.startswith("POST") for r in logged)
    code, body = call(f"{front}/read?run_id={run_id}", timeout=5)
    # Every acknowledged write is there once; a write reset unread was never applied.
    assert code == 200 and body["count"] == (rep["total"]["requests"] + 1) // 2 - unacknowledged_writes, (
        body, rep["total"], logged)
    # The same write sent again (what a retry does) is acknowledged with its first commit, not written twice.
    first = call(front + "/write", timeout=5, body={"run_id": run_id, "seq": 0})
    again = call(front + "/write", timeout=5, body={"run_id": run_id, "seq": 0})
    assert first[0] == again[0] == 200 and again[1]["replayed"] is True, (first, again)
    assert again[1]["committed_at"] == first[1]["committed_at"]
    assert call(f"{front}/read?run_id={run_id}", timeout=5)[1]["count"] == body["count"]


@pytest.fixture
def without_retries(sandbox, front) -> Iterator[int]:
    """HAProxy reloaded (by PID, no request lost) with retries and redispatch off; the normal config is
    put back afterwards, whatever happened."""
    before = sandbox.haproxy.pid()
    try:
        pid = sandbox.haproxy.reload(retries=False)
        assert pid != before and "retries 0" in sandbox.haproxy.config.read_text()
        yield pid
    finally:
        sandbox.haproxy.reload(retries=True)
        assert "retry-on conn-failure empty-response" in sandbox.haproxy.config.read_text()


def test_without_retries_the_same_kill_is_seen_by_customers(sandbox, front, without_retries):
    report, _new_pid, logged = _kill_one_under_probe(sandbox, front, "service-1")
    assert report["before"]["errors"] == 0, report["before"]
    assert report["during"]["errors"] > 0, report["during"]
    # HAProxy's own answer: the replica refused the connection and nothing retried elsewhere.
    assert {e["status"] for e in report["during"]["error_examples"]} <= {502, 503}, report["during"]
    assert report["after"]["errors"] == 0, report["after"]
    assert any(r.status == 503 and r.term == "SC--" for r in logged), logged  # refused, not retried
    assert sandbox.haproxy.pid() == without_retries


def _supervisorctl(sandbox, *args: str) -> str:
    res = subprocess.run([sandbox._bin("supervisorctl"), "-c", str(sandbox.layout.supervisor_conf), *args],
                         capture_output=True, text=True, timeout=30)
    return res.stdout + res.stderr


def test_a_whole_zone_stopped_costs_no_request_and_comes_back(sandbox, front):
    zone_a = [n for n, z in sandbox.services.zones().items() if z == "a"]
    assert zone_a == ["service-1"]
    try:
        with CustomerProbe(front, run_id=f"front-{uuid.uuid4().hex}", rate=RATE, timeout=2) as probe:
            time.sleep(1)
            probe.mark("during")
            assert "service-1: stopped" in _supervisorctl(sandbox, "stop", "service-1")
            _until("HAProxy sees service-1 DOWN", lambda: sandbox.haproxy.servers()[BACKEND]["service-1"] == "DOWN",
                   timeout=10, interval=0.05)
            time.sleep(1)  # customers are served by zones b and c meanwhile
            probe.mark("restarted")
            assert "service-1: started" in _supervisorctl(sandbox, "start", "service-1")
            _until("HAProxy sees service-1 UP", lambda: sandbox.haproxy.servers()[BACKEND]["service-1"] == "UP",
                   timeout=10, interval=0.05)
            probe.mark("after")
            time.sleep(1)
    finally:
        if _running_pid(sandbox, "service-1") is None:
            _supervisorctl(sandbox, "start", "service-1")
    report = probe.report()
    for period in ("before", "during", "restarted", "after"):
        assert report[period]["errors"] == 0, (period, report[period])
    assert report["during"]["requests"] >= RATE * 0.8, report["during"]
    assert _running_pid(sandbox, "service-1") in _served_by_front(front)


def test_a_degraded_database_keeps_every_replica_in_the_load_balancer(sandbox, front):
    """/health answers 503 while the record leads to the read-only standby: HAProxy's check accepts it, so
    customers get the replicas' own answer (and get served at once when the database is back), never an
    empty backend."""
    primary, standby = sandbox.cluster.primary, sandbox.cluster.standbys[0]
    try:
        _point_record_at(sandbox, standby)
        _until("the replicas degraded behind the standby",
               lambda: all(call(u + "/health", timeout=2)[0] == 503 for _n, u, _p in sandbox.replicas()), timeout=20)
        time.sleep(1.5)  # three check intervals and more: a failing check would have taken them out by now
        assert set(sandbox.haproxy.servers()[BACKEND].values()) == {"UP"}, sandbox.haproxy.servers()
        code, body = call(front + "/health", timeout=2)
        assert code == 503 and body["status"] == "degraded" and body["db"] == standby.dns_name, body
    finally:
        _point_record_at(sandbox, primary)
    _until("the front door healthy again", lambda: call(front + "/health", timeout=2)[0] == 200, timeout=20)
    assert set(sandbox.haproxy.servers()[BACKEND].values()) == {"UP"}


def test_a_reload_loses_no_request(sandbox, front):
    """The new HAProxy takes the listening sockets over (-x) and the old one finishes what it holds (-sf)."""
    since = time.time()
    with CustomerProbe(front, run_id=f"front-{uuid.uuid4().hex}", rate=RATE, timeout=2) as probe:
        time.sleep(0.5)
        pids = [sandbox.haproxy.pid()]
        for _ in range(2):
            pids.append(sandbox.haproxy.reload())
        time.sleep(0.5)
    rep = probe.report()
    assert rep["total"]["errors"] == 0, (rep["total"], sandbox.haproxy.logged(since))
    assert len(set(pids)) == 3 and sandbox.haproxy.pid() == pids[-1]
    assert not any(_pid_alive(p) for p in pids[:-1])
