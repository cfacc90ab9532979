"""Test DAG: drdrill's operators used as a user would, with arguments and connections only.

Run by tests/integration/test_operators.py against the sandbox; the params pick the case.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Param, dag

from drdrill.operators.pgbackrest import PgBackRestCheckOperator, PgBackRestVerifyOperator
from drdrill.operators.postgres import PostgresPromoteOperator
from drdrill.operators.restore import PgBackRestRestoreOperator, ScratchServerTeardownOperator
from drdrill.operators.route53 import Route53RecordSwitchOperator


@dag(dag_id="test_operators_by_connection", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC),
     catchup=False, default_args={"retries": 0},
     params={"zone": Param("", type="string"), "record": Param("", type="string"),
             "value": Param("", type="string"), "host": Param("127.0.0.1", type="string"),
             "port": Param(5432, type="integer"), "scratch_root": Param("/tmp", type="string")})
def test_operators_by_connection():
    # Independent tasks: each one's outcome is asserted on its own.
    PgBackRestCheckOperator(task_id="check", pgbackrest_conn_id="pgbackrest_default",
                            max_backup_age_hours={"full": 192})
    PgBackRestVerifyOperator(task_id="verify", pgbackrest_conn_id="pgbackrest_default", repos=[1])
    Route53RecordSwitchOperator(task_id="dns_switch", aws_conn_id="aws_sandbox", zone="{{ params.zone }}",
                                record="{{ params.record }}", value="{{ params.value }}", ttl=5, insync_timeout=30)
    # Pointed at the primary on purpose: the operator must refuse it (already a primary).
    PostgresPromoteOperator(task_id="promote", host="{{ params.host }}", port="{{ params.port }}",
                            postgres_conn_id="pg_sandbox")
    # poke_seconds=0: defer at once, so the triggerer path (and its resume) is what is tested.
    restore = PgBackRestRestoreOperator(task_id="restore", pgbackrest_conn_id="pgbackrest_default", repo=2,
                                        scratch_root="{{ params.scratch_root }}", poke_seconds=0,
                                        postgres_conn_id="pg_sandbox")
    restore >> ScratchServerTeardownOperator(task_id="teardown", pgbackrest_conn_id="pgbackrest_default").as_teardown(
        setups=restore)


test_operators_by_connection()
