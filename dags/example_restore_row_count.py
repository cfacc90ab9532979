"""Example: restore the newest backup into a scratch server and check its row counts.

A user's own DAG built from drdrill's operators with Airflow connections only (no estate file;
copy this file into your DAGs folder):

- ``pgbackrest_default`` (type ``pgbackrest``): login = the OS user pgBackRest and PostgreSQL run
  as (``postgres``); extra ``{"stanza": "main", "config": "/etc/pgbackrest/pgbackrest.conf"}``.
  The worker needs pgBackRest and the PostgreSQL binaries (``pg_bin_dir``).
- a ``postgres`` connection (param ``postgres_conn_id``): the login and password the readiness
  probe and the check use on the restored copy (its host and port are the scratch server's; the
  copy's own pg_hba.conf lets only that login in, with its password, as on the primary).

restore (deferrable until the copy accepts writes) -> row counts (Great Expectations) ; the
teardown stops the scratch server and removes its directory whatever happened before it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag

from drdrill.operators.dataquality import RowCountCheckOperator
from drdrill.operators.restore import PgBackRestRestoreOperator, ScratchServerTeardownOperator

# What the restored copy must hold: tables that may never be empty, and floors for the big ones.
CRITICAL_TABLES = ["app.customers", "app.orders"]
MIN_ROWS = {"public.pgbench_accounts": 1000}


@dag(
    dag_id="example_restore_row_count",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["dr", "example", "restore"],
    default_args={"owner": "platform", "retries": 0, "execution_timeout": timedelta(hours=2)},
    params={
        "repo": Param(1, type="integer", minimum=1, description="pgBackRest repo to restore from"),
        "scratch_root": Param("/var/lib/drdrill/scratch", type="string",
                              description="where the scratch server's directory is created"),
        "database": Param("app", type="string", description="database whose tables are checked"),
        "postgres_conn_id": Param("", type="string",
                                  description="Postgres connection with the login/password for the copy (optional)"),
    },
    doc_md=__doc__,
)
def example_restore_row_count():
    restore = PgBackRestRestoreOperator(
        task_id="restore", pgbackrest_conn_id="pgbackrest_default", repo="{{ params.repo }}",
        scratch_root="{{ params.scratch_root }}", postgres_conn_id="{{ params.postgres_conn_id }}")
    counts = RowCountCheckOperator(
        task_id="row_counts", target=restore.output, database="{{ params.database }}",
        postgres_conn_id="{{ params.postgres_conn_id }}",
        critical_tables=CRITICAL_TABLES, min_counts=MIN_ROWS)
    teardown = ScratchServerTeardownOperator(task_id="teardown", scratch_from="restore",
                                             pgbackrest_conn_id="pgbackrest_default")
    restore >> counts >> teardown.as_teardown(setups=restore)


example_restore_row_count()
