"""The PostgreSQL failover runbook as one task graph, shared by both failover DAGs.

`build_runbook(mode)` is called inside a DAG definition and adds the runbook's phases as
task groups named after the seed runbook, so the Airflow UI reads like it::

    estate_check -> preflight -> [detect] -> assess -> approval -> failover (lock_targets first)
              -> dns_switch -> verify -> stabilize -> [failback] ;  verify failed -> rollback ;
              always: canary stop, measure, cleanup, release_targets, journal ;  from the fault (drill)
              or the first failed health check (incident): rto_watch, the RTO alert (deferred until verify ends)

The critical path (the fault in a drill, promote, wait for writes, the DNS UPSERT) is one task,
``failover.promote_and_switch``, recording one journal step per runbook step: under a real
scheduler each hop between tasks costs about a second, and the RTO runs from the fault.

``mode`` is ``"drill"`` (the fault is injected; failback at the end) or ``"incident"``
(trigger criteria first, no fault). One module per phase builds its group; the reusable steps
are drdrill's operators (promote, DNS switch), the logic is in `drdrill.drills.failover`.
Nothing here reads the estate at parse time.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import get_current_context, task

from drdrill.core.journal import step
from drdrill.notifiers import outcome_callbacks
from drdrill.runbook.approval import RunbookApproval, add_approval
from drdrill.runbook.assess import add_assess, add_detect, add_preflight
from drdrill.runbook.common import LOCK, RELEASE, plan
from drdrill.runbook.failover import add_failover, add_rto_watch
from drdrill.runbook.stabilize import add_failback, add_stabilize
from drdrill.runbook.verify import add_verify

__all__ = ["RunbookApproval", "build_runbook"]


def build_runbook(mode: str) -> list[str]:
    """Add the runbook's tasks to the current DAG; returns every task id (for the journal)."""
    drill = mode == "drill"
    ids: list[str] = []
    parts: dict[str, list[str]] = {}  # tasks that record several journal steps, and which
    pre = add_preflight(ids)
    head: Any = pre if drill else add_detect(pre, ids)
    assessed = add_assess(head, ids)
    approved = add_approval(assessed, ids, drill=drill)
    fo = add_failover(approved, ids, parts, drill=drill)
    # drill: started with the safeguards, so it is running when the critical path task injects the
    # fault and publishes its time (a watch that starts late can only report the miss late)
    watch = add_rto_watch(fo["canary_started"] if drill else head, ids, drill=drill)
    v = add_verify(fo["switched"], fo["canary_started"], ids, parts, drill=drill)
    recorded = add_stabilize(v["verified"], ids, drill=drill)
    tail: list[Any] = [recorded, v["measured"]]
    if drill:
        tail = [add_failback([recorded, v["measured"]], ids), v["measured"]]

    @task(trigger_rule="all_done", retries=0)
    def cleanup() -> dict:
        from drdrill.drills import failover

        if not get_current_context()["ti"].xcom_pull(task_ids="preflight"):
            return {"removed": None, "reason": "preflight refused the run: nothing was created"}
        return failover.cleanup(plan())

    cleaned = cleanup()
    tail >> cleaned
    [v["reverted"], v["canary_stopped"], watch] >> cleaned

    @task(retries=0)
    @step
    def release_targets() -> dict:
        from drdrill.drills.failover import locking

        return locking.unlock(get_current_context()["ti"].xcom_pull(task_ids=LOCK))

    # A teardown of the lock: runs whatever failed in between (skipped when no lease was taken).
    released = release_targets().as_teardown(setups=fo["locked"])
    cleaned >> released
    ids.append(RELEASE)

    @task(trigger_rule="all_done", **outcome_callbacks())  # failure / recovery notifications
    def journal() -> dict:
        from drdrill.drills.failover import journal as failover_journal

        return failover_journal.finish(get_current_context(), ids, parts)

    released >> journal()
    return ids
