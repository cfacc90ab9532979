"""Phase 2, Failover: canary, safeguards again, then one task for the critical path (the fault in a
drill, promote, wait for writes, DNS UPSERT); the rest of the DNS switch (INSYNC, read back)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import TaskGroup, get_current_context, setup, task

from drdrill.core.journal import step
from drdrill.operators.deadline import RecoveryDeadlineOperator
from drdrill.operators.route53 import Route53RecordSwitchOperator
from drdrill.runbook.common import (
    CLUSTER,
    CRITICAL,
    DRY_RUN,
    LOCK,
    RTO_DEADLINE_MINUTES,
    STANDBY,
    act_pool,
    critical_path_steps,
    plan,
)


def add_failover(approved: list[Any], ids: list[str], parts: dict[str, list[str]], *, drill: bool) -> dict[str, Any]:
    """Phase 2. The critical path (fault -> promote -> writable -> DNS) is ONE task, ``promote_and_switch``:
    under a real scheduler each hop between two tasks costs about a second, more than the steps
    themselves, and the RTO runs from the fault. Each step is still its own journal step
    (``parts``), so the phase split, the timeline and the evidence are unchanged; what is not on the way
    to the first write (``after_promotion``, ``dns_switch.insync``) runs after it, beside the recovery."""
    with TaskGroup("failover", tooltip="Phase 2 (5-15 min): target lock, canary, safeguards again, then in one "
                                       "task: fault (drill), promote, wait for writes, DNS UPSERT"):
        # The lease on cluster:<name> before the first action (the canary writes to the primary): no chaos,
        # restore or other failover drill acts on the cluster until release_targets (the last teardown).
        # In dr_destructive (drill): two acquisitions never run at once (drdrill.core.targetlock).
        @task(retries=0, pool=act_pool(drill), trigger_rule="none_failed_min_one_success", doc_md=(
            "Kill switch (drill), then the lease on `cluster:<name>` (an incident takes it by force); "
            "released by `release_targets` whatever happens."))
        @step
        def lock_targets() -> dict:
            from drdrill.drills.failover import locking

            return locking.lock(plan(), get_current_context()["ti"].task_id)

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

        steps_here = critical_path_steps(drill)

        # The fault, the promotion and the DNS change act on production: one at a time across drills.
        @task(retries=0, multiple_outputs=False, pool=act_pool(drill), doc_md=(
            "The critical path with no scheduling hop inside: " + " -> ".join(steps_here) + ". Each is its own "
            "journal step; the fault's time is published at once (XCom `fault_at`) for `rto_watch`."))
        def promote_and_switch(before: dict) -> dict:
            from drdrill.core.journal import StepsOfTask
            from drdrill.drills import failover

            locked = get_current_context()["ti"].xcom_pull(task_ids=LOCK)
            with StepsOfTask(steps_here) as steps:
                out = failover.promote_and_switch(plan(), steps, before, locked)
                steps.publish("dns_change", out["dns"])
                return out

        @task(retries=0)
        @step
        def after_promotion() -> dict:
            from drdrill.drills import failover

            p = plan()
            return failover.after_promotion(p, p.standby)

        locked = lock_targets()
        approved >> locked
        canary_started = start_canary()
        locked >> canary_started
        rechecked = safeguards()
        canary_started >> rechecked
        critical = promote_and_switch(rechecked)
        recorded = after_promotion()
        critical >> recorded
    ids += [LOCK, "failover.start_canary", "failover.safeguards", "failover.promote_and_switch",
            "failover.after_promotion"]
    parts[CRITICAL] = steps_here

    with TaskGroup("dns_switch", tooltip="Route53 INSYNC of the UPSERT sent by failover.promote_and_switch "
                                         "(deferred when slow), the record read back"):
        insync = Route53RecordSwitchOperator(
            task_id="insync", cluster=CLUSTER, node=STANDBY, dry_run=DRY_RUN, retries=0,
            change=critical["dns_change"],
            comment="drdrill {{ dag.dag_id }} {{ run_id }}: " + STANDBY + " is primary")
        critical >> insync
    ids.append("dns_switch.insync")
    return {"canary_started": canary_started, "switched": [insync, recorded], "critical": critical,
            "rechecked": rechecked, "locked": locked}


# When the outage starts: the injected fault (drill; published by the critical path task while it
# runs), the first failed health check (incident).
FAILING_SINCE = ("{{ (ti.xcom_pull(task_ids='detect.primary_down') or {}).get('failing_since') "
                 "or (ti.xcom_pull(task_ids='detect.primary_down') or {}).get('confirmed_at') or '' }}")


def add_rto_watch(outage_started: Any, ids: list[str], *, drill: bool) -> Any:
    """The RTO alert: deferred from the outage's start until the service is verified; when the
    estate's RTO target passes first, the escalation goes out to the cluster's channels while the
    recovery is still running, and the journal records it.

    In a drill the fault is injected by ``failover.promote_and_switch`` (no hop before the
    promotion): the watch starts before it, beside the safeguards (it is already running when the
    fault goes in), and takes the fault's time from the XCom that task publishes at once; when the
    safeguards refuse, that task never runs and the watch ends with ``no outage``."""
    since = ({"since_task_id": CRITICAL, "since_key": "fault_at"} if drill
             else {"since": FAILING_SINCE})
    watch = RecoveryDeadlineOperator(
        task_id="rto_watch", cluster=CLUSTER, **since,
        watch_task_ids=["verify.checks"], within_minutes=RTO_DEADLINE_MINUTES,
        on_missed="drdrill.drills.failover.comms.rto_deadline_missed", retries=0,
        # First in line for a worker slot: a watch that starts late can only report the miss late.
        priority_weight=1000, weight_rule="absolute",
        doc_md="Escalates when the service is not verified within the RTO target after the outage began.")
    outage_started >> watch
    ids.append("rto_watch")
    return watch
