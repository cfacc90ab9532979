"""Test DAG: the FIS experiment as a user's DAG writes it, against moto over HTTP
(tests/integration/test_fis.py). Params are rendered as native objects (the template is a dict)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag

from drdrill.operators.fis import FisExperimentOperator


@dag(dag_id="test_fis_experiment", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC), catchup=False,
     default_args={"retries": 0, "execution_timeout": timedelta(minutes=5)}, tags=["test"],
     render_template_as_native_obj=True,
     params={"template": Param({}, type="object"), "update_template": Param(False, type="boolean"),
             "ecs_services": Param(["web"], type="array"), "heal_seconds": Param(5, type="number"),
             "timeout_seconds": Param(60, type="number"), "dry_run": Param(False, type="boolean")})
def test_fis_experiment():
    FisExperimentOperator(task_id="az_failure", aws_conn_id="aws_moto", region_name="eu-west-1",
                          template="{{ params.template }}", update_template="{{ params.update_template }}",
                          ecs_cluster="prod", ecs_services="{{ params.ecs_services }}",
                          heal_seconds="{{ params.heal_seconds }}", heal_poll_interval=0.2,
                          timeout_seconds="{{ params.timeout_seconds }}", poll_interval=0.3,
                          dry_run="{{ params.dry_run }}")


test_fis_experiment()
