"""Phase 2, Failover: canary, safeguards again, the fault (drill), promote, wait for writes; DNS switch."""

from __future__ import annotations

from typing import Any

from airflow.sdk import TaskGroup, setup, task

from drdrill.core.journal import step
from drdrill.operators.deadline import RecoveryDeadlineOperator
from drdrill.operators.postgres import PostgresPromoteOperator
from drdrill.operators.route53 import Route53RecordSwitchOperator
from drdrill.runbook.common import CLUSTER, DRY_RUN, RTO_DEADLINE_MINUTES, STANDBY, act_pool, plan
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

        @task(retries=0, pool=act_pool(drill))
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
                                           retries=0, pool=act_pool(drill))
        fault = None
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
            task_id="switch", cluster=CLUSTER, node=STANDBY, dry_run=DRY_RUN, retries=0, pool=act_pool(drill),
            comment="drdrill {{ dag.dag_id }} {{ run_id }}: " + STANDBY + " is primary")
        [writable, recorded] >> switched
    ids.append("dns_switch.switch")
    return {"canary_started": canary_started, "switched": switched, "fault": fault}


# When the outage starts: the injected fault (drill), the first failed health check (incident).
FAULT_AT = "{{ ti.xcom_pull(task_ids='failover.inject_fault')['fault_at'] }}"
FAILING_SINCE = ("{{ (ti.xcom_pull(task_ids='detect.primary_down') or {}).get('failing_since') "
                 "or (ti.xcom_pull(task_ids='detect.primary_down') or {}).get('confirmed_at') or '' }}")


def add_rto_watch(outage_started: Any, ids: list[str], *, drill: bool) -> Any:
    """The RTO alert: deferred from the outage's start until the service is verified; when the
    estate's RTO target passes first, the escalation goes out to the cluster's channels while the
    recovery is still running, and the journal records it."""
    watch = RecoveryDeadlineOperator(
        task_id="rto_watch", cluster=CLUSTER, since=FAULT_AT if drill else FAILING_SINCE,
        watch_task_ids=["verify.checks"], within_minutes=RTO_DEADLINE_MINUTES,
        on_missed="drdrill.drills.failover.comms.rto_deadline_missed", retries=0,
        # First in line for a worker slot: a watch that starts late can only report the miss late.
        priority_weight=1000, weight_rule="absolute",
        doc_md="Escalates when the service is not verified within the RTO target after the outage began.")
    outage_started >> watch
    ids.append("rto_watch")
    return watch
