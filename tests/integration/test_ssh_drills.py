"""The restore test and the failover drill end to end through the SSH runner.

The estate is the sandbox's, with every runner of kind ``ssh`` (`Sandbox.ssh`): a connection per
node (``sandbox_ssh_pg1``, ``sandbox_ssh_pg2``) and one for the backup host
(``sandbox_ssh_backup``), all served by a real sshd on loopback whose forced command records
which connection ran which command. The assertions read that record: a command that ran through
a local process, or through another node's connection, would not be there.
"""

from __future__ import annotations

import json
import logging

import pytest
from tests.integration.helpers import failures, journal, postgres_processes_under, run_dag, scratch_dirs

from drdrill.core.estate import load_estate
from drdrill.core.polling import wait_until
from drdrill.core.runner import SSHRunner
from drdrill.hooks import postgres as pg

pytestmark = pytest.mark.sandbox


@pytest.fixture
def home(sandbox):
    """pg1 primary, pg2 streaming, nothing left over (rebuilt if not): requested before ``ssh_estate``,
    whose keys a rebuild would remove."""
    from tests.integration.test_failover import assert_home

    try:
        assert_home(load_estate())
    except Exception:  # noqa: BLE001 - a broken estate is rebuilt rather than failing this test
        sandbox.down()
        sandbox.up()
        assert_home(load_estate())


@pytest.fixture
def ssh_estate(sandbox, monkeypatch):
    """DRDRILL_ESTATE -> the sandbox estate with SSH runners; the SSH connections in the environment."""
    f = sandbox.layout.root / "estate-ssh.yaml"
    for k, v in sandbox.ssh(f).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("DRDRILL_ESTATE", str(f))
    yield load_estate()
    SSHRunner.close_all()


def commands(sandbox, name: str, since: int = 0) -> list[str]:
    """What sshd ran for connection ``sandbox_ssh_<name>``, the runner's wrapper cut off."""
    return [c.split(" -s KILL ", 1)[1].split(" ", 1)[1] for c in sandbox.sshd.recorded_commands(name)[since:]]


def marks(sandbox) -> dict[str, int]:
    return {n: len(sandbox.sshd.recorded_commands(n)) for n in ("pg1", "pg2", "backup", "sandbox")}


def streaming_from(estate, primary: str) -> list[str]:
    c = estate.cluster("main")
    n = c.node(primary)
    with pg.connect(c, n.host, n.port, "postgres") as conn:
        return [r[0] for r in pg.query(conn, "SELECT application_name FROM pg_stat_replication "
                                             "WHERE state = 'streaming'")]


def test_every_runner_of_the_ssh_estate_is_ssh(ssh_estate):
    c = ssh_estate.cluster("main")
    assert c.runner.kind == "ssh" and c.backup_runner.ssh_conn_id == "sandbox_ssh_backup"
    assert [c.runner_of(n).ssh_conn_id for n in c.nodes] == ["sandbox_ssh_pg1", "sandbox_ssh_pg2"]


def test_restore_test_restores_and_runs_the_scratch_server_through_ssh(dagbag, sandbox, ssh_estate, caplog):
    caplog.set_level(logging.INFO, logger="drdrill.core.runner")
    before = marks(sandbox)
    dr = run_dag(dagbag, "dr_monthly_restore_test", {"repo": 1, "recovery_point": "pitr"})
    doc = journal(ssh_estate, "dr_monthly_restore_test", dr.run_id)
    assert dr.state == "success", failures(doc)
    assert doc["results"] and all(r["status"] == "pass" for r in doc["results"])
    sc = doc["scratch"]["dir"]
    ran = commands(sandbox, "backup", before["backup"])
    # Through the backup host's connection: the preflight's info, the restore into the scratch
    # directory, the scratch server's start and its stop at teardown.
    assert any(c.startswith("pgbackrest ") and c.endswith(" info") and "--repo=1" in c for c in ran), ran
    assert any(c.startswith("pgbackrest ") and c.endswith(" restore") and f"--pg1-path={sc}/data" in c
               for c in ran), ran
    assert any("/pg_ctl -D " + f"{sc}/data" in c and c.endswith(" start") for c in ran), ran
    assert any("/pg_ctl -D " + f"{sc}/data -m immediate" in c and c.endswith(" stop") for c in ran), ran
    # Nothing of the restore test ran on the nodes' connections, and the runner said where it ran.
    after = marks(sandbox)
    assert after["pg1"] == before["pg1"] and after["pg2"] == before["pg2"]
    assert "run on sandbox_ssh_backup: pgbackrest" in caplog.text
    assert scratch_dirs(ssh_estate) == [] and postgres_processes_under(ssh_estate.scratch.root) == []


def test_failover_drill_kills_and_rewinds_each_node_through_its_own_connection(dagbag, sandbox, home, ssh_estate):
    assert ssh_estate.cluster("main").primary.name == "pg1"
    before = marks(sandbox)
    dr = run_dag(dagbag, "dr_quarterly_failover_drill", {"fault": "kill", "scope": "node"})
    doc = journal(ssh_estate, "dr_quarterly_failover_drill", dr.run_id)
    assert dr.state == "success", failures(doc)
    assert doc["status"] == "passed" and doc["failover"]["fault"]["action"] == "kill -9"
    m = doc["measurements"]
    assert 0 < m["rto_seconds"] <= m["rto_target_seconds"] and m["canary"]["failed_attempts"] >= 1
    c = ssh_estate.cluster("main")
    pg1_data, pg2_data = str(c.node("pg1").data_dir), str(c.node("pg2").data_dir)
    on_pg1, on_pg2 = commands(sandbox, "pg1", before["pg1"]), commands(sandbox, "pg2", before["pg2"])
    # The fault: kill -9 of pg1's postmaster, sent through pg1's connection, never pg2's.
    assert any("/pg_ctl kill KILL " in x for x in on_pg1), on_pg1
    assert not any("/pg_ctl kill KILL " in x for x in on_pg2), on_pg2
    # Stabilize: the old primary pg1 rewound from pg2 and started, on pg1's host.
    assert any(f"/pg_rewind -D {pg1_data} --source-server " in x and "port=55433" in x for x in on_pg1), on_pg1
    assert any(f"/pg_ctl -D {pg1_data} -l " in x and x.endswith(" start") for x in on_pg1), on_pg1
    # Failback: pg2 stopped cleanly, read and rewound from pg1, on pg2's host.
    assert any(f"/pg_ctl -D {pg2_data} -m fast " in x and x.endswith(" stop") for x in on_pg2), on_pg2
    assert any(f"/pg_controldata -D {pg2_data}" in x for x in on_pg2), on_pg2
    assert any(f"/pg_rewind -D {pg2_data} --source-server " in x and "port=55432" in x for x in on_pg2), on_pg2
    # Every command on a node's data directory went through that node's connection.
    assert not any(pg2_data in x for x in on_pg1) and not any(pg1_data in x for x in on_pg2)
    # pgBackRest's archive check on the new primary: through the backup host's connection.
    assert any(x.startswith("pgbackrest ") and x.endswith(" check")
               for x in commands(sandbox, "backup", before["backup"]))
    # Home again: pg1 primary, pg2 streaming from it.
    assert load_estate().cluster("main").primary.name == "pg1"
    assert wait_until(lambda: "pg2" in streaming_from(ssh_estate, "pg1"), timeout=30, what="pg2 streaming")


def test_the_cli_exports_the_ssh_estate_and_its_connections_without_a_key(sandbox):
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "drdrill.sandbox", "ssh"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    names = {line.split("=", 1)[0].removeprefix("export ") for line in res.stdout.splitlines()}
    assert {"DRDRILL_ESTATE", "AIRFLOW_CONN_SANDBOX_SSH", "AIRFLOW_CONN_SANDBOX_SSH_PG1",
            "AIRFLOW_CONN_SANDBOX_SSH_PG2", "AIRFLOW_CONN_SANDBOX_SSH_BACKUP"} <= names
    assert "PRIVATE KEY" not in res.stdout + res.stderr  # the key's path only, never the key
    assert '"host_key": "ssh-ed25519 ' in res.stdout
    st = subprocess.run([sys.executable, "-m", "drdrill.sandbox", "status", "--json"], capture_output=True,
                        text=True, timeout=120)
    sshd = [s for s in json.loads(st.stdout)["servers"] if s["name"] == "sshd"]
    assert sshd and sshd[0]["state"] == "running" and sshd[0]["pid"] == sandbox.sshd.pid()
