"""Test DAG: the pod kill as a user's DAG writes it, against the Kubernetes emulator's connection
``k8s_emulator`` (tests/integration/test_k8s_pod_kill.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag

from drdrill.operators.kubernetes import KubernetesPodKillOperator


@dag(dag_id="test_k8s_pod_kill", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC), catchup=False,
     default_args={"retries": 0, "execution_timeout": timedelta(minutes=5)}, tags=["test"],
     params={"namespace": Param("", type="string"), "selector": Param("", type="string"),
             "max_victims": Param(1, type="integer"), "min_pod_age_seconds": Param(0, type="integer"),
             "seed": Param(None, type=["null", "integer"]), "heal_timeout_seconds": Param(30, type="integer"),
             "grace_period_seconds": Param(0, type=["null", "integer"]), "dry_run": Param(False, type="boolean")})
def test_k8s_pod_kill():
    KubernetesPodKillOperator(task_id="kill", kubernetes_conn_id="k8s_emulator", namespace="{{ params.namespace }}",
                              selector="{{ params.selector }}", max_victims="{{ params.max_victims }}",
                              min_pod_age_seconds="{{ params.min_pod_age_seconds }}", seed="{{ params.seed }}",
                              heal_timeout_seconds="{{ params.heal_timeout_seconds }}",
                              grace_period_seconds="{{ params.grace_period_seconds }}",
                              poll_interval=0.2, dry_run="{{ params.dry_run }}")


test_k8s_pod_kill()
