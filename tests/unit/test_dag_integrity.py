"""DAG integrity: every DAG imports, has tags and retries, and parses without heavy work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
# The drills the estate knows (drdrill.core.estate.DRILLS) must all be DAGs; every DAG file is checked.
DRILLS = {"dr_daily_verification", "dr_monthly_restore_test", "dr_quarterly_failover_drill",
          "dr_postgres_primary_failover"}


def _dag_ids() -> list[str]:
    """Every DAG id defined in dags/, read from the files (parametrisation happens before fixtures)."""
    import re

    return sorted({m for f in DAG_FILES for m in re.findall(r'dag_id="([a-z0-9_]+)"', f.read_text())})


def test_no_import_errors_and_every_drill_present(dagbag):
    from drdrill.core.estate import DRILLS as ESTATE_DRILLS

    assert dagbag.import_errors == {}
    assert set(ESTATE_DRILLS) == DRILLS <= set(dagbag.dag_ids)
    assert set(dagbag.dag_ids) == set(_dag_ids()), "a DAG in dags/ is not declared with dag_id=\"...\""


@pytest.mark.parametrize("dag_id", _dag_ids())
def test_tags_retries_and_docs(dagbag, dag_id):
    dag = dagbag.get_dag(dag_id)
    assert dag.tags and "dr" in dag.tags
    assert "retries" in dag.default_args, "set retries explicitly: a drill must say whether it retries"
    assert all(t.retries is not None for t in dag.tasks)
    # Every task is bounded: nothing holds a worker slot for ever (drdrill.core.limits).
    unbounded = [t.task_id for t in dag.tasks if not t.execution_timeout]
    assert not unbounded, f"tasks without execution_timeout: {unbounded}"
    assert dag.doc_md and dag.max_active_runs == 1
    assert dag.catchup is False


def test_restore_test_has_setup_and_teardown_and_journal_always_runs(dagbag):
    dag = dagbag.get_dag("dr_monthly_restore_test")
    assert dag.get_task("setup_scratch").is_setup
    td = dag.get_task("teardown_scratch")
    assert td.is_teardown and "setup_scratch" in td.upstream_task_ids
    assert dag.get_task("journal").trigger_rule == "all_done"
    restore = dag.get_task("restore")
    assert restore.__class__.__name__ == "PgBackRestRestoreOperator"
    assert dag.get_task("data_quality").__class__.__name__ == "RowCountCheckOperator"
    assert td.__class__.__name__ == "ScratchServerTeardownOperator"


def test_daily_checks_are_mapped_over_clusters(dagbag):
    dag = dagbag.get_dag("dr_daily_verification")
    for tid in ("backup_repository", "backup_integrity", "wal_archiving", "replication"):
        assert dag.get_task(tid).__class__.__name__.endswith("MappedOperator"), tid
    assert dag.get_task("journal").trigger_rule == "all_done"


PROBE = """
import json, runpy, sys
import airflow.sdk  # paid once by every Airflow process, not by our files
before = set(sys.modules)
runpy.run_path(sys.argv[1])
new = set(sys.modules) - before
heavy = sorted(m for m in ("great_expectations", "boto3", "psycopg2", "psycopg", "pandas", "yaml", "moto")
               if m in new)
print(json.dumps(heavy))
"""


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_parsing_does_no_heavy_imports_and_never_reads_the_estate(path):
    # A broken estate file must not break parsing: the estate is read by tasks, not at parse time.
    env = {**os.environ, "DRDRILL_ESTATE": "/nonexistent/estate.yaml"}
    res = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, env=env,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []
