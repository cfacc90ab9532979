"""dr_daily_verification end to end on the real sandbox."""

from __future__ import annotations

import json

import pytest

from integration.helpers import as_superuser, assert_no_secret_in, corrupted_newest_full, failures, journal, run_dag
from notify_servers import (  # noqa: F401 - fixtures
    NOTIFICATIONS_YAML,
    assert_failure_notified,
    connections,
    endpoints,
    notify_endpoints,
    smtp_inbox,
)

pytestmark = [pytest.mark.sandbox,
              pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")]
DAG = "dr_daily_verification"


@pytest.fixture(autouse=True)
def _a_restore_test_passed(passed_restore_test):
    """The scorecard's '0' needs a restore test that passed within 35 days: the session's shared one."""


def test_healthy_estate_passes_and_journals_every_check(dagbag, estate, sandbox, capfd, caplog, passed_restore_test):
    from drdrill.assets import backups_verified_uri
    from integration.assethelpers import EXAMPLE, asset_events, example_scheduled_and_unpaused, queued

    example_scheduled_and_unpaused()  # a user's DAG scheduled on main's backups-verified Asset
    dr = run_dag(dagbag, DAG)
    doc = journal(estate, DAG, dr.run_id)
    out, err = capfd.readouterr()
    assert_no_secret_in(sandbox, out, err, caplog.text, json.dumps(doc))
    assert dr.state == "success", failures(doc)
    assert doc["status"] == "passed"
    names = {r["name"] for r in doc["results"]}
    for expected in ("repo_reachable", "archive_round_trip", "stanza_status", "repo_status", "backup_age.full",
                     "backup_age.diff", "backup_errors", "wal_archive_range", "wal_archive_continuity", "verify",
                     "wal_archive_lag", "archive_failures",
                     "wal_ready_files", "standby_in_recovery", "standby_streaming", "replication_lag_bytes",
                     "replication_lag_seconds", "pitr_window", "object_lock_config", "object_lock_delete_probe",
                     "scorecard", "scorecard.copies", "scorecard.media", "scorecard.offsite", "scorecard.immutable",
                     "scorecard.errors"):
        assert expected in names, f"{expected} missing from {sorted(names)}"
    # Each repo can recover any second since its oldest backup; the sandbox's target is seconds (it is young).
    windows = {r["target"]: r for r in doc["results"] if r["name"] == "pitr_window"}
    assert set(windows) == {"main/repo1", "main/repo2"} and all(w["value"] >= w["threshold"] for w in windows.values())
    # 3-2-1-1-0, each digit with its evidence: pg1, repo1 (disk, region a), repo2 (S3 in region b under Object
    # Lock COMPLIANCE), verify clean and the session's restore test passed.
    card = {r["name"]: r for r in doc["results"] if r["name"].startswith("scorecard")}
    assert card["scorecard"]["value"] == "3-2-1-1-0", card["scorecard"]["message"]
    assert "repo2 (s3) in region b" in card["scorecard.offsite"]["message"]
    assert "repo2 (s3): " in card["scorecard.immutable"]["message"] and "COMPLIANCE" in \
        card["scorecard.immutable"]["message"]
    assert card["scorecard.errors"]["details"]["last_restore_test"]["run_id"] == passed_restore_test[0].run_id
    # Both repos were verified and aged.
    assert {r["target"] for r in doc["results"] if r["name"] == "verify"} == {"main/repo1", "main/repo2"}
    # repo2's bucket is the immutable copy (S3 Object Lock COMPLIANCE): its checks ran in the object_lock task.
    lock = {r["name"]: r["status"] for r in doc["results"] if r["target"] == "object_lock/repo2-bucket"}
    assert lock == {"object_lock_config": "pass", "object_lock_retention": "pass",
                    "object_lock_delete_probe": "pass"}, lock
    assert all(s["status"] == "success" for s in doc["steps"]), doc["steps"]
    # main's backups are verified: its Asset got an event from this run (through the alias), and the DAG
    # scheduled on it is queued to run (Airflow's AssetDagRunQueue, what the scheduler turns into a run).
    uri = backups_verified_uri("sandbox", "main")
    assert doc["backups_verified"] == ["main"]
    mine = [e for e in asset_events(uri) if e["run_id"] == dr.run_id]
    assert mine == [{"dag_id": DAG, "run_id": dr.run_id, "extra": {"run_id": dr.run_id, "cluster": "main"},
                     "aliases": ["drdrill-backups-verified"]}], mine
    assert queued(EXAMPLE, uri)


def test_corrupted_backup_file_fails_naming_the_backup(dagbag, estate, passed_restore_test):
    with corrupted_newest_full(estate) as label:
        dr = run_dag(dagbag, DAG)
    doc = journal(estate, DAG, dr.run_id)
    assert dr.state == "failed"
    assert doc["status"] == "failed"
    failed = [r for r in doc["results"] if r["status"] == "fail" and not r["name"].startswith("scorecard")]
    assert [r["name"] for r in failed] == ["verify"], failures(doc)
    assert failed[0]["target"] == "main/repo1"
    assert label in failed[0]["message"]
    # The scorecard loses its '0', naming the backup.
    card = {r["name"]: r for r in doc["results"] if r["name"].startswith("scorecard")}
    assert card["scorecard.errors"]["status"] == "fail" and label in card["scorecard.errors"]["message"]
    assert card["scorecard"]["value"] == "3-2-1-1-1" and card["scorecard"]["status"] == "fail"
    # The other repo is still reported healthy: the failure is specific.
    assert any(r["name"] == "verify" and r["target"] == "main/repo2" and r["status"] == "pass"
               for r in doc["results"])


def test_a_segment_missing_from_the_middle_of_repo1_fails_naming_it_and_the_lost_window(dagbag, estate):
    import shutil

    from drdrill.hooks.pgbackrest import PgBackRestHook

    cluster = estate.cluster("main")
    info = [s for s in PgBackRestHook.for_cluster(cluster).info() if s.name == "main"][0]
    start = info.oldest(1).wal_start
    archive = estate.scratch.root.parent / "pgbackrest" / "repo1" / "archive" / "main"
    # The segment right after the oldest backup's start: every PITR from that backup needs it.
    victim_name = f"{start[:16]}{int(start[16:], 16) + 1:08X}"
    victim = next(archive.rglob(f"{victim_name}-*"))
    aside = victim.parent.parent / f"aside-{victim.name}"
    shutil.move(victim, aside)
    try:
        dr = run_dag(dagbag, DAG)
    finally:
        shutil.move(aside, victim)
    doc = journal(estate, DAG, dr.run_id)
    assert dr.state == "failed"
    failed = [r for r in doc["results"] if r["status"] == "fail"]
    cont = [r for r in failed if r["name"] == "wal_archive_continuity"]
    assert [r["target"] for r in cont] == ["main/repo1"], failures(doc)
    assert f"missing WAL segment {victim_name}" in cont[0]["message"]
    assert cont[0]["details"]["lost_from"] and cont[0]["details"]["lost_to"]
    # repo2 holds that segment: its archive is reported continuous.
    assert any(r["name"] == "wal_archive_continuity" and r["target"] == "main/repo2" and r["status"] == "pass"
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
    assert failed == {("replication", "main/pg2")}, failures(doc)  # a standby is not a backup copy: 3-2-1-1-0 holds
    assert "could not run" in failures(doc) and "55433" in failures(doc)


def test_repo2_endpoint_hung_fails_repo2_at_once_and_every_other_check_passes(dagbag, estate, sandbox, tmp_path,
                                                                               monkeypatch):
    # repo2's endpoint accepts TCP and never answers (in a copy of pgbackrest.conf: WAL archiving
    # keeps the real one). The run gives repo2's verdict from the probes, runs no pgBackRest command
    # on repo2, and checks repo1, WAL archiving and replication as on any day.
    from drdrill.core.paths import DEFAULT_ESTATE
    from drdrill.sandbox import faults

    cluster = estate.cluster("main")
    conf = cluster.pgbackrest.config.with_name("test-dag-dead-repo2.conf")
    with faults.dead_endpoint("hung") as (port, hole):
        try:
            faults.conf_with_repo_port(cluster, 2, port, conf)
            f = tmp_path / "estate.yaml"
            f.write_text(faults.estate_with_config(DEFAULT_ESTATE.read_text(),
                                                   "${DRDRILL_SANDBOX_DIR}/pgbackrest/pgbackrest.conf", conf))
            monkeypatch.setenv("DRDRILL_ESTATE", str(f))
            dr = run_dag(dagbag, DAG)
        finally:
            conf.unlink(missing_ok=True)
        accepted = hole.accepted
    doc = journal(estate, DAG, dr.run_id)
    assert dr.state == "failed" and doc["status"] == "failed"
    assert _failed(doc) == {("repo_reachable", "main/repo2"), ("archive_round_trip", "main"),
                            ("verify", "main/repo2")}, failures(doc)
    # repo2 unreached is no copy: the offsite and immutable copy are gone, and verify did not run on it.
    assert _score(doc) == "2-1-0-0-1"
    assert f"repo2: S3 endpoint https://localhost:{port} did not answer within 3 s" in failures(doc)
    assert accepted == 2  # the two probes; pgBackRest never connected
    passed = {(r["name"], r["target"]) for r in doc["results"] if r["status"] == "pass"}
    assert {("verify", "main/repo1"), ("wal_archive_continuity", "main/repo1"), ("backup_age.full", "main/repo1"),
            ("archive_failures", "main/pg1"), ("standby_streaming", "main/pg2")} <= passed
    assert not [r for r in doc["results"] if r["target"] == "main/repo2" and r["name"] not in ("repo_reachable",
                                                                                               "verify")]
    assert all(s["status"] == "success" for s in doc["steps"] if s["task_id"] != "journal"), doc["steps"]


def test_unknown_cluster_param_fails_before_any_check(dagbag, estate):
    dr = run_dag(dagbag, DAG, {"clusters": ["nope"]})
    doc = journal(estate, DAG, dr.run_id)
    assert dr.state == "failed"
    assert "unknown cluster 'nope'" in failures(doc) and "main" in failures(doc)
    # No cluster was checked; the backup systems' tasks (backups:, e.g. object_lock/repo2-bucket) do not
    # depend on the cluster selection and still ran.
    assert all(r["name"].startswith("step.") or r["target"].split("/")[0] in ("velero", "aws_backup", "object_lock")
               for r in doc["results"]), doc["results"]
    assert set(doc["not_run"]) == {"backup_repository", "backup_integrity", "wal_archiving", "replication"}


def _estate_with(tmp_path, monkeypatch, old: str, new: str, extra: str = "") -> None:
    from drdrill.core.paths import DEFAULT_ESTATE

    text = DEFAULT_ESTATE.read_text()
    assert old in text
    f = tmp_path / "estate.yaml"
    f.write_text(text.replace(old, new) + extra)
    monkeypatch.setenv("DRDRILL_ESTATE", str(f))


def _failed(doc) -> set[tuple[str, str]]:
    """The failed checks, without the scorecard's (each test that changes the score asserts it)."""
    return {(r["name"], r["target"]) for r in doc["results"] if r["status"] == "fail"
            and not r["name"].startswith("scorecard")}


def _score(doc) -> str:
    return next(r["value"] for r in doc["results"] if r["name"] == "scorecard")


def test_backups_older_than_the_target_fail_on_every_repo(dagbag, estate, tmp_path, monkeypatch,  # noqa: F811
                                                          smtp_inbox, endpoints, caplog, capfd):  # noqa: F811
    """Also the failure notifications end to end (the same run, tests/notify_servers.py): the journal task's
    callback sends the failure to the estate's notifications: channels (a real SMTP server, an HTTP(S) endpoint
    standing in for Slack and PagerDuty), and main, whose checks failed, gets no backups-verified event."""
    import logging

    from drdrill.assets import backups_verified_uri
    from integration.assethelpers import asset_events

    caplog.set_level(logging.INFO)
    connections(monkeypatch, smtp_port=smtp_inbox[0], slack_url=endpoints[0].url, pagerduty_url=endpoints[1].url)
    _estate_with(tmp_path, monkeypatch, "max_backup_age_hours: {full: 192, diff: 36}",
                 "max_backup_age_hours: {full: 0.0001, diff: 36}", extra=NOTIFICATIONS_YAML)
    before = asset_events(backups_verified_uri("sandbox", "main"))
    dr = run_dag(dagbag, DAG)
    doc = journal(estate, DAG, dr.run_id)
    assert dr.state == "failed"
    assert _failed(doc) == {("backup_age.full", "main/repo1"), ("backup_age.full", "main/repo2")}
    assert "exceeds the target of 0.0001h" in failures(doc)
    assert _score(doc).startswith("1-1-0-0-")  # no repo holds a backup inside its age target: only pg1
    failed = [line for line in doc["failures"] if line.startswith("FAIL backup_age.full ")]
    assert len(failed) == 2
    out, err = capfd.readouterr()
    assert_failure_notified(doc, smtp_inbox[1], *endpoints, failed=failed, texts=[caplog.text, out, err,
                                                                                  json.dumps(doc)])
    assert doc["backups_verified"] == [] and asset_events(backups_verified_uri("sandbox", "main")) == before
    assert next(s for s in doc["steps"] if s["task_id"] == "backups_verified")["status"] == "success"


@pytest.fixture
def replay_paused(estate, sandbox):
    """The standby stops replaying while the primary writes about 2 MB of WAL."""
    c = estate.cluster("main")
    standby, primary = c.standbys[0], c.primary
    as_superuser(sandbox, standby, "SELECT pg_wal_replay_pause()")
    as_superuser(sandbox, primary,
                 "CREATE TABLE app.lag_probe AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 8000) g")
    yield
    as_superuser(sandbox, standby, "SELECT pg_wal_replay_resume()")
    as_superuser(sandbox, primary, "DROP TABLE app.lag_probe")


def test_replication_lag_over_the_limit_fails_naming_the_standby(dagbag, estate, replay_paused, tmp_path,
                                                                 monkeypatch):
    _estate_with(tmp_path, monkeypatch, "max_replication_lag_bytes: 16777216", "max_replication_lag_bytes: 65536")
    dr = run_dag(dagbag, DAG)
    doc = journal(estate, DAG, dr.run_id)
    assert dr.state == "failed"
    assert _failed(doc) == {("replication_lag_bytes", "main/pg2")}, failures(doc)
    lag = next(r for r in doc["results"] if r["name"] == "replication_lag_bytes")
    assert lag["value"] > 65536 and lag["threshold"] == 65536


@pytest.fixture
def archiving_broken(estate, sandbox):
    """archive_command fails on the primary (e.g. a repo unreachable), then is put back."""
    from drdrill.core.polling import wait_until
    from drdrill.hooks import postgres as pg

    c = estate.cluster("main")
    p = c.primary
    as_superuser(sandbox, p, "ALTER SYSTEM SET archive_command = 'false'")
    as_superuser(sandbox, p, "SELECT pg_reload_conf()")
    as_superuser(sandbox, p, "INSERT INTO app.audit_log(event) VALUES ('archiving broken on purpose')")
    as_superuser(sandbox, p, "SELECT pg_switch_wal()")
    with pg.connect(c, p.host, p.port) as conn:
        wait_until(lambda: pg.query_one(conn, "SELECT failed_count > 0 AND last_failed_time > "
                                                 "coalesce(last_archived_time, 'epoch') FROM pg_stat_archiver")[0],
                      timeout=60, what="the archiver to fail")
    yield
    as_superuser(sandbox, p, "ALTER SYSTEM RESET archive_command")
    as_superuser(sandbox, p, "SELECT pg_reload_conf()")
    with pg.connect(c, p.host, p.port) as conn:
        wait_until(lambda: pg.query_one(conn, "SELECT count(*) = 0 FROM pg_ls_archive_statusdir() "
                                                 "WHERE name LIKE '%.ready'")[0], timeout=120,
                      what="the archiver to catch up")


def test_broken_archiving_fails_the_round_trip_and_the_archiver_check(dagbag, estate, archiving_broken):
    dr = run_dag(dagbag, DAG)
    doc = journal(estate, DAG, dr.run_id)
    assert dr.state == "failed"
    failed = _failed(doc)
    assert ("archive_failures", "main/pg1") in failed and ("archive_round_trip", "main") in failed, failures(doc)
    assert "archiving is failing" in failures(doc)


def test_a_repo_whose_recoverable_window_is_shorter_than_the_target_fails_naming_both(estate):
    # The seed's 7 days on a sandbox that is minutes old: repo1 cannot reach that far back; repo2 has no target.
    from drdrill.drills import daily
    from drdrill.hooks.pgbackrest import PgBackRestHook

    cluster = estate.cluster("main")
    results = daily.repository_checks(PgBackRestHook.for_cluster(cluster), target="main", expected_repos={1, 2},
                                      wal_segment_bytes=daily.wal_segment_bytes(cluster),
                                      pitr_window_hours={1: 168, 2: None})
    windows = {r.target: r for r in results if r.name == "pitr_window"}
    assert windows["main/repo1"].failed and windows["main/repo2"].status.value == "skip"
    oldest = [s for s in PgBackRestHook.for_cluster(cluster).info(repo=1) if s.name == "main"][0].oldest(1)
    msg = windows["main/repo1"].message
    assert f"repo1 can recover any second from {oldest.stop.isoformat(timespec='seconds')} (backup {oldest.label})" \
        in msg and "shorter than the 168 h target (targets.pitr_window_hours)" in msg, msg
