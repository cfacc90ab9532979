"""Server actions of the failover drills on the real sandbox, at the smallest level that uses them."""

from __future__ import annotations

import pytest

from drdrill.drills.failover.node_ops import NodeOps
from drdrill.hooks import postgres as pg

pytestmark = pytest.mark.sandbox


def test_stale_slot_cleanup_drops_only_the_drills_own_physical_slots(estate):
    c = estate.cluster("main")
    node = c.primary
    mine = node.name  # ensure_slot names a slot after the node that streams from it

    def slots() -> set[str]:
        with pg.connect(c, node.host, node.port, "postgres") as conn:
            return {r[0] for r in pg.query(conn, "SELECT slot_name FROM pg_replication_slots")}

    with pg.connect(c, node.host, node.port, "postgres") as conn:
        pg.query(conn, "SELECT pg_create_logical_replication_slot('cdc_orders', 'test_decoding')")
        pg.query(conn, "SELECT pg_create_physical_replication_slot('backup_tool')")
        pg.query(conn, "SELECT pg_create_physical_replication_slot(%s)", (mine,))
    try:
        dropped = NodeOps(c).drop_stale_slots(node)
        assert dropped == [mine]
        left = slots()
        assert {"cdc_orders", "backup_tool"} <= left and mine not in left
        # The streaming standby's own slot is active: never touched.
        assert {s.name for s in c.standbys} <= left
    finally:
        with pg.connect(c, node.host, node.port, "postgres") as conn:
            for name in ("cdc_orders", "backup_tool", mine):
                pg.query(conn, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                               "WHERE slot_name = %s", (name,))


@pytest.fixture
def archiver_stuck_server(estate, sandbox):
    """A throwaway server whose archiver hangs (archive_command sleeps), as with a dead S3 endpoint:
    a fast shutdown waits for it."""
    import shutil

    from drdrill.core import scratch
    from drdrill.core.runner import LocalRunner

    c = estate.cluster("main")
    runner = LocalRunner(c.runner.run_as)
    root = estate.scratch.root.parent / "stop-test"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    shutil.chown(root, c.runner.run_as, c.runner.run_as)
    data = root / "data"
    port = next(p for p in range(55590, 55600) if scratch.port_free("127.0.0.1", p))
    bin_dir = c.postgres.bin_dir
    runner.run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--no-sync"], timeout=120)
    with (data / "postgresql.auto.conf").open("a") as f:
        f.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{root}'\n"
                "archive_mode = on\narchive_command = 'sleep 120'\n")
    runner.run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "start"], timeout=60)
    runner.run([str(bin_dir / "psql"), "-h", str(root), "-p", str(port), "-U", "postgres", "-c",
                "CREATE TABLE t AS SELECT g FROM generate_series(1, 100000) g; SELECT pg_switch_wal();"], timeout=60)
    yield runner, bin_dir, data
    from drdrill.core import pgctl

    pgctl.stop(runner, bin_dir, data, mode="immediate", timeout=10)
    shutil.rmtree(root, ignore_errors=True)


def test_a_stop_that_does_not_stop_escalates_and_says_so(archiver_stuck_server, caplog):
    from drdrill.core import pgctl

    runner, bin_dir, data = archiver_stuck_server
    pid = pgctl.running_pid(runner, bin_dir, data)
    assert pid
    rec = pgctl.stop(runner, bin_dir, data, mode="fast", timeout=3, name="stuck")
    assert pgctl.running_pid(runner, bin_dir, data) is None
    assert rec["was_running"] and rec["escalated"]
    assert rec["steps"][0]["how"] == "pg_ctl stop -m fast" and rec["steps"][0]["exit"] != 0
    assert rec["steps"][1] == {**rec["steps"][1], "how": "pg_ctl stop -m immediate", "exit": 0}
    assert "pg_ctl stop -m fast did not stop it within 3s" in caplog.text


def test_a_scratch_server_is_stopped_immediately_and_for_sure_before_removal(archiver_stuck_server):
    from drdrill.core import pgctl, scratch

    runner, bin_dir, data = archiver_stuck_server
    # The stop escalates to immediate at once for a scratch server; the directory goes only once it is down.
    assert scratch.stop_server(data, runner, bin_dir) is True
    assert pgctl.running_pid(runner, bin_dir, data) is None and data.exists()


def test_every_session_is_bounded_and_a_held_lock_fails_naming_it(estate):
    import psycopg

    from drdrill.hooks.postgres import PostgresNodeHook

    c = estate.cluster("main")
    p = c.primary
    with pg.connect(c, p.host, p.port) as conn:
        assert pg.query_one(conn, "SHOW lock_timeout")[0] == "30s"
        assert pg.query_one(conn, "SHOW statement_timeout")[0] == "10min"
    assert "statement_timeout" in pg.sqlalchemy_url(c, p.host, p.port)  # Great Expectations' sessions too
    # Someone holds a lock on a table the drills read: the count gives up instead of hanging.
    with pg.connect(c, p.host, p.port, autocommit=False) as holder:
        # (a table the drills' role owns: it may lock it; app.orders it may only read)
        pg.query(holder, "LOCK TABLE drdrill.canary IN ACCESS EXCLUSIVE MODE")
        hook = PostgresNodeHook(host=p.host, port=p.port, database=c.postgres.database, lock_timeout=0.5,
                                postgres_conn_id=c.postgres.conn_id)
        with hook.session() as conn, pytest.raises(psycopg.errors.LockNotAvailable, match="lock timeout"):
            pg.count_rows(conn, ["drdrill.canary"])
        holder.rollback()
