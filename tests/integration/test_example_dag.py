"""The README's example DAG: drdrill's operators composed with connections only, on the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drdrill.core import scratch

EXAMPLE = Path(__file__).resolve().parents[2] / "dags" / "example_restore_row_count.py"

pytestmark = pytest.mark.sandbox


@pytest.fixture
def connections(sandbox, monkeypatch):
    """The pgbackrest connection a user would create (the sandbox provides it too: `python -m drdrill.sandbox env`)."""
    conn = json.loads(sandbox.airflow_env()["AIRFLOW_CONN_PGBACKREST_DEFAULT"])
    assert conn["extra"] == {"stanza": "main", "config": str(sandbox.layout.backrest / "pgbackrest.conf")}
    monkeypatch.setenv("AIRFLOW_CONN_PGBACKREST_DEFAULT", json.dumps(conn))


def _run(dagbag, conf):
    from airflow.dag_processing.dagbag import DagBag

    # The sandbox's postgres connection (scram-sha-256, the drills' role), as a user would name theirs.
    conf = {"postgres_conn_id": "pg_sandbox", **conf}
    bag = DagBag(dag_folder=str(EXAMPLE))
    assert bag.import_errors == {}
    return bag.get_dag("example_restore_row_count").test(run_conf=conf)


def _states(dr) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


@pytest.fixture
def root(estate):
    """A scratch root the postgres user can reach (pytest's tmp_path is private to root)."""
    import shutil

    d = estate.scratch.root.parent / "example-scratch"
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_example_restores_counts_and_tears_down(dagbag, estate, connections, root):
    dr = _run(dagbag, {"repo": 1, "scratch_root": str(root), "database": "app"})
    assert _states(dr) == {"restore": "success", "row_counts": "success", "teardown": "success"}, _states(dr)
    assert dr.state == "success"
    out = dr.get_task_instance("row_counts").xcom_pull(task_ids="row_counts")
    names = {r["name"]: r for r in out["results"]}
    assert names["critical_not_empty.app.orders"]["status"] == "pass"
    assert names["min_rows.public.pgbench_accounts"]["value"] == 100000 * 20
    restored = dr.get_task_instance("restore").xcom_pull(task_ids="restore")
    assert restored["created_scratch"] and restored["ready_at"] >= restored["started_at"]
    # Nothing is left: no directory, the port is free again.
    assert not root.exists() or not any(root.iterdir())
    assert scratch.port_free(restored["host"], restored["port"])


def test_example_fails_on_a_missing_table_and_still_tears_down(dagbag, estate, connections, root):
    # The postgres database of the restored copy has none of the critical tables.
    dr = _run(dagbag, {"repo": 1, "scratch_root": str(root), "database": "postgres"})
    states = _states(dr)
    assert states["row_counts"] == "failed" and states["teardown"] == "success", states
    assert not root.exists() or not any(root.iterdir())


def test_example_with_a_stanza_that_does_not_exist_removes_its_scratch(dagbag, estate, sandbox, root,
                                                                         monkeypatch):
    conn = {"conn_type": "pgbackrest", "login": "postgres",
            "extra": {"stanza": "nosuch", "config": str(sandbox.layout.backrest / "pgbackrest.conf")}}
    monkeypatch.setenv("AIRFLOW_CONN_PGBACKREST_DEFAULT", json.dumps(conn))
    dr = _run(dagbag, {"repo": 1, "scratch_root": str(root)})
    states = _states(dr)
    # The setup failed, so its teardown does not run: the restore removed what it had created.
    assert states["restore"] == "failed" and states["teardown"] == "upstream_failed", states
    err = dr.get_task_instance("restore").xcom_pull(task_ids="restore", key="drill_step")["error"]
    assert "failed before reading any backup set" in err and "nosuch" in err, err
    assert not root.exists() or not any(root.iterdir())
