"""Airflow notifiers of drdrill: every drill's outcome told through the providers' notifiers.

`DrillOutcomeNotifier` is the ``on_success_callback`` and ``on_failure_callback`` of every drill's
journal task (`outcome_callbacks`): a failed run is sent to the estate's ``notifications:`` channels,
and so is the first pass after a failure (`drdrill.drills.outcome`).

Why the journal task and not the DAG's own ``on_failure_callback``: in Airflow 3.3 a DAG-level callback
runs in the DAG processor (the scheduler sends it a callback request when the run ends), a process
that may lack the providers, the connections' network path or the estate's storage, and only
``dag.test()`` runs it inline. A task's callbacks run in the worker right after the task, in the
same process that wrote the journal, under ``dag.test()``, the LocalExecutor, Celery and Kubernetes
alike. The journal task runs last (trigger rule ``all_done``) and fails exactly when the drill failed,
so its callbacks see every outcome, and they read the journal it has just written.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import BaseNotifier

log = logging.getLogger("drdrill.notifiers")


class DrillOutcomeNotifier(BaseNotifier):
    """Notify a drill run's failure, or its recovery, to the estate's channels (`drdrill.drills.outcome`).

    As a callback of the drill's journal task; it reads the journal of the run, decides, sends, and
    never raises: a notification that cannot be delivered is logged and never changes the run's result.

    :param journal_task_failed: the instance that is the failure callback: a missing journal is then a
        failure to tell (the task failed before writing it, or its worker was killed), not a mistake
    """

    def __init__(self, *, journal_task_failed: bool = False) -> None:
        super().__init__()
        self.journal_task_failed = journal_task_failed

    def notify(self, context: Any) -> None:
        from drdrill.drills import outcome

        try:
            self.outcome = outcome.notify_run(context, journal_task_failed=self.journal_task_failed)
        except Exception:  # noqa: BLE001 - a notification never changes the drill's result
            log.exception("the outcome notification of this run failed")
            self.outcome = {"event": None, "reason": "error"}


def outcome_callbacks() -> dict[str, Any]:
    """The journal task's callbacks: ``@task(trigger_rule="all_done", **outcome_callbacks())``."""
    return {"on_success_callback": [DrillOutcomeNotifier()],
            "on_failure_callback": [DrillOutcomeNotifier(journal_task_failed=True)]}
