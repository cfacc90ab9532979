"""`python -m drdrill estate check` and the drills' first task, against the real sandbox.

Each broken estate is the sandbox estate with one thing wrong, written to a temporary file: the
check must fail that one thing, say what it found and name the fix, and touch nothing.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from drdrill.drills.estatecheck import check_estate
from integration.helpers import failures, journal, run_dag

pytestmark = pytest.mark.sandbox
ROOT = Path(__file__).resolve().parents[2]
SANDBOX_ESTATE = ROOT / "include" / "estate" / "sandbox.yaml"


def estate_file(tmp_path: Path, change=None) -> Path:
    raw = yaml.safe_load(SANDBOX_ESTATE.read_text())
    raw = copy.deepcopy(raw)
    if change:
        change(raw["clusters"][0])
    path = tmp_path / "estate.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def failed(results) -> dict[str, str]:
    return {f"{r.name} [{r.target}]": r.message for r in results if r.failed}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "drdrill", "estate", "check", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ})


def test_the_sandbox_estate_passes_every_check_from_the_command_line(sandbox):
    res = cli(str(SANDBOX_ESTATE))
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[-1].startswith("all ") and lines[-1].endswith(" checks passed"), res.stdout
    for name in ("estate_file", "connection", "postgres_login", "node_role", "runner", "pgbackrest_info",
                 "repo_reachable", "dns", "store"):
        assert any(line.startswith(f"PASS {name} ") for line in lines), f"{name} missing:\n{res.stdout}"
    # read-only and quiet: no command log lines, one line per check
    assert not any(" run: " in line for line in lines), res.stdout


def test_an_unreachable_host_fails_naming_the_address_and_the_fix(sandbox, tmp_path):
    def dead_standby(c):
        c["nodes"][1]["port"] = 55498  # nothing listens there

    res = cli(str(estate_file(tmp_path, dead_standby)))
    assert res.returncode == 1, res.stdout
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("FAIL postgres_login [main/pg2]"))
    assert "127.0.0.1:55498 does not answer" in line and "Fix: check that pg2 runs and listens" in line, line
    assert res.stdout.splitlines()[-1].startswith("1 of "), res.stdout
    # the primary is still checked and passes: one broken node does not hide the others
    assert "PASS postgres_login [main/pg1]" in res.stdout


def test_a_connection_that_is_not_defined_fails_with_the_command_that_creates_it(sandbox, tmp_path):
    def missing_conn(c):
        c["postgres"]["conn_id"] = "pg_not_defined_anywhere"

    results = check_estate(estate_file(tmp_path, missing_conn))
    bad = failed(results)
    assert list(bad) == ["connection [connection pg_not_defined_anywhere]"], bad
    msg = bad["connection [connection pg_not_defined_anywhere]"]
    assert "clusters[main].postgres names connection 'pg_not_defined_anywhere', which is not defined" in msg
    assert "Fix: airflow connections add pg_not_defined_anywhere --conn-type postgres" in msg


def test_a_malformed_file_fails_before_anything_is_asked(tmp_path):
    path = tmp_path / "estate.yaml"
    path.write_text(SANDBOX_ESTATE.read_text().replace("rpo_minutes: 5", "rpo_minutes: soon"))
    results = check_estate(path)
    assert [r.name for r in results] == ["estate_file"] and results[0].failed
    assert "clusters[main].targets.rpo_minutes" in results[0].message, results[0].message


def test_a_service_record_that_does_not_exist_fails_the_dns_check(sandbox, tmp_path):
    def wrong_record(c):
        c["failover"]["dns"]["record"] = "nothing-here.sandbox.drdrill.internal"

    bad = failed(check_estate(estate_file(tmp_path, wrong_record)))
    assert list(bad) == ["dns [main/nothing-here.sandbox.drdrill.internal]"], bad
    assert "has no CNAME record nothing-here.sandbox.drdrill.internal" in next(iter(bad.values()))


def test_a_drill_stops_at_its_estate_check_and_journals_why(dagbag, estate, sandbox, tmp_path, monkeypatch):
    """The daily verification's first task fails on a missing connection; no check runs after it."""
    def missing_conn(c):
        c["failover"]["dns"]["conn_id"] = "aws_not_defined_anywhere"

    monkeypatch.setenv("DRDRILL_ESTATE", str(estate_file(tmp_path, missing_conn)))
    dr = run_dag(dagbag, "dr_daily_verification")
    assert dr.state == "failed"
    doc = journal(estate, "dr_daily_verification", dr.run_id)
    steps = {s["task_id"]: s for s in doc["steps"]}
    assert steps["estate_check"]["status"] == "failed", failures(doc)
    assert "aws_not_defined_anywhere" in steps["estate_check"]["error"]
    assert "select_clusters" not in steps or steps["select_clusters"].get("status") != "success"
    assert any(r["name"] == "connection" and r["status"] == "fail" for r in doc["results"]), doc["results"]
