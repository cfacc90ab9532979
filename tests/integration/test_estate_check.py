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
                 "repo_reachable", "dns", "store", "dr_pgbackrest_config", "dr_pgbackrest_info"):
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


def test_a_dr_config_that_names_the_lost_regions_repo_fails_naming_the_fix(sandbox, tmp_path):
    def dr_on_the_main_config(c):
        c["dr"]["pgbackrest_config"] = c["pgbackrest"]["config"]  # names repo1 and repo2

    bad = failed(check_estate(estate_file(tmp_path, dr_on_the_main_config)))
    assert list(bad) == ["dr_pgbackrest_config [main/pg3]"], bad
    msg = bad["dr_pgbackrest_config [main/pg3]"]
    assert "names repo(s) [1, 2]" in msg and "must name repo2 (the DR region's) and nothing else" in msg


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


@pytest.fixture
def ssh_estate_file(sandbox, monkeypatch):
    """The sandbox estate with every runner through the sandbox's real sshd (a connection per host)."""
    from drdrill.core.runner import SSHRunner

    f = sandbox.layout.root / "estate-ssh.yaml"
    for k, v in sandbox.ssh(f).items():
        monkeypatch.setenv(k, v)
    yield f
    SSHRunner.close_all()


def test_an_estate_behind_sshd_passes_and_each_host_is_asked_through_its_own_connection(sandbox, ssh_estate_file):
    before = {n: len(sandbox.sshd.recorded_commands(n)) for n in ("pg1", "pg2", "backup")}
    results = check_estate(ssh_estate_file)
    assert not failed(results), failed(results)
    runners = {r.target: r.message for r in results if r.name == "runner"}
    assert "through the ssh connection 'sandbox_ssh_pg1'" in runners["main/pg1"], runners
    assert "through the ssh connection 'sandbox_ssh_pg2'" in runners["main/pg2"], runners
    assert "through the ssh connection 'sandbox_ssh_backup'" in runners["main/pgbackrest"], runners
    # sshd's own record: each host was really asked through its connection
    for name, cmd in (("pg1", "pg_ctl --version"), ("pg2", "pg_ctl --version"), ("backup", "pgbackrest version"),
                      ("backup", "info")):
        assert any(cmd in c for c in sandbox.sshd.recorded_commands(name)[before[name]:]), (name, cmd)


def test_an_ssh_host_that_does_not_answer_fails_naming_its_connection(sandbox, ssh_estate_file, monkeypatch):
    import json

    var = "AIRFLOW_CONN_SANDBOX_SSH_PG2"
    conn = json.loads(os.environ[var])
    monkeypatch.setenv(var, json.dumps({**conn, "port": 55497}))  # nothing listens there
    bad = failed(check_estate(ssh_estate_file))
    assert list(bad) == ["runner [main/pg2]"], bad
    msg = bad["runner [main/pg2]"]
    assert "sandbox_ssh_pg2" in msg and "Fix: check pg2's runner" in msg, msg


def test_a_wrong_password_fails_the_login_naming_the_connection_and_never_shows_it(sandbox, monkeypatch):
    import json

    var = "AIRFLOW_CONN_PG_SANDBOX"
    conn = json.loads(os.environ[var])
    monkeypatch.setenv(var, json.dumps({**conn, "password": "not-the-password-7f3a"}))
    results = check_estate(SANDBOX_ESTATE)
    bad = failed(results)
    # pg1 uses the cluster's connection; pg2 has its own (TLS) and still logs in
    assert list(bad) == ["postgres_login [main/pg1]"], bad
    msg = bad["postgres_login [main/pg1]"]
    assert "127.0.0.1:55432 is up but password authentication failed" in msg, msg
    assert "Fix: correct the login and password of Airflow connection 'pg_sandbox'" in msg, msg
    text = json.dumps([r.to_dict() for r in results])
    assert "not-the-password-7f3a" not in text and conn["password"] not in text
