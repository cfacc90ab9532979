"""The region failover drill (scope ``region``) end to end on the sandbox: region a (pg1, pg2, repo1) is lost,
pg3 in region b comes back from repo2 alone (cold: restored by the drill; warm: a standby replaying repo2),
RTO per phase and RPO measured, the primary region rebuilt from pg3 and the original topology restored.

Real PostgreSQL 15, pgBackRest (repo2 on moto's S3 over TLS), Route53 on moto, the demo service behind
its record; dag.test() runs the DAG.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from tests.integration.helpers import as_superuser, failures, journal, run_dag, step
from tests.integration.test_failover import assert_home, cluster, estate_with, in_recovery, postmaster

from drdrill.core.errors import PreflightError
from drdrill.core.estate import load_estate
from drdrill.core.polling import wait_until
from drdrill.drills import failover
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


def test_region_drill_cold_recovers_from_repo2_alone_measures_and_fails_back(dagbag, region_home, passed_restore_test):
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
    # repo1 (region a) never received the DR timeline's WAL: the failback copied it there from repo2 (its history
    # file and segments), so repo1's archive has no hole and a PITR from its older backups crosses the drill.
    copied = fb["archive_backfill"]["copied"]["1"]
    assert any(n.endswith(".history") for n in copied) and any(len(n) == 24 for n in copied), copied
    assert_region_home(region_home)
    daily = run_dag(dagbag, "dr_daily_verification")
    assert daily.state == "success", failures(journal(region_home, "dr_daily_verification", daily.run_id))
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


def _plan(run_id: str) -> failover.Plan:
    return failover.Plan.from_dict(failover.preflight({"cluster": "main", "scope": "region", "fault": "kill"}, run_id,
                                                      DRILL))


def test_a_dr_port_or_directory_in_use_refuses_before_the_fault_naming_the_field(region_home):
    plan = _plan("probe__dr_node")
    node = cluster().dr_node
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((node.host, node.port))
        s.listen(1)
        with pytest.raises(PreflightError) as e:
            region.safeguards(plan, region.figures(plan), stage="assess")
    assert "dr_node_port_free" in str(e.value) and "clusters[main].dr.node.port" in str(e.value)
    pg3_data().mkdir(parents=True)
    try:
        (pg3_data() / "PG_VERSION").write_text("15\n")
        with pytest.raises(PreflightError) as e:
            region.safeguards(plan, region.figures(plan), stage="assess")
        assert "dr_node_dir_free" in str(e.value) and "clusters[main].dr.node.data_dir" in str(e.value)
        assert "dr_node_port_free" not in str(e.value)
    finally:
        import shutil

        shutil.rmtree(pg3_data())


@pytest.fixture
def repo2_archiving_broken(sandbox, region_home):
    """pg1 archives through a copy of pgbackrest.conf whose repo2 path holds no stanza: every segment reaches
    repo1, none reaches repo2 (archive-push fails on it), as when the cross-region copy breaks."""
    from drdrill.sandbox.layout import write_as_postgres

    c = cluster()
    broken = Path(c.pgbackrest.config).with_name("pgbackrest-repo2-broken.conf")
    write_as_postgres(broken, Path(c.pgbackrest.config).read_text().replace("repo2-path=/pgbackrest",
                                                                            "repo2-path=/broken"), 0o640)
    pg1 = c.node("pg1")
    cmd = (f"pgbackrest --config={broken} --stanza=main --pg1-path={pg1.data_dir} archive-push %p")
    as_superuser(sandbox, pg1, f"ALTER SYSTEM SET archive_command = '{cmd}'", "postgres")
    as_superuser(sandbox, pg1, "ALTER SYSTEM SET archive_timeout = 5", "postgres")
    as_superuser(sandbox, pg1, "SELECT pg_reload_conf()", "postgres")
    try:
        yield broken
    finally:
        as_superuser(sandbox, pg1, "ALTER SYSTEM RESET archive_command", "postgres")
        as_superuser(sandbox, pg1, "ALTER SYSTEM RESET archive_timeout", "postgres")
        as_superuser(sandbox, pg1, "SELECT pg_reload_conf()", "postgres")
        broken.unlink()
        # archiving catches up: every waiting segment reaches both repos again
        wait_until(lambda: as_superuser(sandbox, pg1, "SELECT count(*) FROM pg_ls_archive_statusdir() "
                                                      "WHERE name LIKE '%.ready'", "postgres") == "0",
                   timeout=180, interval=1, what="pg1's waiting WAL segments to be archived again")


def test_archiving_to_repo2_broken_fails_the_drill_naming_repo2s_lag_before_the_fault(
        dagbag, sandbox, repo2_archiving_broken, tmp_path, monkeypatch):
    pg1 = cluster().node("pg1")
    for _ in range(2):  # complete segments that now wait for repo2
        as_superuser(sandbox, pg1, "INSERT INTO app.audit_log(event) VALUES ('while repo2 is broken')")
        as_superuser(sandbox, pg1, "SELECT pg_switch_wal()", "postgres")
    estate_with(tmp_path, monkeypatch, ("rpo_minutes: 5", "rpo_minutes: 0.1"))  # 6 s
    lag = {}

    def lagging() -> bool:
        lag.update(region.figures(_plan("probe__lag"))["dr_repo_lag"])
        return lag.get("segments", 0) >= 2 and lag.get("seconds", 0) > 6

    wait_until(lagging, timeout=120, interval=1, what="repo2 to fall more than 6 s behind")
    before = {n: postmaster(n) for n in ("pg1", "pg2")}
    dr = run_dag(dagbag, DRILL, {"scope": "region"})
    doc = journal(load_estate(), DRILL, dr.run_id)
    assert dr.state == "failed"
    err = step(doc, "assess.probe")["error"]
    assert "dr_repo_archive_lag" in err and "repo2 archive lag" in err and "complete segment(s)" in err, err
    assert "archiving to repo2 is broken or slow" in err
    assert step(doc, "failover.inject_fault")["status"] == "not run"
    assert {n: postmaster(n) for n in ("pg1", "pg2")} == before, "a node was touched"
    lag_check = next(r for r in doc["results"] if r["name"] == "dr_repo_archive_lag")
    assert lag_check["status"] == "fail" and lag_check["value"] > 6


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), children first found first."""
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        out += kids
        todo += kids
    return out


KILLED_MID_RESTORE = textwrap.dedent("""
    import sys
    from drdrill.drills import failover
    from drdrill.drills.failover import region

    p = failover.Plan.from_dict(failover.preflight(
        {"cluster": "main", "scope": "region", "fault": "kill"}, sys.argv[1], failover.DRILL))
    fault = region.inject_fault(p, failover.recheck(p))
    print("FAULT INJECTED", flush=True)
    region.restore(p, fault["timeline"])
    print("RESTORED", flush=True)
""")


def test_a_worker_killed_mid_restore_is_healed_by_the_next_run_which_can_leave_pg3_primary(dagbag, region_home):
    run_id = "killed__mid_restore"
    # The worker: the fault, then the restore of pg3 from repo2; killed with its whole process group (pgBackRest
    # included) once the restore has written into pg3's directory, as when a worker's pod or host dies.
    proc = subprocess.Popen([sys.executable, "-c", KILLED_MID_RESTORE, run_id], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        wait_until(lambda: (pg3_data() / "base").exists() or proc.poll() is not None, timeout=120, interval=0.02,
                   what="the restore to write into pg3's data directory")
    finally:
        # the runner starts each command in its own session: the worker's whole tree dies, pgBackRest included
        for pid in [proc.pid, *descendants(proc.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        out = proc.communicate(timeout=30)[0].decode()
    assert "FAULT INJECTED" in out and "RESTORED" not in out, out[-3000:]
    rec = region.read_record(load_estate(), "main")
    assert rec["run_id"] == run_id and rec["phase"] == "fault"
    assert postmaster("pg1") is None and postmaster("pg2") is None and any(pg3_data().iterdir())

    # The next run heals it first (region a started again, pg3 removed), then drills: here without failback, so
    # the same runs also show a promoted pg3 left behind and healed by the run after (one drill less to run).
    dr = run_dag(dagbag, DRILL, {"scope": "region", "fault": "stop", "failback": False})
    doc = journal(region_home, DRILL, dr.run_id)
    assert dr.state == "success", failures(doc)
    healed = doc["plan"]["healed"]
    assert healed["run_id"] == run_id and healed["phase"] == "fault"
    assert {"pg3 stopped and removed", "started pg1", "started pg2"} <= set(healed["abort"]["actions"])
    assert doc["measurements"]["rto_seconds"] > 0
    _left_on_pg3_then_failed_back_by_the_next_run(dagbag, region_home, dr)


@pytest.fixture
def warm(region_home, tmp_path, monkeypatch):
    """The estate in warm mode: pg3 built as a standby replaying repo2 alone, as `make sandbox-up` builds it; removed
    again at the end (the sandbox estate is cold)."""
    from drdrill.sandbox import Sandbox

    estate_with(tmp_path, monkeypatch, ("mode: cold", "mode: warm"))
    built = Sandbox(load_estate(topology=False)).dr_standby()
    try:
        yield built
    finally:
        region.DrSite(cluster()).discard()


def test_region_drill_warm_promotes_the_repo2_standby_in_seconds_and_rebuilds_it(dagbag, warm):
    assert in_recovery("pg3") and warm["replay"]["replay_lsn"]
    dr = run_dag(dagbag, DRILL, {"scope": "region", "fault": "kill"})
    doc = journal(load_estate(), DRILL, dr.run_id)
    assert dr.state == "success", failures(doc)
    m = doc["measurements"]
    phases = m["region"]["rto_phases_seconds"]
    # Nothing restored (the standby was there), so the RTO is replay + promote + DNS + first write.
    assert step(doc, "failover.restore")["status"] == "success" and phases["restore"] < 1
    assert m["region"]["restore"]["skipped"].startswith("warm")
    assert {"dr_standby_ready", "dr_standby_replay_lag"} <= {r["name"] for r in doc["results"]}
    assert 0 < m["rto_seconds"] < 10 and m["rpo_seconds"] <= m["rpo_target_seconds"]
    # After the failback pg3 replays repo2 again (rebuilt on the new timeline), region a is home.
    assert doc["failback"]["new_standby"]["dr_node"]["replay"]["replay_lsn"]
    assert_home(load_estate())
    assert in_recovery("pg3") and region.read_record(load_estate(), "main") is None


def test_region_dry_run_walks_the_graph_without_stopping_or_restoring_anything(dagbag, region_home):
    before = {n: postmaster(n) for n in ("pg1", "pg2")}
    dr = run_dag(dagbag, DRILL, {"scope": "region", "dry_run": True})
    doc = journal(region_home, DRILL, dr.run_id)
    assert dr.state == "success", failures(doc)
    assert doc["failover"]["fault"]["dry_run"] is True
    assert {n: postmaster(n) for n in ("pg1", "pg2")} == before
    assert not pg3_data().exists() and region.read_record(region_home, "main") is None
    assert_region_home(region_home)


def _left_on_pg3_then_failed_back_by_the_next_run(dagbag, region_home, dr):
    """After a region drill run ``dr`` without failback: one writable primary, and the next run fails back first."""
    # One writable primary, pg3, recorded; pg1 streams from it; pg2 stays down; the record says "promoted".
    assert cluster().primary.name == "pg3" and not in_recovery("pg3") and in_recovery("pg1")
    assert postmaster("pg2") is None
    rec = region.read_record(load_estate(), "main")
    assert rec["run_id"] == dr.run_id and rec["phase"] == "promoted" and rec["dr_timeline"]

    # A dry run acts on nothing: it refuses, naming what the next real run does first.
    dry = run_dag(dagbag, DRILL, {"scope": "region", "dry_run": True})
    assert dry.state == "failed"
    err = step(journal(region_home, DRILL, dry.run_id), "preflight")["error"]
    assert f"region drill {dr.run_id} left cluster main mid-drill (phase promoted)" in err
    assert "fail back from the DR node pg3 to pg1" in err and cluster().primary.name == "pg3"

    nxt = run_dag(dagbag, DRILL, {"scope": "region", "fault": "kill"})
    doc = journal(region_home, DRILL, nxt.run_id)
    assert nxt.state == "success", failures(doc)
    healed = doc["plan"]["healed"]
    assert healed["run_id"] == dr.run_id and healed["phase"] == "promoted"
    assert healed["switchover"]["node"] == "pg1" and healed["failback"]["archive_backfill"]["copied"]["1"]
    assert_region_home(region_home)


def test_verify_failing_on_pg3_rolls_back_to_region_a_and_later_restores_follow_pg1s_timeline(
        dagbag, region_home, tmp_path, monkeypatch):
    """pg3 comes up read-only (a DR setting gone wrong): promoted, it refuses writes; the rollback fences it and
    brings region a back: pg1 primary, pg2 rebuilt onto pg1's timeline (the abandoned promotion's timeline is in
    repo2 now), the record back; neither the next drill nor a restore test is misled by that timeline."""
    conf = "      pgbackrest_config: ${DRDRILL_SANDBOX_DIR}/pgbackrest/pgbackrest-dr.conf"
    estate_with(tmp_path, monkeypatch, (conf, conf + "\n      settings: {default_transaction_read_only: 'on'}"))
    dr = run_dag(dagbag, DRILL, {"scope": "region", "fault": "kill"})
    doc = journal(load_estate(), DRILL, dr.run_id)
    assert dr.state == "failed"
    assert "write_test" in {r["name"] for r in doc["results"] if r["status"] == "fail"}
    rb = doc["rollback"]
    assert rb["rolled_back"] is True and rb["dns"]["to"] == "pg1.sandbox.drdrill.internal", rb
    assert {"pg3 stopped and removed", "pg2 rebuilt as standby of pg1", "DNS back to pg1"} <= set(rb["actions"])
    assert rb["wal_switched_at"]
    monkeypatch.delenv("DRDRILL_ESTATE")
    assert_region_home(load_estate())
    # repo2 now holds the abandoned timeline (its newest segments are on it): Assess reads repo2's newest segment
    # on pg1's timeline, so the next drill may go ahead (the cold restore follows pg1's timeline explicitly).
    plan = _plan("probe__after_rollback")
    figs = region.figures(plan)
    assert figs["dr_repo"]["newest_wal"].startswith(figs["primary"]["walfile"][:8]), figs["dr_repo"]
    region.safeguards(plan, figs, stage="after the rollback")
    # A point-in-time restore test from repo2 follows pg1's timeline too (PostgreSQL's default, 'latest', would
    # follow the abandoned branch and never reach the target).
    rt = run_dag(dagbag, "dr_monthly_restore_test", {"recovery_point": "pitr", "repo": 2})
    rdoc = journal(load_estate(), "dr_monthly_restore_test", rt.run_id)
    assert rt.state == "success", failures(rdoc)
    assert step(rdoc, "restore")["status"] == "success"
    assert rdoc["restore"]["target_timeline"] == figs["primary"]["timeline"], rdoc["restore"]
