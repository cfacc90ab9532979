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
    # The lease on the cluster: taken after preflight, before the ledger's first write; released by a
    # teardown after the scratch is gone, before the journal.
    lock, release = dag.get_task("lock_targets"), dag.get_task("release_targets")
    assert lock.is_setup and lock.upstream_task_ids == {"preflight"} and "lock_targets" in \
        dag.get_task("ledger").upstream_task_ids
    assert release.is_teardown and release.upstream_task_ids == {"lock_targets", "teardown_scratch"}
    assert dag.get_task("journal").upstream_task_ids == {"release_targets"}


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
def test_parsing_does_no_heavy_imports_and_survives_a_missing_estate(path):
    # A missing or broken estate file must not break parsing: the estate is validated by tasks; parsing
    # reads only its schedules section, tolerantly (drdrill.timetables.schedule_for).
    env = {**os.environ, "DRDRILL_ESTATE": "/nonexistent/estate.yaml"}
    res = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, env=env,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []


# ------------------------------------------------------------------ pools and schedules
SCHEDULED = ["dr_daily_verification", "dr_monthly_restore_test", "dr_quarterly_failover_drill",
             "dr_quarterly_compliance_report",
             "dr_monthly_velero_restore_test"]


def test_velero_restore_test_tears_down_always_after_a_setup_and_journals(dagbag):
    dag = dagbag.get_dag("dr_monthly_velero_restore_test")
    assert dag.get_task("prepare").is_setup
    td = dag.get_task("teardown")
    assert td.is_teardown and "prepare" in td.upstream_task_ids and "verify" in td.upstream_task_ids
    assert td.__class__.__name__ == "VeleroRestoreTeardownOperator"
    assert dag.get_task("restore").__class__.__name__ == "VeleroRestoreOperator"
    journal = dag.get_task("journal")
    assert journal.trigger_rule == "all_done" and "teardown" in journal.upstream_task_ids
    assert set(dag.params) == {"velero", "backup", "dry_run"}


@pytest.mark.parametrize("dag_id", SCHEDULED)
def test_every_drill_task_is_in_a_drill_pool(dagbag, dag_id):
    from drdrill.core.limits import DESTRUCTIVE_POOL, DRILL_POOL

    dag = dagbag.get_dag(dag_id)
    pools = {t.task_id: t.pool for t in dag.tasks}
    assert set(pools.values()) <= {DRILL_POOL, DESTRUCTIVE_POOL}, pools
    # Taking a target lock runs in the 1-slot pool (two acquisitions never at once: drdrill.core.targetlock).
    acting = {t for t, p in pools.items() if p == DESTRUCTIVE_POOL} - {"lock_targets", "failover.lock_targets"}
    # Only the failover drill acts on production servers or DNS (tests/unit/test_runbook.py lists the steps);
    # the restore test restores into a scratch server whose paths and ports preflight keeps off production.
    assert bool(acting) is (dag_id == "dr_quarterly_failover_drill"), acting


def test_the_pools_the_drills_use_are_the_ones_every_setup_creates():
    import yaml

    from drdrill.core.limits import DESTRUCTIVE_POOL, DRILL_POOL

    declared = {p["pool_name"]: p for p in yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())
                ["airflow"]["pools"]}
    assert declared[DESTRUCTIVE_POOL]["pool_slot"] == 1 and declared[DRILL_POOL]["pool_slot"] >= 1
    init = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())["services"]["airflow-init"]["command"][-1]
    assert f"airflow pools set {DESTRUCTIVE_POOL} 1 " in init and f"airflow pools set {DRILL_POOL} " in init
    make = (ROOT / "Makefile").read_text()
    assert f"pools set {DESTRUCTIVE_POOL} 1" in make and f"pools set {DRILL_POOL}" in make


@pytest.mark.parametrize("dag_id", SCHEDULED)
def test_every_scheduled_drill_uses_the_estate_timetable_never_a_run_on_unpause(dagbag, dag_id):
    from drdrill.core.schedules import Schedules
    from drdrill.timetables import DrillTimetable

    tt = dagbag.get_dag(dag_id).timetable
    assert isinstance(tt, DrillTimetable), type(tt)
    entry = Schedules().for_drill(dag_id)  # the sandbox estate has no schedules section: the defaults
    assert (tt.day, f"{tt.at:%H:%M}", tt.months) == (entry.day, entry.at, entry.month_list)


PARSE_SCHEDULE = """
import json, runpy, sys
ns = runpy.run_path(sys.argv[1])
dag = ns[sys.argv[2]]()
print(json.dumps(getattr(dag.timetable, "summary", None)))
"""


def test_a_dag_file_takes_its_schedule_from_the_estate_it_will_run_against(tmp_path):
    from drdrill.core.paths import DEFAULT_ESTATE

    f = tmp_path / "estate.yaml"
    f.write_text(DEFAULT_ESTATE.read_text() + "\nschedules:\n  timezone: Europe/Berlin\n"
                 "  dr_monthly_restore_test: {day: second wed, at: '07:15'}\n")
    env = {**os.environ, "DRDRILL_ESTATE": str(f)}
    res = subprocess.run([sys.executable, "-c", PARSE_SCHEDULE, str(ROOT / "dags" / "dr_monthly_restore_test.py"),
                          "dr_monthly_restore_test"], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout.strip().splitlines()[-1]) == "second wed, every month, 07:15 Europe/Berlin"
    # A typo in the section: the DAG still imports, on the default schedule, and the log says why.
    f.write_text(f.read_text().replace("second wed", "2nd wed"))
    res = subprocess.run([sys.executable, "-c", PARSE_SCHEDULE, str(ROOT / "dags" / "dr_monthly_restore_test.py"),
                          "dr_monthly_restore_test"], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout.strip().splitlines()[-1]) == "first business day, every month, 10:00 UTC"
    assert "unknown day rule '2nd wed'" in res.stderr + res.stdout and "using the default schedule" in (
        res.stderr + res.stdout)
