"""The scratch server stands on its own: its own configuration whatever the restored copy holds, and no
restore starts on a scratch file system too small for it.

Real restores from the sandbox's repo1 into a real scratch server; a real tmpfs for the disk check.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from drdrill.core import scratch
from drdrill.core.polling import wait_until
from drdrill.core.runner import runner_for
from drdrill.drills import restore
from drdrill.hooks import postgres as pg
from drdrill.hooks.pgbackrest import PgBackRestHook
from integration.helpers import failures, journal, postgres_processes_under, run_dag, scratch_dirs, step

pytestmark = pytest.mark.sandbox
DAG = "dr_monthly_restore_test"


def _hostile(data: Path, primary_port: int, marker: Path) -> None:
    """What a copy of another primary's configuration would do: its port, archiving into production,
    an include that exists only on its host, a library this host lacks, a replication connection."""
    (data / "postgresql.conf").write_text(
        f"port = {primary_port}\narchive_mode = on\narchive_command = 'touch {marker}'\n"
        "include '/etc/postgresql/15/main/conf.d/only-on-the-primary.conf'\n"
        "shared_preload_libraries = 'no_such_library'\nlisten_addresses = '*'\n")
    with (data / "postgresql.auto.conf").open("a") as f:
        f.write(f"port = '{primary_port}'\narchive_command = 'touch {marker}'\n"
                f"primary_conninfo = 'host=127.0.0.1 port={primary_port}'\n")
    (data / "pg_hba.conf").write_text("host all all all trust\n")


@pytest.mark.parametrize("layout", ["debian (no config files in the data directory)", "hostile copy"])
def test_the_scratch_server_starts_on_its_own_configuration(estate, tmp_path, layout):
    c = estate.cluster("main")
    runner = runner_for(c.runner)
    sc = scratch.allocate(estate, f"test-own-config-{layout.split()[0]}")
    scratch.create(sc, runner, c.runner.run_as)
    marker = tmp_path / "archived-into-production"
    try:
        restore.restore_into(PgBackRestHook.for_cluster(c), sc, repo=1, target_time=None)
        data = sc.data_dir
        if layout.startswith("debian"):
            for name in ("postgresql.conf", "pg_hba.conf", "pg_ident.conf"):
                (data / name).unlink()
        else:
            _hostile(data, c.primary.port, marker)
        restore.start_server(runner, c.postgres.bin_dir, sc, owner=c.runner.run_as, role=c.postgres.user)
        h = pg.hook(c, sc.host, sc.port)
        wait_until(lambda: h.is_ready()[0] and not h.in_recovery(), timeout=120, interval=0.2,
                   what="the scratch copy to be promoted")
        with h.session() as conn:
            settings = dict(pg.query(conn, "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", ([
                "port", "archive_mode", "primary_conninfo", "shared_preload_libraries", "listen_addresses",
                "config_file", "max_connections"],)))
            assert pg.query_one(conn, "SELECT current_user")[0] == "drdrill"  # scram, the drills' role
            n = pg.query_one(conn, "SELECT count(*) FROM app.customers")[0]
        assert settings["port"] == str(sc.port) and settings["listen_addresses"] == sc.host
        assert settings["archive_mode"] == "off" and settings["primary_conninfo"] == ""
        assert settings["shared_preload_libraries"] == "" and settings["max_connections"] == "20"
        assert settings["config_file"] == str(data / "postgresql.conf")
        assert n == 5000
        hba = (data / "pg_hba.conf").read_text()
        assert "trust" not in hba and 'host all "drdrill" all scram-sha-256' in hba
        if not layout.startswith("debian"):
            assert (data / "postgresql.conf.restored").read_text().startswith(f"port = {c.primary.port}")
            with h.session() as conn:
                pg.query(conn, "SELECT pg_switch_wal()")  # nothing may archive, anywhere
        assert not marker.exists()
        # The primary never saw any of it.
        assert pg.is_ready(c, c.primary.host, c.primary.port)[0]
    finally:
        scratch.remove(Path(sc.dir), runner, c.postgres.bin_dir)
    assert not Path(sc.dir).exists() and postgres_processes_under(sc.data_dir) == []
    assert scratch.port_free(sc.host, sc.port)


@pytest.fixture
def small_filesystem():
    """A 16 MiB tmpfs the postgres user can reach (the sandbox database is about 300 MB); unmounted after."""
    d = Path(tempfile.mkdtemp(prefix="drdrill-small-fs-", dir="/tmp"))
    d.chmod(0o755)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(d)], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=True)
        d.rmdir()


def test_a_scratch_root_without_room_for_the_backup_is_refused_before_anything_is_created(dagbag, estate,
                                                                                          small_filesystem):
    before = scratch_dirs(estate)
    dr = run_dag(dagbag, DAG, {"repo": 1, "scratch_dir": str(small_filesystem / "scratch")})
    doc = journal(estate, DAG, dr.run_id)
    assert dr.state == "failed"
    err = step(doc, "preflight")["error"]
    assert "not enough free space for the restore" in err, failures(doc)
    assert "16.0 MiB free" in err and "repo1's backup restores a database of" in err and "MiB" in err, err
    assert "scratch.disk_margin_percent" in err
    assert step(doc, "restore")["status"] != "success"
    # Nothing was created: not on the small file system, not in the estate's scratch root.
    assert list(small_filesystem.iterdir()) == [] and scratch_dirs(estate) == before


def test_the_free_space_is_measured_where_the_scratch_root_will_be(estate, small_filesystem):
    runner = runner_for(estate.cluster("main").runner)
    where, free = restore.free_bytes(runner, small_filesystem / "not" / "yet")
    assert where == small_filesystem and 15 * 2**20 < free <= 16 * 2**20
    # An own margin (estate scratch.disk_margin_percent) on a backup that fits
    assert "needed" in restore.check_scratch_space(runner, small_filesystem, 1, 10 * 2**20, 20)
    with pytest.raises(restore.PreflightError, match="with the 100% margin"):
        restore.check_scratch_space(runner, small_filesystem, 1, 10 * 2**20, 100)
