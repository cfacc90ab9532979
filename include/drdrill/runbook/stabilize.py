"""Phase 4, Stabilize (archiving, the old primary as new standby, topology), and the drill's failback."""

from __future__ import annotations

from typing import Any

from airflow.sdk import TaskGroup, task

from drdrill.core.journal import step
from drdrill.operators.route53 import Route53RecordSwitchOperator
from drdrill.runbook.common import CLUSTER, DRY_RUN, PRIMARY, act_pool, plan
from drdrill.sensors.postgres import PostgresPromotedSensor


def add_stabilize(verified: Any, ids: list[str], *, drill: bool) -> Any:
    with TaskGroup("stabilize", tooltip="Phase 4 (25-30 min): archiving on the new primary, new standby, topology"):
        @task(retries=0)
        @step
        def archiving() -> dict:
            from drdrill.drills import failover

            return failover.archiving(plan())

        @task(retries=0, pool=act_pool(drill))
        @step
        def new_standby() -> dict:
            from drdrill.drills import failover

            p = plan()
            return failover.new_standby(p, p.primary, p.standby)

        @task(retries=0)
        @step
        def record_topology() -> dict:
            from drdrill.drills import failover

            return failover.topology_state(plan(), "stabilize")

        arch = archiving()
        verified >> arch
        stood = new_standby()
        arch >> stood
        recorded = record_topology()
        stood >> recorded
    ids += ["stabilize.archiving", "stabilize.new_standby", "stabilize.record_topology"]
    return recorded


def add_failback(upstream: list[Any], ids: list[str]) -> Any:
    """Drill only: a planned switchover back to the original primary (param ``failback``)."""
    with TaskGroup("failback", tooltip="Drill only: planned switchover back to the original primary"):
        @task.short_circuit(ignore_downstream_trigger_rules=False)
        def enabled() -> bool:
            return bool(plan().failback)

        @task(retries=0)
        @step
        def safeguards() -> dict:
            from drdrill.drills import failover

            p = plan()
            if p.dry_run:  # nothing failed over, so the swapped roles would not hold
                return {"dry_run": True, "would": f"check {p.primary} as standby of {p.standby}"}
            # the way back is a planned switchover to a streaming standby, whatever the scope
            back = failover.Plan.from_dict({**p.to_dict(), "primary": p.standby, "standby": p.primary,
                                            "scope": "node"})
            return failover.recheck(back)

        @task(retries=0, pool=act_pool(True))
        @step
        def switchover() -> dict:
            from airflow.sdk import get_current_context

            from drdrill.drills import failover
            from drdrill.runbook.common import LOCK

            # kill switch and lease checked right before it (drdrill.drills.failover.locking.guard)
            return failover.failback_switchover(plan(), get_current_context()["ti"].xcom_pull(task_ids=LOCK))

        @task(retries=0)
        @step
        def verify() -> dict:
            from drdrill.drills import failover

            p = plan()
            return failover.verify(p, p.primary, fault_at=None, wait_canary=False)

        @task(retries=0, pool=act_pool(True))
        @step
        def new_standby() -> dict:
            from drdrill.drills import failover

            p = plan()
            if p.scope == "region":  # the lost region's other nodes, the DR node back to its mode, backups
                from drdrill.drills.failover import region

                out = region.finish_failback(p)
            else:
                out = failover.new_standby(p, p.standby, p.primary)
            out["archiving"] = failover.archiving(p)
            out["topology"] = failover.topology_state(p, "resolved")
            return out

        on = enabled()
        upstream >> on
        sw = switchover()
        writable = PostgresPromotedSensor(task_id="wait_writable", target=sw, dry_run=DRY_RUN, wait_timeout=600)
        dns = Route53RecordSwitchOperator(
            task_id="dns_switch", cluster=CLUSTER, node=PRIMARY, dry_run=DRY_RUN, retries=0, pool=act_pool(True),
            comment="drdrill {{ dag.dag_id }} {{ run_id }}: " + PRIMARY + " is primary")
        last = new_standby()
        on >> safeguards() >> sw >> writable >> dns >> verify() >> last
    ids += ["failback.safeguards", "failback.switchover", "failback.wait_writable", "failback.dns_switch",
            "failback.verify", "failback.new_standby"]
    return last
