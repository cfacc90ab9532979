"""The PostgreSQL failover runbook as one task graph, shared by both failover DAGs.

`build_runbook(mode)` is called inside a DAG definition and adds the runbook's phases as
task groups named after the seed runbook, so the Airflow UI reads like it::

    estate_check -> preflight -> [detect] -> assess -> approval -> failover -> dns_switch -> verify
              -> stabilize -> [failback] ;  verify failed -> rollback ;  always: canary stop,
              measure, cleanup, journal ;  from the fault (drill) or the first failed health
              check (incident): rto_watch, the RTO alert (deferred until verify ends)

``mode`` is ``"drill"`` (the fault is injected; failback at the end) or ``"incident"``
(trigger criteria first, no fault). One module per phase builds its group; the reusable steps
are drdrill's operators (promote, DNS switch), the logic is in `drdrill.drills.failover`.
Nothing here reads the estate at parse time.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import get_current_context, task

from drdrill.runbook.approval import RunbookApproval, add_approval
from drdrill.runbook.assess import add_assess, add_detect, add_preflight
from drdrill.runbook.common import plan
from drdrill.runbook.failover import add_failover, add_rto_watch
from drdrill.runbook.stabilize import add_failback, add_stabilize
from drdrill.runbook.verify import add_verify

__all__ = ["RunbookApproval", "build_runbook"]


def build_runbook(mode: str) -> list[str]:
    """Add the runbook's tasks to the current DAG; returns every task id (for the journal)."""
    drill = mode == "drill"
    ids: list[str] = []
    pre = add_preflight(ids)
    head: Any = pre if drill else add_detect(pre, ids)
    assessed = add_assess(head, ids)
    approved = add_approval(assessed, ids, drill=drill)
    fo = add_failover(approved, ids, drill=drill)
    watch = add_rto_watch(fo["fault"] if drill else head, ids, drill=drill)
    v = add_verify(fo["switched"], fo["canary_started"], ids, drill=drill)
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

    @task(trigger_rule="all_done")
    def journal() -> dict:
        from drdrill.drills.failover import journal as failover_journal

        return failover_journal.finish(get_current_context(), ids)

    cleaned >> journal()
    return ids
