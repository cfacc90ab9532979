"""Test DAG: the Route53 switch as a user's DAG writes it, deferring at once when the change is not
INSYNC yet (tests/integration/test_route53_switch.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag

from drdrill.operators.route53 import Route53RecordSwitchOperator


@dag(dag_id="test_route53_switch", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC), catchup=False,
     default_args={"retries": 0, "execution_timeout": timedelta(minutes=5)}, tags=["test"],
     params={"zone": Param("", type="string"), "record": Param("", type="string"),
             "value": Param("", type="string"), "insync_timeout": Param(60, type="integer")})
def test_route53_switch():
    Route53RecordSwitchOperator(task_id="switch", aws_conn_id="aws_sandbox", zone="{{ params.zone }}",
                                record="{{ params.record }}", value="{{ params.value }}", ttl=5,
                                insync_timeout="{{ params.insync_timeout }}", poke_seconds=0)


test_route53_switch()
