"""dr_daily_verification end to end on the real sandbox."""

from __future__ import annotations

import json

import pytest

from integration.helpers import assert_no_secret_in, corrupted_newest_full, failures, journal, run_dag

pytestmark = pytest.mark.sandbox
DAG = "dr_daily_verification"


def test_healthy_estate_passes_and_journals_every_check(dagbag, estate, sandbox, capfd, caplog):
    dr = run_dag(dagbag, DAG)
    doc = journal(estate, DAG, dr.run_id)
    out, err = capfd.readouterr()
    assert_no_secret_in(sandbox, out, err, caplog.text, json.dumps(doc))
    assert dr.state == "success", failures(doc)
    assert doc["status"] == "passed"
    names = {r["name"] for r in doc["results"]}
    for expected in ("archive_round_trip", "stanza_status", "repo_status", "backup_age.full", "backup_age.diff",
                     "backup_errors", "wal_archive_range", "verify", "wal_archive_lag", "archive_failures",
                     "wal_ready_files", "standby_in_recovery", "standby_streaming", "replication_lag_bytes",
                     "replication_lag_seconds"):
        assert expected in names, f"{expected} missing from {sorted(names)}"
    # Both repos were verified and aged.
    assert {r["target"] for r in doc["results"] if r["name"] == "verify"} == {"main/repo1", "main/repo2"}
    assert all(s["status"] == "success" for s in doc["steps"]), doc["steps"]


def test_corrupted_backup_file_fails_naming_the_backup(dagbag, estate):
    with corrupted_newest_full(estate) as label:
        dr = run_dag(dagbag, DAG)
    doc = journal(estate, DAG, dr.run_id)
    assert dr.state == "failed"
    assert doc["status"] == "failed"
    failed = [r for r in doc["results"] if r["status"] == "fail"]
    assert [r["name"] for r in failed] == ["verify"], failures(doc)
    assert failed[0]["target"] == "main/repo1"
    assert label in failed[0]["message"]
    # The other repo is still reported healthy: the failure is specific.
    assert any(r["name"] == "verify" and r["target"] == "main/repo2" and r["status"] == "pass"
               for r in doc["results"])


def test_stopped_standby_fails_replication_with_reason(dagbag, estate, sandbox):
    from drdrill.sandbox import postmaster_pid

    cluster = estate.cluster("main")
    standby = cluster.standbys[0]
    sandbox.pg.run([str(cluster.postgres.bin_dir / "pg_ctl"), "-D", str(standby.data_dir), "-m", "fast", "-w",
                    "stop"], timeout=60)
    try:
        dr = run_dag(dagbag, DAG)
    finally:
        sandbox._start_pg(standby)
    assert postmaster_pid(standby.data_dir)
    doc = journal(estate, DAG, dr.run_id)
    assert dr.state == "failed"
    failed = {(r["name"], r["target"]) for r in doc["results"] if r["status"] == "fail"}
    assert failed == {("replication", "main/pg2")}, failures(doc)
    assert "could not run" in failures(doc) and "55433" in failures(doc)


def test_unknown_cluster_param_fails_before_any_check(dagbag, estate):
    dr = run_dag(dagbag, DAG, {"clusters": ["nope"]})
    doc = journal(estate, DAG, dr.run_id)
    assert dr.state == "failed"
    assert "unknown cluster 'nope'" in failures(doc) and "main" in failures(doc)
    assert doc["results"] == [] or all(r["name"].startswith("step.") for r in doc["results"])
    assert set(doc["not_run"]) == {"backup_repository", "backup_integrity", "wal_archiving", "replication"}
