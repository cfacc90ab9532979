"""The sandbox: status through the CLI, idempotent bring-up, rebuild when a part died."""

from __future__ import annotations

import json
import subprocess
import sys

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
    kinds = {(b["repo"], b["type"]) for b in st["backups"]}
    assert {(1, "full"), (2, "full"), (1, "diff"), (2, "diff")} <= kinds


def test_up_is_a_no_op_when_healthy(sandbox):
    before = postmaster_pid(sandbox.cluster.primary.data_dir)
    sandbox.up()
    assert postmaster_pid(sandbox.cluster.primary.data_dir) == before


def test_up_rebuilds_when_a_server_died(sandbox):
    standby = sandbox.cluster.standbys[0]
    sandbox.pg.run([str(sandbox.bin / "pg_ctl"), "-D", str(standby.data_dir), "-m", "immediate", "-w", "stop"],
                   timeout=60)
    rc, st = _status()
    assert rc == 1 and st["problems"] == ["pg2 not running"]
    sandbox.up()
    rc, st = _status()
    assert rc == 0 and st["problems"] == [], st
