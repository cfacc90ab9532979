"""The sandbox: status through the CLI, idempotent bring-up, rebuild when a part died."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from drdrill.sandbox import _pid_alive, postmaster_pid

pytestmark = pytest.mark.sandbox


def _status() -> tuple[int, dict]:
    res = subprocess.run([sys.executable, "-m", "drdrill.sandbox", "status", "--json"], capture_output=True,
                         text=True, timeout=120)
    return res.returncode, json.loads(res.stdout)


def test_status_shows_servers_pids_and_backups_per_repo(sandbox):
    rc, st = _status()
    assert rc == 0 and st["problems"] == []
    by_name = {s["name"]: s for s in st["servers"]}
    assert by_name["pg1"]["state"] == "read-write" and by_name["pg2"]["state"] == "in recovery"
    assert all(_pid_alive(s["pid"]) for s in st["servers"])
    assert {"supervisord", "service-1", "service-2", "service-3", "haproxy"} <= set(by_name)
    assert by_name["service-1"]["state"].startswith("ok, db pg1.")
    assert [by_name[f"service-{i}"]["zone"] for i in (1, 2, 3)] == ["a", "b", "c"]
    front = by_name["haproxy"]
    assert (front["port"], front["url"], front["state"]) == (55600, sandbox.front_door(), "3/3 replicas UP")
    assert front["pid"] == sandbox.haproxy.pid() and front["config"] == str(sandbox.haproxy.config)
    assert st["dns"]["record"] == sandbox.dns.record and st["dns"]["value"] == sandbox.cluster.primary.dns_name
    kinds = {(b["repo"], b["type"]) for b in st["backups"]}
    assert {(1, "full"), (2, "full"), (1, "diff"), (2, "diff")} <= kinds


def test_up_is_a_no_op_when_healthy(sandbox):
    before = postmaster_pid(sandbox.cluster.primary.data_dir)
    sandbox.up()
    assert postmaster_pid(sandbox.cluster.primary.data_dir) == before


def _supervised_processes(root: Path) -> set[int]:
    """PIDs of supervisord, demo service and HAProxy processes of this sandbox (by their command line)."""
    found = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(root) in cmd and ("supervisord" in cmd or "service.py" in cmd or "haproxy" in cmd) and _pid_alive(
                    int(d.name)):
                found.add(int(d.name))
    return found


def _app_pids(st: dict) -> set[int]:
    """PIDs of supervisord, the replicas and HAProxy as status shows them."""
    names = ("supervisord", "haproxy")
    return {s["pid"] for s in st["servers"] if s["name"] in names or s["name"].startswith("service-")}


def test_up_rebuilds_when_a_server_died(sandbox):
    standby = sandbox.cluster.standbys[0]
    sandbox.pg.run([str(sandbox.bin / "pg_ctl"), "-D", str(standby.data_dir), "-m", "immediate", "-w", "stop"],
                   timeout=60)
    rc, st = _status()
    assert rc == 1 and st["problems"] == ["pg2 not running"]
    old = _app_pids(st)
    assert len(old) == 5 and old == _supervised_processes(sandbox.layout.root)
    sandbox.up()  # down (supervisord and its replicas stopped by PID first), then a fresh build
    rc, st = _status()
    assert rc == 0 and st["problems"] == [], st
    new = _app_pids(st)
    assert not any(_pid_alive(p) for p in old)  # stopped by their recorded PIDs
    assert len(new) == 5 and _supervised_processes(sandbox.layout.root) == new
