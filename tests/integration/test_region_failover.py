"""The region failover drill (scope ``region``) end to end on the sandbox: region a (pg1, pg2, repo1) is lost,
pg3 in region b comes back from repo2 alone (cold: restored by the drill; warm: a standby replaying repo2),
RTO per phase and RPO measured, the primary region rebuilt from pg3 and the original topology restored.

Real PostgreSQL 15, pgBackRest (repo2 on moto's S3 over TLS), Route53 on moto, the demo service behind
its record; dag.test() runs the DAG.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tests.integration.helpers import failures, journal, run_dag, step
from tests.integration.test_failover import assert_home, cluster, estate_with, in_recovery, postmaster

from drdrill.core.estate import load_estate
from drdrill.drills.failover import region

DRILL = "dr_quarterly_failover_drill"


def pg3_data() -> Path:
    return cluster().dr.node.data_dir


def assert_region_home(estate, *, warm: bool = False) -> None:
    """pg1 primary with pg2 streaming, the record on pg1; pg3 absent (cold) or replaying repo2 (warm)."""
    assert_home(estate)
    assert region.read_record(estate, "main") is None
    if warm:
        assert in_recovery("pg3")
    else:
        assert postmaster("pg3") is None and not pg3_data().exists()


@pytest.fixture
def region_home(sandbox, estate):
    """Each test starts from the region drill's home; a broken sandbox is rebuilt."""
    try:
        assert_region_home(estate)
    except Exception:  # noqa: BLE001
        sandbox.down()
        sandbox.up()
        assert_region_home(estate)
    yield estate
    try:
        assert_region_home(load_estate())
    except Exception:  # noqa: BLE001 - the next test must not inherit a half-failed-over estate
        sandbox.down()
        sandbox.up()


def test_region_drill_cold_recovers_from_repo2_alone_measures_and_fails_back(dagbag, region_home):
    killed = {n: postmaster(n) for n in ("pg1", "pg2")}
    dr = run_dag(dagbag, DRILL, {"scope": "region", "fault": "kill"})
    doc = journal(region_home, DRILL, dr.run_id)
    assert dr.state == "success", failures(doc)
    assert doc["status"] == "passed"
    assert doc["plan"]["scope"] == "region" and doc["plan"]["standby"] == "pg3"
    # The whole primary region was killed, the standby first; pg3 was restored from repo2 with the DR config.
    fault = doc["failover"]["fault"]
    assert [a["node"] for a in fault["nodes"]] == ["pg2", "pg1"] and fault["action"].startswith("kill of region a")
    assert all(postmaster(n) != pid for n, pid in killed.items()), "a node of region a was never killed"
    restore = step(doc, "failover.restore")
    assert restore["status"] == "success"
    m = doc["measurements"]
    reg = m["region"]
    assert reg["restore"]["repo"] == 2 and reg["restore"]["seconds"] > 0
    # RTO per phase, and it adds up to the measured RTO.
    phases = reg["rto_phases_seconds"]
    assert set(phases) == {"restore", "replay", "promote", "wait_writable", "dns", "first_write"}
    assert all(v is not None and v >= 0 for v in phases.values()), phases
    assert abs(sum(phases.values()) - m["rto_seconds"]) < 0.01
    assert 0 < m["rto_seconds"] <= m["rto_target_seconds"]
    # RPO: what repo2 did not hold is lost, inside the target; the window and repo2's lag are in the journal.
    assert m["rpo_seconds"] <= m["rpo_target_seconds"]
    assert reg["dr_repo_lag_at_fault"]["known"] and reg["recovered_to_lsn"] and reg["primary_lsn_at_fault"]
    assert reg["lost_window"]["writes"] == m["lost_writes"]
    assert m["canary"]["failed_attempts"] >= 1
    assert {"rto", "rpo", "canary_no_holes", "dr_repo_full_backup_age", "dr_repo_archive_lag",
            "dr_node_port_free", "dr_node_dir_free", "archive_round_trip", "write_test"} <= {
        r["name"] for r in doc["results"]}
    assert doc["failover"]["dns"]["to"] == "pg3.sandbox.drdrill.internal"
    # Failback: pg1 primary again, pg2 streaming, pg3 gone (cold), a backup to every repo.
    fb = doc["failback"]["new_standby"]
    assert [b["repo"] for b in fb["backups"]] == [1, 2]
    assert fb["dr_node"]["removed"] == str(pg3_data())
    assert_region_home(region_home)
    # The drill's "healed" nothing: nothing was left by an earlier run.
    assert "healed" not in doc["plan"]
    tl = Path(doc["attachments"]["timeline.md"].removeprefix("file://")).read_text()
    assert "`failover.restore` success" in tl


def test_repo2_without_a_full_backup_fails_assess_and_nothing_is_stopped(dagbag, region_home, tmp_path,
                                                                          monkeypatch):
    # The DR config names a repo2 path where no stanza exists: as if repo2 had never received a backup.
    cfg = Path(cluster().dr.pgbackrest_config)
    empty = tmp_path / "pgbackrest-dr-empty.conf"
    empty.write_text(cfg.read_text().replace("repo2-path=/pgbackrest", "repo2-path=/nothing-here"))
    empty.chmod(0o644)
    estate_with(tmp_path, monkeypatch, ("pgbackrest_config: ${DRDRILL_SANDBOX_DIR}/pgbackrest/pgbackrest-dr.conf",
                                        f"pgbackrest_config: {empty}"))
    before = {n: postmaster(n) for n in ("pg1", "pg2")}
    t0 = time.time()
    dr = run_dag(dagbag, DRILL, {"scope": "region"})
    doc = journal(load_estate(), DRILL, dr.run_id)
    assert dr.state == "failed"
    probe = step(doc, "assess.probe")
    assert probe["status"] == "failed" and "repo2" in probe["error"] and "full backup" in probe["error"]
    assert step(doc, "failover.inject_fault")["status"] == "not run"
    assert {n: postmaster(n) for n in ("pg1", "pg2")} == before, "a node was touched"
    assert not pg3_data().exists()
    assert time.time() - t0 < 300
