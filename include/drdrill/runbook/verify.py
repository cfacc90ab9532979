"""Phase 3, Verify; the rollback when it fails; the canary stopped; RTO and RPO measured."""

from __future__ import annotations

from typing import Any

from airflow.sdk import TaskGroup, get_current_context, task, teardown

from drdrill.core.journal import step
from drdrill.runbook.common import CRITICAL, failed_step_error, fault, plan, steps


def add_verify(switched: Any, canary_started: Any, ids: list[str], parts: dict[str, list[str]], *,
               drill: bool) -> dict[str, Any]:
    with TaskGroup("verify", tooltip="Phase 3 (15-25 min): not in recovery, write test, smoke test, canary"):
        @task(retries=0)
        @step
        def checks() -> dict:
            from drdrill.drills import failover

            p = plan()
            return failover.verify(p, p.standby, fault_at=(fault() or {}).get("fault_at") if drill else p.started_at)

        verified = checks()
        switched >> verified
    ids.append("verify.checks")

    with TaskGroup("rollback", tooltip="When verify fails: DNS back to the original primary if recoverable"):
        @task(trigger_rule="all_done", retries=0)
        @step
        def revert() -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from drdrill.drills import failover

            after_touch = [CRITICAL, "dns_switch.insync", "verify.checks"]
            st = steps(after_touch, parts)
            if "failed" not in [st.get(k) for k in ("promote", "wait_writable", "switch", "insync", "checks")]:
                raise AirflowSkipException("nothing failed after the primary was touched: no rollback")
            error = failed_step_error(list(reversed(after_touch)), parts) or "a failover step failed"
            # "verify failed:" then one line per failed check: the checks are the reason
            lines = [ln.strip() for ln in error.splitlines() if ln.strip()]
            reason = " | ".join(lines[1:4] if len(lines) > 1 else lines)[:500]
            return failover.rollback(plan(), st, reason)

        reverted = revert()
        verified >> reverted
    ids.append("rollback.revert")

    @teardown
    @step
    def stop_canary() -> dict:
        from drdrill.drills import failover

        return failover.stop_canary(plan())

    canary_stopped = stop_canary()
    [verified, reverted] >> canary_stopped
    canary_started >> canary_stopped
    ids.append("stop_canary")

    @task(trigger_rule="all_done", retries=0)
    @step
    def measure() -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from drdrill.drills import failover

        st = steps([CRITICAL], parts)
        if st.get("promote", "not run") == "not run" or (drill and st.get("inject_fault", "not run") == "not run"):
            raise AirflowSkipException("the failover did not start: nothing to measure")
        from drdrill.core.journal import gather_steps

        ti = get_current_context()["ti"]
        return failover.measure(plan(), fault() if drill else None, ti.xcom_pull(task_ids="verify.checks"),
                                ti.xcom_pull(task_ids=CRITICAL), gather_steps(ti, [CRITICAL], parts))

    measured = measure()
    canary_stopped >> measured
    ids.append("measure")
    return {"verified": verified, "reverted": reverted, "canary_stopped": canary_stopped, "measured": measured}
