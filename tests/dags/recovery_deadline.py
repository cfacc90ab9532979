"""Test DAG: RecoveryDeadlineOperator inside a real DAG run (tests/integration/test_recovery_deadline.py).

``fault`` starts the clock; ``recovery`` stands for the steps that restore service. Under dag.test
the watches can only see what has already happened (one task at a time): ``after_recovery`` finds
the recovery over, ``before_recovery`` runs while it has not started and says it cannot watch
beside it, ``off`` is turned off. The trigger itself is tested against this run's task states.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from airflow.sdk import dag, task

from drdrill.core.journal import step
from drdrill.operators.deadline import RecoveryDeadlineOperator

SINCE = "{{ ti.xcom_pull(task_ids='fault')['at'] }}"


@dag(dag_id="test_recovery_deadline", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC), catchup=False,
     default_args={"retries": 0, "execution_timeout": timedelta(minutes=10)}, tags=["test"])
def test_recovery_deadline():
    @task
    def fault() -> dict:
        return {"at": time.time()}

    @task
    @step
    def recovery() -> dict:
        return {"recovered_at": time.time()}

    started, recovered = fault(), recovery()
    before = RecoveryDeadlineOperator(task_id="before_recovery", since=SINCE, watch_task_ids=["recovery"],
                                      within_minutes=5)
    started >> before >> recovered
    after = RecoveryDeadlineOperator(task_id="after_recovery", since=SINCE, watch_task_ids=["recovery"],
                                     within_minutes=5)
    recovered >> after
    # A deadline the recovery cannot meet, looked at only after it: missed, reported late.
    late = RecoveryDeadlineOperator(task_id="late", since=SINCE, watch_task_ids=["recovery"], within_minutes=1e-6)
    recovered >> late
    off = RecoveryDeadlineOperator(task_id="off", since=SINCE, watch_task_ids=["recovery"], within_minutes=0)
    started >> off


test_recovery_deadline()
