"""dr_monthly_restore_test end to end on the real sandbox: real restores, real row counts."""

from __future__ import annotations

import json

import pytest

from drdrill.core import scratch
from integration.helpers import (
    as_superuser,
    assert_no_secret_in,
    canary_rows,
    corrupted_newest_full,
    failures,
    journal,
    postgres_processes_under,
    run_dag,
    scratch_dirs,
    step,
)

pytestmark = pytest.mark.sandbox
DAG = "dr_monthly_restore_test"


def assert_nothing_left(estate, doc):
    assert scratch_dirs(estate) == [], "scratch directory left behind"
    assert postgres_processes_under(estate.scratch.root) == [], "scratch server left running"
    sc = doc.get("scratch")
    if sc:
        assert scratch.port_free(sc["host"], sc["port"]), f"port {sc['port']} still in use"


# repo1 latest is the session's shared restore test (integration/conftest.py); repo2 latest: the random test below.
@pytest.mark.parametrize(("repo", "point"), [(1, "latest"), (1, "pitr"), (2, "pitr")])
def test_restore_passes_and_proves_the_data(dagbag, estate, sandbox, repo, point, capfd, caplog, request):
    if (repo, point) == (1, "latest"):
        dr, doc = request.getfixturevalue("passed_restore_test")
    else:
        dr = run_dag(dagbag, DAG, {"repo": repo, "recovery_point": point})
        doc = journal(estate, DAG, dr.run_id)
        out, err = capfd.readouterr()
        assert_no_secret_in(sandbox, out, err, caplog.text, json.dumps(doc))
    assert dr.state == "success", failures(doc)
    res = {r["name"]: r for r in doc["results"]}
    # Every ledger table was counted on the restored copy and matched exactly.
    for table, n in doc["ledger"]["counts"].items():
        assert res[f"row_count.{table}"]["status"] == "pass"
        assert res[f"row_count.{table}"]["value"] == n
    assert doc["ledger"]["counts"]["public.pgbench_accounts"] == 100000 * 20
    assert res["canary.before"]["status"] == "pass" and res["canary.before"]["value"] == 1
    # PITR stops before the second canary; latest replays it.
    assert res["canary.after"]["value"] == (1 if point == "latest" else 0)
    assert doc["restore"]["repo"] == repo
    assert (doc["restore"]["target_time"] is None) == (point == "latest")
    m = doc["measurements"]
    assert m["total_seconds"] == pytest.approx(
        m["restore_command_seconds"] + m["replay_promote_seconds"] + m["checks_seconds"], abs=0.01)
    assert m["gx_load_seconds"] >= 0  # GX loaded before the checks, once per process: shown apart
    assert doc["teardown"]["removed"] == doc["scratch"]["dir"]
    # The lease on the cluster was taken for the run and released at the end; both kill switch checks passed.
    lock = doc["targets"]["lock"]
    assert lock["keys"] == ["cluster:main"] and lock["lease"]["holder"]["run_id"] == dr.run_id
    assert doc["targets"]["release"]["released"] == ["cluster:main"]
    assert [v["engaged"] for v in doc["kill_switch"]] == [False, False]
    assert step(doc, "release_targets")["status"] == "success"
    assert json.loads(open(doc["attachments"]["gx"].removeprefix("file://")).read())["validations"]
    assert_nothing_left(estate, doc)


def test_a_random_recovery_point_is_inside_the_window_journalled_and_proved_by_the_canaries_around_it(
        dagbag, estate, passed_restore_test):
    # The session's shared restore test wrote canaries before this run: the pick has earlier canaries around it.
    dr = run_dag(dagbag, DAG, {"repo": 2, "recovery_point": "random", "seed": 4242})
    doc = journal(estate, DAG, dr.run_id)
    assert dr.state == "success", failures(doc)
    pick = doc["ledger"]["random"]
    assert doc["plan"]["seed"] == pick["seed"] == 4242
    assert pick["window_from"] < pick["target_time"] < pick["window_to"]
    assert doc["restore"]["target_time"] == pick["target_time"] == doc["ledger"]["restore_target"]
    # No exact counts exist for a random time; the canaries nearest it say where the recovery stopped.
    assert doc["ledger"]["expected_counts"] is None
    res = {r["name"]: r for r in doc["results"]}
    assert res["canary.after_target"]["status"] == "pass" and res["canary.after_target"]["value"] == 0
    if "canary.before_target" in res:  # a pick before every canary has none before it
        assert res["canary.before_target"]["value"] == 1
    assert {c["present"] for c in pick["canaries"]} >= {False}
    assert_nothing_left(estate, doc)


def test_a_bad_seed_is_refused_before_anything_is_touched(estate):
    from drdrill.core.errors import PreflightError
    from drdrill.drills import restore

    for params, phrase in [({"recovery_point": "latest", "seed": 7}, "seed is only used with recovery_point 'random'"),
                           ({"recovery_point": "random", "seed": "abc"}, "seed must be a whole number"),
                           ({"recovery_point": "random", "seed": -1}, "seed must be 0 or more")]:
        with pytest.raises(PreflightError, match=phrase):
            restore.preflight({"cluster": "main", "repo": 1, **params}, "manual__bad-seed", estate)


@pytest.fixture
def extra_rows_with_second_canary(estate, sandbox):
    """A real divergence: the transaction that writes the second canary also adds 5 orders.

    The ledger counted app.orders before that, and a "latest" restore replays it, so the
    restored copy has 5 rows more than the ledger: the drill must fail naming app.orders.
    """
    c = estate.cluster("main")
    # As the superuser, SECURITY DEFINER: the drills' role that inserts the canary may not write app.orders.
    as_superuser(sandbox, c.primary, """
            CREATE OR REPLACE FUNCTION drdrill.test_extra_orders() RETURNS trigger LANGUAGE plpgsql
              SECURITY DEFINER AS $$
            BEGIN
              IF NEW.kind = 'after' THEN
                INSERT INTO app.orders (customer_id, amount, created_at)
                SELECT 1, 0.01, '1999-01-01' FROM generate_series(1, 5);
              END IF;
              RETURN NEW;
            END $$;
            CREATE TRIGGER test_extra_orders AFTER INSERT ON drdrill.canary
              FOR EACH ROW EXECUTE FUNCTION drdrill.test_extra_orders();""")
    yield
    as_superuser(sandbox, c.primary, "DROP TRIGGER test_extra_orders ON drdrill.canary; "
                                     "DROP FUNCTION drdrill.test_extra_orders(); "
                                     "DELETE FROM app.orders WHERE created_at = '1999-01-01'")


def test_row_count_mismatch_fails_naming_the_table(dagbag, estate, extra_rows_with_second_canary):
    dr = run_dag(dagbag, DAG, {"repo": 1, "recovery_point": "latest"})
    doc = journal(estate, DAG, dr.run_id)
    assert dr.state == "failed"
    failed = [r for r in doc["results"] if r["status"] == "fail"]
    assert [r["name"] for r in failed] == ["row_count.app.orders"], failures(doc)
    expected = doc["ledger"]["counts"]["app.orders"]
    assert f"found {expected + 5} rows, expected {expected}" in failed[0]["message"]
    # Teardown ran although the drill failed.
    assert step(doc, "teardown_scratch")["status"] == "success"
    assert_nothing_left(estate, doc)


def _refused(dagbag, estate, conf, *phrases, at="preflight"):
    dr = run_dag(dagbag, DAG, conf)
    doc = journal(estate, DAG, dr.run_id)
    assert dr.state == "failed"
    assert step(doc, at)["status"] == "failed"
    msg = step(doc, at)["error"]
    for p in phrases:
        assert p in msg, msg
    # Refused before anything was touched: no canary written, no scratch, no restore.
    assert canary_rows(estate, dr.run_id) == 0
    assert {"ledger", "setup_scratch", "restore", "teardown_scratch"} <= set(doc["not_run"])
    assert_nothing_left(estate, doc)
    return doc


def test_pitr_target_in_the_future_is_refused(dagbag, estate):
    _refused(dagbag, estate, {"recovery_point": "pitr", "target_time": "2999-01-01T00:00:00+00:00"},
             "is in the future")


def test_pitr_target_before_the_oldest_backup_is_refused(dagbag, estate):
    _refused(dagbag, estate, {"recovery_point": "pitr", "target_time": "2020-01-01T00:00:00+00:00"},
             "before the recoverable window of repo1", "oldest backup")


def test_pitr_target_without_zone_is_refused(dagbag, estate):
    _refused(dagbag, estate, {"recovery_point": "pitr", "target_time": "2026-01-01 00:00:00"}, "no time zone")


def test_scratch_port_of_the_primary_is_refused(dagbag, estate):
    port = estate.cluster("main").primary.port
    _refused(dagbag, estate, {"scratch_port": port}, f"scratch port {port} is the port of a server")


def test_scratch_dir_on_the_primary_is_refused(dagbag, estate):
    data = estate.cluster("main").primary.data_dir
    _refused(dagbag, estate, {"scratch_dir": str(data)}, "overlaps the data directory")
    assert (data / "PG_VERSION").exists()


def test_unknown_cluster_and_repo_are_refused(dagbag, estate):
    # the estate check, the drill's first task, knows the estate's clusters
    _refused(dagbag, estate, {"cluster": "billing"}, "unknown cluster 'billing'", "main", at="estate_check")
    _refused(dagbag, estate, {"repo": 3}, "no repo3", "1, 2")


def test_dry_run_walks_the_graph_without_acting(dagbag, estate):
    dr = run_dag(dagbag, DAG, {"dry_run": True, "recovery_point": "pitr", "repo": 2})
    doc = journal(estate, DAG, dr.run_id)
    assert dr.state == "success", failures(doc)
    assert all(s["status"] == "success" for s in doc["steps"]), doc["steps"]
    assert canary_rows(estate, dr.run_id) == 0
    assert doc["ledger"]["dry_run"] is True and doc["ledger"]["tables"] == []  # nothing was counted
    assert_nothing_left(estate, doc)


def test_leftover_scratch_of_a_dead_run_is_removed_first(dagbag, estate, sandbox):
    # A worker died mid-run: its tagged scratch directory stayed, with a server running in it.
    s = scratch.allocate(estate, "manual__dead_worker")
    scratch.create(s, sandbox.pg, "postgres")
    cluster = estate.cluster("main")
    sandbox.pg.run([str(cluster.postgres.bin_dir / "initdb"), "-D", str(s.data_dir), "--no-instructions",
                    "-U", "postgres"], timeout=120)
    sandbox.pg.run([str(cluster.postgres.bin_dir / "pg_ctl"), "-D", str(s.data_dir), "-l", str(s.logfile),
                    "-o", f"-p {s.port} -k {s.socket_dir} -c listen_addresses=127.0.0.1", "-w", "start"], timeout=60)
    assert postgres_processes_under(s.data_dir)
    dr = run_dag(dagbag, DAG, {"repo": 1})
    doc = journal(estate, DAG, dr.run_id)
    assert dr.state == "success", failures(doc)
    assert doc["scratch"]["leftovers_removed"] == [s.dir]
    assert_nothing_left(estate, doc)


def _step_record(run_id: str, task_id: str) -> dict:
    """The step record a task pushed, read from the metadata DB (no journal without an estate)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as s:
        value = s.scalar(select(XComModel.value).where(XComModel.run_id == run_id, XComModel.task_id == task_id,
                                                       XComModel.key == "drill_step"))
    return json.loads(value) if isinstance(value, str) else value


def test_malformed_estate_fails_the_first_task_naming_file_and_field(dagbag, estate, tmp_path, monkeypatch):
    from drdrill.core.paths import DEFAULT_ESTATE

    bad = tmp_path / "estate.yaml"
    bad.write_text(DEFAULT_ESTATE.read_text().replace("stanza: main", "stanzaa: main"))
    monkeypatch.setenv("DRDRILL_ESTATE", str(bad))
    dr = run_dag(dagbag, DAG, {})
    assert dr.state == "failed"
    err = _step_record(dr.run_id, "estate_check")["error"]
    assert str(bad) in err
    assert "clusters[main].pgbackrest.stanza: required field is missing" in err
    assert "clusters[main].pgbackrest.stanzaa: unknown field" in err
    assert canary_rows(estate, dr.run_id) == 0
    assert scratch_dirs(estate) == []


def test_corrupt_backup_fails_the_restore_and_still_tears_down(dagbag, estate):
    with corrupted_newest_full(estate) as label:
        dr = run_dag(dagbag, DAG, {"repo": 1, "recovery_point": "latest"})
    doc = journal(estate, DAG, dr.run_id)
    assert dr.state == "failed"
    err = step(doc, "restore")["error"]
    assert "pgbackrest" in err and label in err, err
    assert {"data_quality", "measure"} <= set(doc["not_run"])
    assert step(doc, "teardown_scratch")["status"] == "success"
    assert_nothing_left(estate, doc)


@pytest.fixture
def partitions_and_excluded_schema(estate, sandbox, tmp_path, monkeypatch):
    """A partitioned table, and a schema the estate excludes from the restore test."""
    from drdrill.core.paths import DEFAULT_ESTATE

    f = tmp_path / "estate.yaml"
    f.write_text(DEFAULT_ESTATE.read_text().replace("row_count_tolerance: {}", "row_count_tolerance: {}\n"
                                                    "      exclude_schemas: [scratchpad]"))
    monkeypatch.setenv("DRDRILL_ESTATE", str(f))
    c = estate.cluster("main")
    as_superuser(sandbox, c.primary, """
            CREATE TABLE app.events (id int NOT NULL) PARTITION BY RANGE (id);
            CREATE TABLE app.events_p1 PARTITION OF app.events FOR VALUES FROM (0) TO (100);
            CREATE TABLE app.events_p2 PARTITION OF app.events FOR VALUES FROM (100) TO (200);
            INSERT INTO app.events SELECT g FROM generate_series(1, 150) g;
            CREATE SCHEMA scratchpad; CREATE TABLE scratchpad.tmp AS SELECT 1 AS x;""")
    yield
    as_superuser(sandbox, c.primary, "DROP TABLE app.events; DROP SCHEMA scratchpad CASCADE")


def test_partitions_are_counted_and_excluded_schemas_are_not(dagbag, estate, partitions_and_excluded_schema):
    dr = run_dag(dagbag, DAG, {"repo": 1, "recovery_point": "pitr"})
    doc = journal(estate, DAG, dr.run_id)
    assert dr.state == "success", failures(doc)
    counts = doc["ledger"]["counts"]
    assert counts["app.events"] == 150 and counts["app.events_p1"] == 99 and counts["app.events_p2"] == 51
    assert not [t for t in counts if t.startswith("scratchpad.")]
    res = {r["name"]: r for r in doc["results"]}
    assert res["row_count.app.events_p2"]["value"] == 51
    assert_nothing_left(estate, doc)


def test_cluster_that_does_not_allow_the_drill_is_refused(dagbag, estate, tmp_path, monkeypatch):
    from drdrill.core.paths import DEFAULT_ESTATE

    f = tmp_path / "estate.yaml"
    f.write_text(DEFAULT_ESTATE.read_text().replace("      - dr_monthly_restore_test\n", ""))
    monkeypatch.setenv("DRDRILL_ESTATE", str(f))
    _refused(dagbag, estate, {}, "does not allow dr_monthly_restore_test", "allowed_drills")


def test_a_run_killed_mid_restore_leaves_nothing_once_the_next_run_is_done(dagbag, estate, monkeypatch, tmp_path):
    """SIGKILL of the run's process: its scratch server keeps running and Airflow reads the run as
    running for ever; past its lease, the next run stops that server and removes its directory."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from drdrill.core.polling import wait_until

    monkeypatch.setenv(scratch.LEASE_ENV, "0.3")  # 18 s instead of twice the restore target
    root = estate.scratch.root
    before = set(root.iterdir()) if root.exists() else set()
    with (tmp_path / "killed.log").open("w") as log:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), "dags", "test", DAG, "-c",
                                 json.dumps({"repo": 1})], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=os.environ.copy())

    def started() -> Path | None:
        return next((d for d in (set(root.iterdir()) - before if root.exists() else ())
                     if (d / "data" / "postmaster.pid").exists()), None)

    try:
        killed = wait_until(started, timeout=180, interval=0.2, what="the first run's scratch server to start")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert postgres_processes_under(killed), "the scenario needs a server that outlived its run"
    lease_until = scratch.read_tag(killed)["lease_until"]
    time.sleep(max(0.0, lease_until - time.time()) + 0.5)

    dr = run_dag(dagbag, DAG, {"repo": 1})
    doc = journal(estate, DAG, dr.run_id)
    assert dr.state == "success", failures(doc)
    assert str(killed) in doc["scratch"]["leftovers_removed"]
    # The killed run's lease on the cluster outlived it too (Airflow reads the run as running): past its TTL
    # (the scratch lease), this run took it over, and the journal says whose it was.
    taken = doc["targets"]["lock"]["taken_over"]
    assert [t["key"] for t in taken] == ["cluster:main"] and taken[0]["why"].startswith("expired at ")
    assert taken[0]["lease"]["dag_id"] == DAG and taken[0]["lease"]["run_id"] != dr.run_id
    assert not killed.exists() and postgres_processes_under(killed) == []
    assert_nothing_left(estate, doc)
