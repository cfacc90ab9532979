"""Phase 2, Failover: canary, safeguards again, the fault (drill), promote, wait for writes; DNS switch."""

from __future__ import annotations

from typing import Any

from airflow.sdk import TaskGroup, setup, task

from drdrill.core.journal import step
from drdrill.operators.postgres import PostgresPromoteOperator
from drdrill.operators.route53 import Route53RecordSwitchOperator
from drdrill.runbook.common import CLUSTER, DRY_RUN, STANDBY, plan
from drdrill.sensors.postgres import PostgresPromotedSensor


def add_failover(approved: list[Any], ids: list[str], *, drill: bool) -> dict[str, Any]:
    with TaskGroup("failover", tooltip="Phase 2 (5-15 min): canary, fault (drill), promote, wait for writes"):
        @setup
        @step
        def start_canary() -> dict:
            from drdrill.drills import failover

            return failover.start_canary(plan())

        @task(retries=0)
        @step
        def safeguards() -> dict:
            from drdrill.drills import failover

            return failover.recheck(plan())

        @task(retries=0)
        @step
        def inject_fault(before: dict) -> dict:
            from drdrill.drills import failover

            return failover.inject_fault(plan(), before)

        @task(retries=0)
        @step
        def after_promotion() -> dict:
            from drdrill.drills import failover

            p = plan()
            return failover.after_promotion(p, p.standby)

        canary_started = start_canary.override(trigger_rule="none_failed_min_one_success")()
        approved >> canary_started
        rechecked = safeguards()
        canary_started >> rechecked
        promoted = PostgresPromoteOperator(task_id="promote", cluster=CLUSTER, node=STANDBY, dry_run=DRY_RUN,
                                           retries=0)
        if drill:
            fault = inject_fault(rechecked)
            fault >> promoted
            ids.append("failover.inject_fault")
        else:
            rechecked >> promoted
        recorded = after_promotion()
        writable = PostgresPromotedSensor(task_id="wait_writable", target=promoted.output, dry_run=DRY_RUN,
                                          wait_timeout=600)
        promoted >> [writable, recorded]
    ids += ["failover.start_canary", "failover.safeguards", "failover.promote", "failover.after_promotion",
            "failover.wait_writable"]

    with TaskGroup("dns_switch", tooltip="Route53 UPSERT of the service record to the new primary, wait INSYNC"):
        switched = Route53RecordSwitchOperator(
            task_id="switch", cluster=CLUSTER, node=STANDBY, dry_run=DRY_RUN, retries=0,
            comment="drdrill {{ dag.dag_id }} {{ run_id }}: " + STANDBY + " is primary")
        [writable, recorded] >> switched
    ids.append("dns_switch.switch")
    return {"canary_started": canary_started, "switched": switched}
