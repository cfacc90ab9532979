"""Helpers for end-to-end drill tests: run a DAG with dag.test() and read its journal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from drdrill.core.estate import Estate
from drdrill.core.journal import journal_path
from drdrill.hooks import postgres as pg

TEST_DAGS = Path(__file__).resolve().parents[1] / "dags"


def test_dag(file_name: str, dag_id: str):
    """A test DAG of tests/dags, parsed and written to the metadata DB as the DAG processor would."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    bag = DagBag(dag_folder=str(TEST_DAGS / file_name))
    assert bag.import_errors == {}
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, bundle_name="dags-folder", bundle_version=None)
    return bag.get_dag(dag_id)


test_dag.__test__ = False  # a helper, not a test


def run_dag(dagbag, dag_id: str, conf: dict[str, Any] | None = None):
    """Run one DAG run in-process; return the DagRun (failed tasks are logged, not raised).

    The DAG is parsed afresh for every run: in-process runs share the DAG object, and the
    params of one run must not leak into the next (each task is a new process in production).
    """
    from airflow.dag_processing.dagbag import DagBag

    assert not dagbag.import_errors, dagbag.import_errors
    fresh = DagBag(dag_folder=dagbag.get_dag(dag_id).fileloc)
    return fresh.get_dag(dag_id).test(run_conf=conf or {})


def journal(estate: Estate, dag_id: str, run_id: str) -> dict[str, Any]:
    p = journal_path(estate.journal.location, estate.journal.conn_id, dag_id, run_id)
    assert p.exists(), f"no journal at {p}"
    return json.loads(p.read_text())


def failures(doc: dict[str, Any]) -> str:
    return "\n".join(doc["failures"])


def step(doc: dict[str, Any], task_id: str) -> dict[str, Any]:
    return next(s for s in doc["steps"] if s["task_id"] == task_id)


def scratch_dirs(estate: Estate) -> list[Path]:
    root = estate.scratch.root
    return sorted(root.iterdir()) if root.exists() else []


def canary_rows(estate: Estate, run_id: str) -> int:
    c = estate.cluster("main")
    with pg.connect(c, c.primary.host, c.primary.port) as conn:
        return pg.query_one(conn, "SELECT count(*) FROM drdrill.canary WHERE run_id = %s", (run_id,))[0]


def postgres_processes_under(path: Path) -> list[int]:
    """PIDs of postmasters whose data directory is under ``path`` (from /proc, not by name)."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(str(path).encode() in a for a in cmd) and cmd and cmd[0].endswith(b"postgres"):
            out.append(int(proc.name))
    return out


def as_superuser(sandbox, node, sql: str, db: str | None = None) -> str:
    """Test-side administration, what a DBA would do and the drills' role may not (ALTER SYSTEM, tables in
    app, pausing replay): SQL as the postgres superuser over the node's local socket (peer)."""
    return sandbox.postgres.psql(node, sql, db or sandbox.cluster.postgres.database)


def assert_no_secret_in(sandbox, *texts: str) -> None:
    """No sandbox secret (repo cipher passphrase, S3 keys) appears in logs or evidence."""
    secrets = [p.read_text().strip() for p in sandbox.layout.secrets.iterdir()]
    assert len(secrets) >= 3
    assert "pgbackrest" in "".join(texts), "the logs were not captured: this check would prove nothing"
    for text in texts:
        for secret in secrets:
            assert secret not in text


@contextmanager
def corrupted_newest_full(estate: Estate) -> Iterator[str]:
    """Flip bytes in the biggest data file of repo1's newest full backup; put them back after.

    Yields the backup label. The file is a table's heap, which every restore of that backup
    set (and of diffs based on it) must read.
    """
    from drdrill.hooks.pgbackrest import PgBackRestHook

    cluster = estate.cluster("main")
    info = [s for s in PgBackRestHook.for_cluster(cluster).info() if s.name == "main"][0]
    label = info.newest("full", 1).label
    repo1 = Path(estate.scratch.root).parent / "pgbackrest" / "repo1" / "backup" / "main" / label
    victim = max((p for p in (repo1 / "pg_data" / "base").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    original = victim.read_bytes()
    damaged = bytearray(original)
    mid = len(damaged) // 2
    damaged[mid:mid + 64] = bytes(b ^ 0xFF for b in damaged[mid:mid + 64])
    try:
        victim.write_bytes(bytes(damaged))
        yield label
    finally:
        victim.write_bytes(original)
