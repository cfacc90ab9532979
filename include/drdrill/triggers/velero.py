"""Wait, in the triggerer, until a Velero Restore has finished (bounded)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from drdrill.hooks.velero import GROUP, RESTORES, VERSION

TERMINAL = ("Completed", "PartiallyFailed", "Failed", "FailedValidation")


class VeleroRestoreTrigger(BaseTrigger):
    """Fires once the Restore ``restore_name`` reaches a final phase, or when ``timeout_seconds`` have passed
    since ``created_at`` (counted from there, so a triggerer restart does not extend the bound).

    Reads the Restore through the provider's `AsyncKubernetesHook` (custom objects API) every
    ``poll_interval`` seconds. Event payload: ``{"status": "finished" | "timeout" | "error", "message",
    "restore": the Restore's ``status`` (dict, last seen), "seconds", "payload"}``; an error (the API failing
    ``max_failures`` times in a row, or the Restore gone) names the failure.

    :param conn_id: Airflow ``kubernetes`` connection
    :param velero_namespace: the namespace Velero runs in
    :param restore_name: the Restore to wait for
    :param created_at: ISO timestamp (aware) of its creation; the bound counts from it
    :param timeout_seconds: the bound
    :param poll_interval: seconds between reads
    :param payload: returned as is in the events (what the deferring task needs to resume)
    """

    max_failures = 3

    def __init__(self, *, conn_id: str | None, velero_namespace: str, restore_name: str, created_at: str,
                 timeout_seconds: float, poll_interval: float = 5.0, payload: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.velero_namespace = velero_namespace
        self.restore_name = restore_name
        self.created_at = str(created_at)
        self.timeout_seconds = float(timeout_seconds)
        self.poll_interval = float(poll_interval)
        self.payload = payload

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("drdrill.triggers.velero.VeleroRestoreTrigger", {
            "conn_id": self.conn_id, "velero_namespace": self.velero_namespace, "restore_name": self.restore_name,
            "created_at": self.created_at, "timeout_seconds": self.timeout_seconds,
            "poll_interval": self.poll_interval, "payload": self.payload})

    def _since(self) -> float:
        t = datetime.fromisoformat(self.created_at.replace("Z", "+00:00"))
        return round((datetime.now(UTC) - (t if t.tzinfo else t.replace(tzinfo=UTC))).total_seconds(), 3)

    def _event(self, status: str, message: str, restore: dict[str, Any] | None) -> TriggerEvent:
        return TriggerEvent({"status": status, "message": message, "restore": restore or {},
                             "seconds": self._since(), "payload": self.payload})

    async def _read(self, hook: Any) -> dict[str, Any] | None:
        from kubernetes_asyncio import client as async_client

        async with hook.get_conn() as api:
            try:
                return await async_client.CustomObjectsApi(api).get_namespaced_custom_object(
                    GROUP, VERSION, self.velero_namespace, RESTORES, self.restore_name)
            except async_client.ApiException as e:
                if e.status == 404:
                    return None
                raise

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook

        hook = AsyncKubernetesHook(kubernetes_conn_id=self.conn_id)
        deadline = time.monotonic() + max(0.0, self.timeout_seconds - self._since())
        failures, last = 0, None
        while True:
            try:
                obj = await self._read(hook)
                failures = 0
            except Exception as e:  # noqa: BLE001 - an API or connection failure: retried, then an error event
                failures += 1
                if failures >= self.max_failures or time.monotonic() >= deadline:
                    yield self._event("error", f"reading Restore {self.restore_name!r} in {self.velero_namespace!r} "
                                      f"through connection {self.conn_id!r} failed {failures} time(s) in a row: "
                                      f"{type(e).__name__}: {str(e)[:300]}", last)
                    return
                await asyncio.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))
                continue
            if obj is None:
                yield self._event("error", f"Restore {self.restore_name!r} disappeared from "
                                  f"{self.velero_namespace!r} while waiting for it", last)
                return
            last = obj.get("status") or {}
            if last.get("phase") in TERMINAL:
                yield self._event("finished", f"Restore {self.restore_name} is {last['phase']}", last)
                return
            if time.monotonic() >= deadline:
                yield self._event("timeout", "", last)
                return
            await asyncio.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))
