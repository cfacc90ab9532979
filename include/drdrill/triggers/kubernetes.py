"""Wait, in the triggerer, until a Kubernetes workload has healed from a pod kill.

`HealWatch` is the per-poll logic as a plain object (one ``await watch.poll(hook)`` per poll), so a
trigger that watches more than the workload (a customer probe beside it) can call it too;
`PodHealedTrigger` is that loop alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from drdrill.hooks.kubernetes import AsyncChaosKubernetesHook


def _parse(t: str) -> datetime:
    d = datetime.fromisoformat(t.replace("Z", "+00:00"))
    return d if d.tzinfo else d.replace(tzinfo=UTC)


class HealWatch:
    """Follows one workload's heal over several polls and times it.

    ``detect_seconds``: from the kill to the first poll that saw a replacement pod (the controller
    noticed); ``recover_seconds``: from the kill to the first poll that saw the workload healed
    (`drdrill.hooks.kubernetes.assess_heal`). Both are measured at poll time (so at most one
    ``poll_interval`` late), on this machine's clock against ``killed_at``. A watch started afresh (a
    triggerer restart) times what it sees from its first poll: an upper bound.

    :param namespace: the workload's namespace
    :param selector: its label selector (the one the victims were picked with)
    :param victim_uids: uids of the pods killed
    :param killed_at: ISO timestamp of the kill (aware)
    :param desired: Ready pods the workload must have again (its ``spec.replicas``)
    """

    def __init__(self, *, namespace: str, selector: str, victim_uids: Sequence[str], killed_at: str,
                 desired: int) -> None:
        self.namespace = namespace
        self.selector = selector
        self.victim_uids = list(victim_uids)
        self.killed_at = killed_at
        self.desired = int(desired)
        self.detect_seconds: float | None = None
        self.recover_seconds: float | None = None
        self.last: dict[str, Any] | None = None

    def _since_kill(self) -> float:
        return round((datetime.now(UTC) - _parse(self.killed_at)).total_seconds(), 3)

    async def poll(self, hook: AsyncChaosKubernetesHook) -> dict[str, Any]:
        """One check through ``hook``; returns `assess_heal`'s dict with ``detect_seconds`` and
        ``recover_seconds`` (``None`` until seen)."""
        status = await hook.heal_status(self.namespace, self.selector, self.victim_uids, self.killed_at, self.desired)
        if self.detect_seconds is None and status["replacements"]:
            self.detect_seconds = self._since_kill()
        if self.recover_seconds is None and status["healed"]:
            self.recover_seconds = self._since_kill()
        self.last = {**status, "detect_seconds": self.detect_seconds, "recover_seconds": self.recover_seconds}
        return self.last

    def event(self, status: str, message: str = "") -> dict[str, Any]:
        """The event payload (primitives only) for ``status`` (``healed``, ``timeout`` or ``error``)."""
        last = self.last or {}
        return {"status": status, "message": message, "namespace": self.namespace, "selector": self.selector,
                "victim_uids": self.victim_uids, "killed_at": self.killed_at, "desired": self.desired,
                "detect_seconds": self.detect_seconds, "recover_seconds": self.recover_seconds,
                "replacements": [r["name"] for r in last.get("replacements", [])],
                "ready_count": last.get("ready_count"), "missing": last.get("missing", [])}

    def not_healed_message(self, timeout_seconds: float) -> str:
        last = self.last or {}
        what = "; ".join(last.get("missing") or ["the workload was never listed"])
        return (f"pods {self.selector!r} in namespace {self.namespace!r} not healed within {timeout_seconds:g} s "
                f"after the kill: {what}")


class PodHealedTrigger(BaseTrigger):
    """Fires once the workload is back: every victim gone, ``desired`` pods Ready, and each victim
    replaced by a pod that is itself Ready (never a workload's ``readyReplicas``, which can be stale).

    Polls the pods through the provider's `AsyncKubernetesHook` (`AsyncChaosKubernetesHook`) every
    ``poll_interval`` seconds until ``timeout_seconds`` after ``killed_at``.

    Event payload: ``{"status": "healed" | "timeout" | "error", "message", "detect_seconds",
    "recover_seconds", "replacements": [pod names], "ready_count", "missing", "namespace", "selector",
    "victim_uids", "killed_at", "desired", "payload"}``. A timeout's message reads "... not healed within N s
    after the kill: replacement web-abc not Ready; 2/3 pods Ready"; an error (the API failing
    ``max_failures`` times in a row) names the failure.

    :param conn_id: Airflow ``kubernetes`` connection
    :param namespace: the workload's namespace
    :param selector: the label selector the victims were picked with
    :param victim_uids: uids of the killed pods
    :param killed_at: ISO timestamp of the kill (aware); the timeout counts from it
    :param desired: Ready pods to get back to (the workload's ``spec.replicas``)
    :param timeout_seconds: the heal bound
    :param poll_interval: seconds between checks
    :param payload: returned as is in the events (``payload``): what the deferring task needs to resume
        (Airflow does not always hand the defer kwargs back)
    """

    max_failures = 3  # consecutive API failures before an error event (a blip is retried)

    def __init__(self, *, conn_id: str | None, namespace: str, selector: str, victim_uids: Sequence[str],
                 killed_at: str, desired: int, timeout_seconds: float, poll_interval: float = 1.0,
                 payload: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.namespace = namespace
        self.selector = selector
        self.victim_uids = list(victim_uids)
        self.killed_at = str(killed_at)
        self.desired = int(desired)
        self.timeout_seconds = float(timeout_seconds)
        self.poll_interval = float(poll_interval)
        self.payload = payload

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("drdrill.triggers.kubernetes.PodHealedTrigger", {
            "conn_id": self.conn_id, "namespace": self.namespace, "selector": self.selector,
            "victim_uids": list(self.victim_uids), "killed_at": self.killed_at, "desired": self.desired,
            "timeout_seconds": self.timeout_seconds, "poll_interval": self.poll_interval,
            "payload": self.payload})

    def _event(self, watch: HealWatch, status: str, message: str) -> dict[str, Any]:
        return {**watch.event(status, message), "payload": self.payload}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watch = HealWatch(namespace=self.namespace, selector=self.selector, victim_uids=self.victim_uids,
                          killed_at=self.killed_at, desired=self.desired)
        hook = AsyncChaosKubernetesHook(kubernetes_conn_id=self.conn_id)
        # Counted from the kill (survives a triggerer restart), on the monotonic clock from here.
        left = self.timeout_seconds - max(0.0, (datetime.now(UTC) - _parse(self.killed_at)).total_seconds())
        deadline = time.monotonic() + left
        failures = 0
        while True:
            try:
                status = await watch.poll(hook)
                failures = 0
            except Exception as e:  # an API or connection failure: never taken for a heal
                failures += 1
                if failures >= self.max_failures or time.monotonic() >= deadline:
                    yield TriggerEvent(self._event(watch, "error", (
                        f"checking pods {self.selector!r} in namespace {self.namespace!r} failed {failures} "
                        f"time(s) in a row: {type(e).__name__}: {e}")))
                    return
                self.log.warning("checking the pods failed (%s), retrying: %s", failures, e)
                await asyncio.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))
                continue
            if status["healed"]:
                yield TriggerEvent(self._event(watch, "healed", f"healed {watch.recover_seconds:.1f} s after the kill"))
                return
            if time.monotonic() >= deadline:
                yield TriggerEvent(self._event(watch, "timeout", watch.not_healed_message(self.timeout_seconds)))
                return
            self.log.debug("not healed yet: %s", "; ".join(status["missing"]))
            await asyncio.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))
