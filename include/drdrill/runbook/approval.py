"""The human gate between Assess and Failover.

Skipped for clusters marked unattended, and for a scheduled drill run inside the cluster's
unattended window; preflight decides it once (`drdrill.core.schedules.approval_decision`) and the
plan carries the reason into the journal.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import TaskGroup, task

from drdrill.core.journal import step
from drdrill.runbook.common import APPROVAL_TIMEOUT, plan


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


def add_approval(assessed: Any, ids: list[str], *, drill: bool) -> list[Any]:
    """The gate; returns both branches (the failover starts after whichever ran)."""
    with TaskGroup("approval", tooltip="Human gate: skipped for unattended clusters and for scheduled runs "
                                       "inside the unattended window"):
        @task.branch
        @step
        def gate() -> str:
            import logging

            p = plan()
            logging.getLogger("drdrill.drills.failover").info("approval: %s", p.approval_reason)
            return "approval.approve" if p.approval_required and not p.dry_run else "approval.not_needed"

        approve = RunbookApproval(
            task_id="approve", subject=f"Approve {'the failover drill' if drill else 'FAILOVER'} of "
                                       "{{ params.cluster }}?",
            body="{{ ti.xcom_pull(task_ids='assess.probe')['summary'] }}\n\nRun: {{ run_id }}. "
                 "No answer before the timeout means Reject.",
            defaults=["Reject"], response_timeout=APPROVAL_TIMEOUT, fail_on_reject=True,
            # the human has the response timeout; the task a little longer, so the timeout decides
            execution_timeout=APPROVAL_TIMEOUT + timedelta(minutes=5))
        not_needed = EmptyOperator(task_id="not_needed")
        g = gate()
        assessed >> g >> [approve, not_needed]
    ids += ["approval.gate", "approval.approve"]
    return [approve, not_needed]
