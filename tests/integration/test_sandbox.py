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
    assert {"supervisord", "service-1", "service-2"} <= set(by_name)
    assert by_name["service-1"]["state"].startswith("ok, db pg1.")
    assert st["dns"]["record"] == sandbox.dns.record and st["dns"]["value"] == sandbox.cluster.primary.dns_name
    kinds = {(b["repo"], b["type"]) for b in st["backups"]}
    assert {(1, "full"), (2, "full"), (1, "diff"), (2, "diff")} <= kinds


def test_up_is_a_no_op_when_healthy(sandbox):
    before = postmaster_pid(sandbox.cluster.primary.data_dir)
    sandbox.up()
    assert postmaster_pid(sandbox.cluster.primary.data_dir) == before


def _supervised_processes(root: Path) -> set[int]:
    """PIDs of supervisord and demo service processes of this sandbox (by their command line)."""
    found = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(root) in cmd and ("supervisord" in cmd or "service.py" in cmd) and _pid_alive(int(d.name)):
                found.add(int(d.name))
    return found


def test_up_rebuilds_when_a_server_died(sandbox):
    standby = sandbox.cluster.standbys[0]
    sandbox.pg.run([str(sandbox.bin / "pg_ctl"), "-D", str(standby.data_dir), "-m", "immediate", "-w", "stop"],
                   timeout=60)
    rc, st = _status()
    assert rc == 1 and st["problems"] == ["pg2 not running"]
    old = {s["pid"] for s in st["servers"] if s["name"] == "supervisord" or s["name"].startswith("service-")}
    assert len(old) == 3 and old == _supervised_processes(sandbox.layout.root)
    sandbox.up()  # down (supervisord and its replicas stopped by PID first), then a fresh build
    rc, st = _status()
    assert rc == 0 and st["problems"] == [], st
    new = {s["pid"] for s in st["servers"] if s["name"] == "supervisord" or s["name"].startswith("service-")}
    assert not any(_pid_alive(p) for p in old)
    assert len(new) == 3 and _supervised_processes(sandbox.layout.root) == new
