"""The PostgreSQL failover runbook as one task graph, shared by both failover DAGs.

`build_runbook(mode)` is called inside a DAG definition and adds the runbook's phases as
task groups named after the seed runbook, so the Airflow UI reads like it::

    preflight -> [detect] -> assess -> approval -> failover -> dns_switch -> verify
              -> stabilize -> [failback] ;  verify failed -> rollback ;  always: canary stop,
              measure, cleanup, journal

``mode`` is ``"drill"`` (the fault is injected; failback at the end) or ``"incident"``
(trigger criteria first, no fault). Logic lives in `drdrill.drills.failover`; this module
only wires tasks. Nothing here reads the estate at parse time.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import TaskGroup, get_current_context, setup, task, teardown

from drdrill.core.journal import step
from drdrill.sensors.postgres import PostgresDownSensor, PostgresPromotedSensor

# Parse-time settings (the estate is never read while parsing): environment, documented in the README.
APPROVAL_TIMEOUT = timedelta(minutes=float(os.environ.get("DRDRILL_APPROVAL_TIMEOUT_MINUTES", "15")))
RTO_DEADLINE = timedelta(minutes=float(os.environ.get("DRDRILL_RTO_DEADLINE_MINUTES", "30")))


class RunbookApproval(ApprovalOperator):
    """The approval gate, with a step record for the journal: who answered what, or the timeout."""

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        import time

        from drdrill.core.journal import record_step

        ti = context["ti"]
        started = ti.start_date.timestamp() if getattr(ti, "start_date", None) else time.time()
        who = (event.get("responded_by_user") or {}).get("name") if isinstance(event, dict) else None
        try:
            out = super().execute_complete(context, event)
        except Exception as e:
            chosen = (event.get("chosen_options") if isinstance(event, dict) else None) or ["?"]
            by = f"by {who}" if who else "by nobody before the timeout (default)"
            record_step(context, self.task_id, "failed", started, f"{chosen[0]} {by}: {type(e).__name__}: {e}")
            raise
        record_step(context, self.task_id, "success", started)
        return out


def _plan() -> Any:
    from drdrill.drills import failover

    ti = get_current_context()["ti"]
    return failover.Plan.from_dict(ti.xcom_pull(task_ids="preflight"))


def _steps(task_ids: list[str]) -> dict[str, str]:
    """Status of each task's step record, by the short name after the group ('promote')."""
    from drdrill.core.journal import gather_steps

    ti = get_current_context()["ti"]
    return {s["task_id"].rsplit(".", 1)[-1]: s.get("status", "not run") for s in gather_steps(ti, task_ids)}


def deadline_alert() -> Any:
    """A Deadline Alert on the run at the RTO target: it notifies through the runbook's channels.

    ``DRDRILL_RTO_DEADLINE_MINUTES=0`` turns it off. The tests and the demo do: Airflow 3.3.2's
    ``dag.test()`` crashes at the end of a successful run of a DAG that has a deadline (it
    looks the alert up by its serialized dict instead of its id); the scheduler is not affected.
    """
    from airflow.sdk.definitions.deadline import AsyncCallback, DeadlineAlert, DeadlineReference

    if RTO_DEADLINE.total_seconds() <= 0:
        return None

    return DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=RTO_DEADLINE,
                         callback=AsyncCallback("drdrill.drills.failover.comms.rto_deadline_missed",
                                                kwargs={"minutes": RTO_DEADLINE.total_seconds() / 60}))


def build_runbook(mode: str) -> list[str]:
    """Add the runbook's tasks to the current DAG; returns every task id (for the journal)."""
    drill = mode == "drill"
    ids: list[str] = []

    @task(retries=0)
    @step
    def preflight() -> dict:
        from drdrill.drills import failover

        ctx = get_current_context()
        ti = ctx["ti"]

        def is_active(tag: dict) -> bool:
            try:
                return ti.get_dagrun_state(dag_id=tag.get("dag_id") or ctx["dag"].dag_id,
                                           run_id=tag["run_id"]) in ("queued", "running")
            except Exception:  # noqa: BLE001 - a run Airflow does not know is not active
                return False

        # Blast radius: two failovers must never overlap (drill and incident are separate DAGs,
        # each with max_active_runs=1).
        other = failover.INCIDENT if ctx["dag"].dag_id == failover.DRILL else failover.DRILL
        active = ti.get_dr_count(dag_id=other, states=["queued", "running"])
        return failover.preflight(dict(ctx["params"]), ctx["dag_run"].run_id, ctx["dag"].dag_id,
                                  is_active=is_active, concurrent={other: active})

    plan = preflight()
    ids.append("preflight")
    head: Any = plan

    if not drill:
        with TaskGroup("detect", tooltip="Trigger criteria: primary fails health checks for N consecutive minutes"):
            detect = PostgresDownSensor(task_id="primary_down", plan=plan, skip="{{ params.skip_health_wait }}",
                                        wait_timeout="{{ params.max_wait_minutes * 60 }}")
        ids.append("detect.primary_down")
        head = detect

    with TaskGroup("assess", tooltip="Phase 1 (0-5 min): is the standby fit to take over?"):
        @task(retries=0)
        @step
        def probe() -> dict:
            from drdrill.drills import failover

            return failover.assess(_plan())

        assessed = probe()
    ids.append("assess.probe")
    head >> assessed

    with TaskGroup("approval", tooltip="Human gate: skipped for clusters marked unattended"):
        @task.branch
        @step
        def gate() -> str:
            p = _plan()
            return "approval.approve" if p.approval_required and not p.dry_run else "approval.not_needed"

        approve = RunbookApproval(
            task_id="approve", subject=f"Approve {'the failover drill' if drill else 'FAILOVER'} of "
                                       "{{ params.cluster }}?",
            body="{{ ti.xcom_pull(task_ids='assess.probe')['summary'] }}\n\nRun: {{ run_id }}. "
                 "No answer before the timeout means Reject.",
            defaults=["Reject"], response_timeout=APPROVAL_TIMEOUT, fail_on_reject=True)
        not_needed = EmptyOperator(task_id="not_needed")
        g = gate()
        assessed >> g >> [approve, not_needed]
    ids += ["approval.gate", "approval.approve"]

    with TaskGroup("failover", tooltip="Phase 2 (5-15 min): canary, fault (drill), promote, wait for writes"):
        @setup
        @step
        def start_canary() -> dict:
            from drdrill.drills import failover

            return failover.start_canary(_plan())

        @task(retries=0)
        @step
        def safeguards() -> dict:
            from drdrill.drills import failover

            return failover.recheck(_plan())

        @task(retries=0)
        @step
        def inject_fault(before: dict) -> dict:
            from drdrill.drills import failover

            return failover.inject_fault(_plan(), before)

        @task(retries=0)
        @step
        def promote() -> dict:
            from drdrill.drills import failover

            return failover.promote(_plan())

        canary_started = start_canary.override(trigger_rule="none_failed_min_one_success")()
        [approve, not_needed] >> canary_started
        rechecked = safeguards()
        canary_started >> rechecked
        promoted = promote()
        if drill:
            fault = inject_fault(rechecked)
            fault >> promoted
            ids += ["failover.inject_fault"]
        else:
            rechecked >> promoted
        writable = PostgresPromotedSensor(task_id="wait_writable", target=promoted,
                                          dry_run="{{ params.dry_run }}", wait_timeout=600)
        promoted >> writable
    ids += ["failover.start_canary", "failover.safeguards", "failover.promote", "failover.wait_writable"]

    with TaskGroup("dns_switch", tooltip="Route53 UPSERT of the service record to the new primary, wait INSYNC"):
        @task(retries=0)
        @step
        def switch() -> dict:
            from drdrill.drills import failover

            p = _plan()
            return failover.switch_dns(p, p.standby)

        switched = switch()
        writable >> switched
    ids.append("dns_switch.switch")

    with TaskGroup("verify", tooltip="Phase 3 (15-25 min): not in recovery, write test, smoke test, canary"):
        @task(retries=0)
        @step
        def checks() -> dict:
            from drdrill.drills import failover

            p = _plan()
            ti = get_current_context()["ti"]
            fault = ti.xcom_pull(task_ids="failover.inject_fault") if drill else None
            return failover.verify(p, p.standby, fault_at=(fault or {}).get("fault_at") if drill else p.started_at)

        verified = checks()
        switched >> verified
    ids.append("verify.checks")

    with TaskGroup("rollback", tooltip="When verify fails: DNS back to the original primary if recoverable"):
        @task(trigger_rule="all_done", retries=0)
        @step
        def revert() -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from drdrill.drills import failover

            st = _steps(["failover.promote", "dns_switch.switch", "verify.checks"])
            if "failed" not in (st.get("promote"), st.get("switch"), st.get("checks")):
                raise AirflowSkipException("nothing failed after the primary was touched: no rollback")
            ti = get_current_context()["ti"]
            error = next((s.get("error", "") for s in ti.xcom_pull(
                task_ids=["verify.checks", "dns_switch.switch", "failover.promote"], key="drill_step") or []
                if s and s.get("status") == "failed"), "a failover step failed")
            # "verify failed:" then one line per failed check: the checks are the reason
            lines = [ln.strip() for ln in error.splitlines() if ln.strip()]
            reason = " | ".join(lines[1:4] if len(lines) > 1 else lines)[:500]
            return failover.rollback(_plan(), st, reason)

        reverted = revert()
        verified >> reverted
    ids.append("rollback.revert")

    @teardown
    @step
    def stop_canary() -> dict:
        from drdrill.drills import failover

        return failover.stop_canary(_plan())

    canary_stopped = stop_canary()
    [verified, reverted] >> canary_stopped
    canary_started >> canary_stopped
    ids.append("stop_canary")

    @task(trigger_rule="all_done", retries=0)
    @step
    def measure() -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from drdrill.drills import failover

        st = _steps(["failover.promote", "failover.inject_fault"] if drill else ["failover.promote"])
        if st.get("promote") == "not run" or (drill and st.get("inject_fault") == "not run"):
            raise AirflowSkipException("the failover did not start: nothing to measure")
        ti = get_current_context()["ti"]
        return failover.measure(_plan(), ti.xcom_pull(task_ids="failover.inject_fault") if drill else None,
                                ti.xcom_pull(task_ids="verify.checks"))

    measured = measure()
    canary_stopped >> measured
    ids.append("measure")

    with TaskGroup("stabilize", tooltip="Phase 4 (25-30 min): archiving on the new primary, new standby, topology"):
        @task(retries=0)
        @step
        def archiving() -> dict:
            from drdrill.drills import failover

            return failover.archiving(_plan())

        @task(retries=0)
        @step
        def new_standby() -> dict:
            from drdrill.drills import failover

            p = _plan()
            return failover.new_standby(p, p.primary, p.standby)

        @task(retries=0)
        @step
        def record_topology() -> dict:
            from drdrill.drills import failover

            return failover.topology_state(_plan(), "stabilize")

        arch = archiving()
        verified >> arch
        stood = new_standby()
        arch >> stood
        recorded = record_topology()
        stood >> recorded
    ids += ["stabilize.archiving", "stabilize.new_standby", "stabilize.record_topology"]
    tail: list[Any] = [recorded, measured]

    if drill:
        with TaskGroup("failback", tooltip="Drill only: planned switchover back to the original primary"):
            @task.short_circuit(ignore_downstream_trigger_rules=False)
            def enabled() -> bool:
                return bool(_plan().failback)

            @task(retries=0)
            @step
            def fb_safeguards() -> dict:
                from drdrill.drills import failover

                p = _plan()
                if p.dry_run:  # nothing failed over, so the swapped roles would not hold
                    return {"dry_run": True, "would": f"check {p.primary} as standby of {p.standby}"}
                back = failover.Plan.from_dict({**p.to_dict(), "primary": p.standby, "standby": p.primary})
                return failover.recheck(back)

            @task(retries=0)
            @step
            def switchover() -> dict:
                from drdrill.drills import failover

                return failover.failback_switchover(_plan())

            @task(retries=0)
            @step
            def fb_dns() -> dict:
                from drdrill.drills import failover

                p = _plan()
                return failover.switch_dns(p, p.primary)

            @task(retries=0)
            @step
            def fb_verify() -> dict:
                from drdrill.drills import failover

                p = _plan()
                return failover.verify(p, p.primary, fault_at=None, wait_canary=False)

            @task(retries=0)
            @step
            def fb_new_standby() -> dict:
                from drdrill.drills import failover

                p = _plan()
                out = failover.new_standby(p, p.standby, p.primary)
                out["archiving"] = failover.archiving(p)
                out["topology"] = failover.topology_state(p, "resolved")
                return out

            on = enabled()
            [recorded, measured] >> on
            fs = fb_safeguards.override(task_id="safeguards")()
            sw = switchover()
            fb_writable = PostgresPromotedSensor(task_id="wait_writable", target=sw, dry_run="{{ params.dry_run }}",
                                                 wait_timeout=600)
            fd = fb_dns.override(task_id="dns_switch")()
            fv = fb_verify.override(task_id="verify")()
            fn = fb_new_standby.override(task_id="new_standby")()
            on >> fs >> sw >> fb_writable >> fd >> fv >> fn
        ids += ["failback.safeguards", "failback.switchover", "failback.wait_writable", "failback.dns_switch",
                "failback.verify", "failback.new_standby"]
        tail = [fn, measured]

    @task(trigger_rule="all_done", retries=0)
    def cleanup() -> dict:
        from drdrill.drills import failover

        if not get_current_context()["ti"].xcom_pull(task_ids="preflight"):
            return {"removed": None, "reason": "preflight refused the run: nothing was created"}
        return failover.cleanup(_plan())

    cleaned = cleanup()
    tail >> cleaned
    [reverted, canary_stopped] >> cleaned

    @task(trigger_rule="all_done")
    def journal() -> dict:
        from drdrill.drills.failover import journal as failover_journal

        return failover_journal.finish(get_current_context(), ids)

    cleaned >> journal()
    return ids
