"""A recovery deadline watched in the triggerer: from a moment inside the run (the fault), not
from the run being queued.

Airflow's own Deadline Alerts can only count from the run's creation, its logical date or its
queueing (``DeadlineReference.TYPES``): approval waits and queueing would count as downtime. This
trigger counts from any epoch the deferring task hands it and fires when the watched tasks have
not all finished by then.

Lives in an importable package (not ``dags/``) because the triggerer imports it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

log = logging.getLogger(__name__)

# A task in one of these states will not change any more: the recovery it stands for is over.
FINISHED = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


def task_states(dag_id: str, run_id: str, task_ids: list[str]) -> dict[str, str | None] | None:
    """The tasks' states in the run, through the Task SDK (a task or the triggerer); None when
    Airflow could not be asked: unknown is never read as "finished", the deadline still fires."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    try:
        found = RuntimeTaskInstance.get_task_states(dag_id=dag_id, task_ids=list(task_ids), run_ids=[run_id])
    except Exception as e:  # noqa: BLE001 - an API hiccup: look again at the next poll
        log.warning("could not read the states of %s in %s (%s): still watching", task_ids, run_id, e)
        return None
    run = found.get(run_id) or {}
    return {t: (str(run[t]) if run.get(t) is not None else None) for t in task_ids}


class RecoveryDeadlineTrigger(BaseTrigger):
    """Fires ``ended`` when every task of ``task_ids`` in the run has finished, ``missed`` at
    ``deadline_at`` (epoch seconds) if they have not.

    :param dag_id: the run's DAG
    :param run_id: the run
    :param task_ids: the tasks whose end is the end of the recovery (e.g. ``verify.checks``)
    :param deadline_at: epoch seconds
    :param poll_interval: seconds between looks at the task states
    :param payload: returned as is in the events
    """

    def __init__(self, *, dag_id: str, run_id: str, task_ids: list[str], deadline_at: float,
                 poll_interval: float = 5.0, payload: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.dag_id = dag_id
        self.run_id = run_id
        self.task_ids = list(task_ids)
        self.deadline_at = float(deadline_at)
        self.poll_interval = float(poll_interval)
        self.payload = payload

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("drdrill.triggers.deadline.RecoveryDeadlineTrigger", {
            "dag_id": self.dag_id, "run_id": self.run_id, "task_ids": self.task_ids,
            "deadline_at": self.deadline_at, "poll_interval": self.poll_interval, "payload": self.payload})

    async def states(self) -> dict[str, str | None] | None:
        # In a thread: the Task SDK's call is synchronous (the triggerer's comms are thread-safe).
        return await asyncio.to_thread(task_states, self.dag_id, self.run_id, self.task_ids)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        log.info("watching %s of %s until %s", self.task_ids, self.run_id,
                 time.strftime("%H:%M:%S UTC", time.gmtime(self.deadline_at)))
        while True:
            seen = await self.states()
            now = time.time()
            if seen is not None and all(s in FINISHED for s in seen.values()):
                yield TriggerEvent({"status": "ended", "states": seen, "at": now, "deadline_at": self.deadline_at,
                                    "payload": self.payload})
                return
            if now >= self.deadline_at:
                yield TriggerEvent({"status": "missed", "states": seen, "at": now, "deadline_at": self.deadline_at,
                                    "payload": self.payload})
                return
            await asyncio.sleep(max(0.05, min(self.poll_interval, self.deadline_at - now)))
