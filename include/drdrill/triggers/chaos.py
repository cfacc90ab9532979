"""Watch a chaos fault in the triggerer: the customer probe runs while the target heals (or the fault holds).

One trigger for every chaos drill and target kind, so no worker slot is held while a pod kill
heals or an AZ stays down:

- ``mode="heal"``: polls the target (`drdrill.drills.chaos.targets`) until every victim is replaced
  by a replica that is itself ready and the workload is back at its desired count; fires
  ``healed`` with the time to detect (the first poll where the victim is gone) and to recover,
  or ``timeout`` ("not healed within N s" and what is still missing);
- ``mode="hold"``: keeps the fault for ``hold_seconds`` (the AZ failure's duration), then fires
  ``held``.

Either way the customer probe (`drdrill.core.probe.CustomerProbe`) sends its steady stream
through the service's front door for the whole wait, and the trigger fires ``aborted`` as soon
as its errors pass ``max_errors`` (the estate's tolerance): a drill stops hurting customers the
moment they notice. The event carries the probe's figures for the period.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

log = logging.getLogger(__name__)


class ChaosObserveTrigger(BaseTrigger):
    """:param service: the estate's service entry as a dict (``ServiceTarget.model_dump()``)
    :param mode: ``heal`` (wait for recovery) or ``hold`` (keep the fault ``hold_seconds``)
    :param victims: victim records from the kill (``program``/``pid`` or ``name``/``uid``)
    :param killed_at: epoch seconds of the action
    :param timeout_seconds: heal bound (``mode="heal"``)
    :param hold_seconds: how long the fault holds (``mode="hold"``)
    :param probe_run_id: tags the probe's writes
    :param period: the probe period's name in the event (``during``)
    :param poll_interval: seconds between looks at the target
    :param payload: returned as is in the event (what the deferring task needs to resume)
    """

    def __init__(self, *, service: dict[str, Any], mode: str, victims: list[dict[str, Any]], killed_at: float,
                 timeout_seconds: float = 300, hold_seconds: float = 0, probe_run_id: str = "chaos",
                 period: str = "during", poll_interval: float = 0.25, payload: dict[str, Any] | None = None) -> None:
        super().__init__()
        if mode not in ("heal", "hold"):
            raise ValueError(f"mode must be heal or hold, got {mode!r}")
        self.service = service
        self.mode = mode
        self.victims = list(victims)
        self.killed_at = float(killed_at)
        self.timeout_seconds = float(timeout_seconds)
        self.hold_seconds = float(hold_seconds)
        self.probe_run_id = probe_run_id
        self.period = period
        self.poll_interval = float(poll_interval)
        self.payload = payload

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("drdrill.triggers.chaos.ChaosObserveTrigger", {
            "service": self.service, "mode": self.mode, "victims": self.victims, "killed_at": self.killed_at,
            "timeout_seconds": self.timeout_seconds, "hold_seconds": self.hold_seconds,
            "probe_run_id": self.probe_run_id, "period": self.period, "poll_interval": self.poll_interval,
            "payload": self.payload})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from drdrill.core.services import ServiceTarget
        from drdrill.drills.chaos.common import customer_probe
        from drdrill.drills.chaos.targets import target_ops

        svc = ServiceTarget.model_validate(self.service)
        probe = customer_probe(svc, self.probe_run_id)
        ops = target_ops(svc) if self.mode == "heal" else None
        detected_at: float | None = None
        last: dict[str, Any] = {}
        await asyncio.to_thread(probe.start, self.period)
        status, message = "", ""
        try:
            while True:
                now = time.time()
                if ops is not None:
                    try:  # a target with an async API (Kubernetes) is read in the loop, others in a thread
                        last = (await ops.aheal_status(self.victims, self.killed_at) if hasattr(ops, "aheal_status")
                                else await asyncio.to_thread(ops.heal_status, self.victims, self.killed_at))
                    except Exception as e:  # noqa: BLE001 - the target's API hiccuped: look again
                        last = {**last, "healed": False, "missing": f"could not read the target: {e}"}
                    if last.get("detected") and detected_at is None:
                        detected_at = now
                    if last.get("healed"):
                        status = "healed"
                        break
                    if now - self.killed_at >= self.timeout_seconds:
                        status = "timeout"
                        message = (f"not healed within {self.timeout_seconds:g} s: "
                                   f"{last.get('missing') or 'the target did not report healthy'}")
                        break
                elif now - self.killed_at >= self.hold_seconds:
                    status = "held"
                    break
                errors = probe.report().get(self.period, {}).get("errors") or 0
                if errors > svc.probe.max_errors:
                    status = "aborted"
                    message = (f"aborted: customers saw {errors} error(s) through {svc.url}, more than the "
                               f"{svc.probe.max_errors} tolerated (services[{svc.name}].probe.max_errors)")
                    break
                await asyncio.sleep(self.poll_interval)
        finally:
            await asyncio.to_thread(probe.stop)
        ended = time.time()
        report = probe.report()
        event = {"status": status, "message": message, "mode": self.mode, "killed_at": self.killed_at,
                 "ended_at": ended, "seconds": round(ended - self.killed_at, 3),
                 "detect_seconds": round(detected_at - self.killed_at, 3) if detected_at else None,
                 "recover_seconds": round(ended - self.killed_at, 3) if status == "healed" else None,
                 "target": {k: v for k, v in last.items() if k != "replicas"},
                 "replicas": last.get("replicas"),
                 "probe": report.get(self.period, {}), "payload": self.payload}
        log.info("chaos %s: %s %s", self.mode, status, message)
        yield TriggerEvent(event)
