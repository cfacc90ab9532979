"""A recovery deadline counted from the fault: the alert when recovery overruns its target.

Airflow's Deadline Alerts count from the run's creation or queueing; a drill's downtime starts
later, at the fault (approval waits and queueing are not downtime), and an incident's at the
first failed health check. This operator starts right after that moment, defers (no worker
slot) and, when the watched tasks have not finished by the deadline, calls ``on_missed``: the
escalation goes out while the recovery is still running, not after it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from drdrill.operators.base import DrillOperator, estate_cluster


def _epoch(value: Any) -> float | None:
    """An epoch (number or numeric text) or an ISO time; None when empty."""
    if value in (None, "", "None"):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        from datetime import datetime

        return datetime.fromisoformat(str(value)).timestamp()


class RecoveryDeadlineOperator(DrillOperator):
    """Alert when ``watch_task_ids`` have not finished ``within_minutes`` after ``since``.

    :param since: when the clock starts: epoch seconds or an ISO time, usually templated from the
        fault task's XCom; empty means now
    :param watch_task_ids: tasks of this run whose end (any final state) ends the recovery
    :param within_minutes: the deadline; default: the estate cluster's ``targets.rto_minutes``;
        ``0`` turns the watch off (it returns at once and says so)
    :param cluster: an estate cluster, for the default target and for ``on_missed``
    :param on_missed: dotted path of a callable ``f(details: dict) -> dict | None`` called in
        the worker when the deadline passes (details: since, deadline_at, minutes, states, run,
        cluster); what it returns is kept in the task's XCom. Default: log only.
    :param poll_seconds: how often the triggerer looks at the watched tasks
    :param since_task_id: instead of ``since``: the task that publishes when the outage began, as an
        XCom (``since_key``, epoch seconds) while it still runs; the watch starts beside it, waits
        here for that XCom (``since_wait_seconds`` at most), and returns ``no outage`` when that task
        finished without publishing one (it never acted). For a task whose fault and recovery are one
        task (no scheduling hop between them), so the watch cannot start after it.
    :param since_key: the XCom key ``since_task_id`` publishes
    :param since_wait_seconds: how long to wait for ``since_task_id`` to start and publish

    Returns ``{"status": "ended" | "missed" | "off" | "not watched", "since", "deadline_at",
    "minutes", "states", ...}`` (or ``"no outage"``, see ``since_task_id``); with ``missed`` also
    ``fired_at`` and ``alert`` (what ``on_missed``
    returned). ``not watched``: the run is in-process (``dag.test()`` runs one task at a time, so
    nothing can be watched beside the recovery); a scheduler with a triggerer watches it.

    Usage::

        RecoveryDeadlineOperator(task_id="rto_watch", since="{{ ti.xcom_pull('fault')['at'] }}",
                                 watch_task_ids=["verify"], within_minutes=30,
                                 on_missed="my_pkg.alerts.page_oncall")
    """

    template_fields: Sequence[str] = ("since", "within_minutes", "cluster")

    def __init__(self, *, watch_task_ids: list[str], since: Any = None, within_minutes: Any = None,
                 cluster: str | None = None, on_missed: str | None = None, poll_seconds: float = 5.0,
                 since_task_id: str | None = None, since_key: str = "since", since_wait_seconds: float = 3600,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not watch_task_ids:
            raise ValueError("watch_task_ids: which tasks end the recovery?")
        self.watch_task_ids = list(watch_task_ids)
        self.since = since
        self.within_minutes = within_minutes
        self.cluster = cluster
        self.on_missed = on_missed
        self.poll_seconds = float(poll_seconds)
        self.since_task_id = since_task_id
        self.since_key = since_key
        self.since_wait_seconds = float(since_wait_seconds)

    def _minutes(self) -> float:
        if self.within_minutes not in (None, "", "None"):
            return float(self.within_minutes)
        if self.cluster:
            return float(estate_cluster(self.cluster).targets.rto_minutes)
        raise ValueError("give within_minutes, or cluster (its targets.rto_minutes is the deadline)")

    def run(self, context: Any) -> dict[str, Any]:
        from drdrill.triggers.deadline import FINISHED, RecoveryDeadlineTrigger, task_states

        minutes = self._minutes()
        if minutes <= 0:
            self.log.info("recovery deadline off (within_minutes=0): no alert will be sent for this run")
            return {"since": _epoch(self.since), "minutes": minutes, "watch": self.watch_task_ids, "status": "off",
                    "deadline_at": None}
        since = _epoch(self.since)
        if since is None and self.since_task_id:
            if _in_process():  # the task publishing it runs before or after this one, never beside it
                self.log.warning("run in-process (dag.test): the recovery deadline cannot be watched beside the "
                                 "recovery; no alert in this run (a scheduler and a triggerer watch it)")
                return {"since": None, "minutes": minutes, "watch": self.watch_task_ids, "status": "not watched",
                        "reason": "in-process run (dag.test)", "deadline_at": None}
            since = self._wait_since(context)
            if since is None:
                return {"since": None, "minutes": minutes, "watch": self.watch_task_ids, "status": "no outage",
                        "deadline_at": None, "reason": f"{self.since_task_id} ended without an outage start"}
        since = since or time.time()
        base = {"since": since, "minutes": minutes, "watch": self.watch_task_ids}
        deadline = since + minutes * 60
        base["deadline_at"] = deadline
        dr = context["dag_run"]
        trig = RecoveryDeadlineTrigger(dag_id=dr.dag_id, run_id=dr.run_id, task_ids=self.watch_task_ids,
                                       deadline_at=deadline, poll_interval=self.poll_seconds,
                                       payload={**base, "started": time.time()})
        seen = task_states(dr.dag_id, dr.run_id, self.watch_task_ids)
        if seen is not None and all(s in FINISHED for s in seen.values()):
            self.log.info("recovery already over when the watch started (%s)", seen)
            return self._conclude(context, base, "ended", seen, time.time())
        if _in_process():
            # dag.test() runs one task at a time, a deferral included: watching here would hold the
            # recovery itself back until the deadline and then report it missed.
            self.log.warning("run in-process (dag.test): the recovery deadline cannot be watched beside the "
                             "recovery; no alert in this run (a scheduler and a triggerer watch it)")
            return {**base, "status": "not watched", "reason": "in-process run (dag.test)", "states": seen}
        self.log.info("recovery deadline %s (%g min after %s): alert if %s have not finished by then",
                      _iso(deadline), minutes, _iso(since), ", ".join(self.watch_task_ids))
        # The deferral is bounded by the deadline itself (plus margin), not by execution_timeout.
        self.defer(trigger=trig, method_name="execute_complete",
                   timeout=timedelta(seconds=max(0.0, deadline - time.time()) + 600))

    def _wait_since(self, context: Any, poll: float = 0.1) -> float | None:
        """The outage's start as ``since_task_id`` publishes it; None when it ended without one."""
        from drdrill.triggers.deadline import FINISHED, task_states

        ti, dr = context["ti"], context["dag_run"]
        self.log.info("waiting for %s to publish when the outage began (XCom %s)", self.since_task_id,
                      self.since_key)
        deadline = time.monotonic() + self.since_wait_seconds
        checked_state = 0.0
        while time.monotonic() < deadline:
            value = _epoch(ti.xcom_pull(task_ids=self.since_task_id, key=self.since_key))
            if value is not None:
                return value
            if time.monotonic() - checked_state >= 1.0:  # the state costs more than the XCom: once a second
                checked_state = time.monotonic()
                state = (task_states(dr.dag_id, dr.run_id, [self.since_task_id]) or {}).get(self.since_task_id)
                if state in FINISHED:
                    value = _epoch(ti.xcom_pull(task_ids=self.since_task_id, key=self.since_key))
                    if value is None:
                        self.log.info("%s ended (%s) without an outage start: nothing to watch", self.since_task_id,
                                      state)
                    return value
            time.sleep(poll)
        raise TimeoutError(f"{self.since_task_id} published no outage start (XCom {self.since_key}) within "
                           f"{self.since_wait_seconds:.0f}s")

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from drdrill.core.journal import record_step

        p = event.get("payload") or {}
        base = {k: p.get(k) for k in ("since", "minutes", "watch", "deadline_at")}
        out = self._conclude(context, base, str(event.get("status")), event.get("states"), event.get("at"))
        record_step(context, self.task_id, "success", p.get("started") or time.time())
        return out

    def _conclude(self, context: Any, base: dict[str, Any], status: str, states: Any, at: float | None
                  ) -> dict[str, Any]:
        """``ended`` is checked against when the watched tasks really ended (their step records): a
        watch that started or looked late (busy workers, a slow triggerer) must not pass a recovery
        that finished after the deadline for one that met it."""
        out = {**base, "status": status, "states": states}
        if status == "ended":
            ended = self._ended_at(context)
            out["recovered_at"] = ended
            if ended is not None and ended > base["deadline_at"]:
                self.log.warning("the watched tasks ended at %s, after the deadline %s: missed, reported late",
                                 _iso(ended), _iso(base["deadline_at"]))
                out["status"] = "missed"
        if out["status"] == "missed":
            out["fired_at"] = at or time.time()
            self.log.warning("RECOVERY DEADLINE MISSED: %s not finished %g min after %s (states: %s)",
                             ", ".join(self.watch_task_ids), base.get("minutes"), _iso(base.get("since")), states)
            out["alert"] = self._alert(context, out)
        else:
            self.log.info("recovery over before the deadline (%s): no alert", states)
        return out

    def _ended_at(self, context: Any) -> float | None:
        """When the last watched task ended, from drdrill's step records (None for other operators)."""
        from datetime import datetime

        from drdrill.core.journal import STEP_KEY

        ends = []
        for tid in self.watch_task_ids:
            rec = context["ti"].xcom_pull(task_ids=tid, key=STEP_KEY) or {}
            if not rec.get("ended_at"):
                return None
            ends.append(datetime.fromisoformat(rec["ended_at"]).timestamp())
        return max(ends) if ends else None

    def _alert(self, context: Any, details: dict[str, Any]) -> Any:
        if not self.on_missed:
            return {"sent": ["log"]}
        from airflow.sdk.module_loading import import_string

        dr = context["dag_run"]
        return import_string(self.on_missed)({**details, "dag_id": dr.dag_id, "run_id": dr.run_id,
                                              "cluster": self.cluster})


def _in_process() -> bool:
    """True under ``dag.test()``: tasks and triggers run one at a time in this very process."""
    from airflow.sdk.execution_time import task_runner

    return type(getattr(task_runner, "SUPERVISOR_COMMS", None)).__name__ == "InProcessSupervisorComms"


def _iso(t: Any) -> str:
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(t)))
