"""Follow an AWS FIS experiment in the triggerer until it is finished (no worker slot held meanwhile).

Polls ``GetExperiment`` through `FisHook`'s async (aiobotocore) client, so the deferred half talks
to the same endpoint, region and CA as the task that started the experiment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from drdrill.hooks.fis import TERMINAL, FisHook, experiment_state


class FisExperimentTrigger(BaseTrigger):
    """Fires once the experiment is ``completed``, ``stopped``, ``failed`` or ``cancelled``, or at the timeout.

    The event: ``{"status": "finished" | "timeout", "payload": ..., **experiment_state}``, i.e.
    ``experiment_id``, the experiment's own ``status`` as ``state``, ``reason``, ``error``,
    ``start_time``, ``end_time`` (epoch seconds), ``stop_alarms`` and ``stopped_by_stop_condition``
    (True when FIS stopped it because a stop-condition alarm fired, distinct from a stop by hand).

    :param experiment_id: the experiment to follow
    :param timeout_seconds: give up after this long (the event's status is then ``timeout``)
    :param poll_interval: seconds between ``GetExperiment`` calls
    :param aws_conn_id: Airflow AWS connection
    :param region_name: AWS region (default: the connection's)
    :param payload: handed back in the event as is (what the deferring task needs to resume)

    When a user marks the deferred task failed or clears it, `on_kill` stops the experiment.
    """

    def __init__(self, *, experiment_id: str, timeout_seconds: float, poll_interval: float = 10,
                 aws_conn_id: str | None = "aws_default", region_name: str | None = None,
                 payload: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.experiment_id = experiment_id
        self.timeout_seconds = float(timeout_seconds)
        self.poll_interval = float(poll_interval)
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.payload = payload or {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"experiment_id": self.experiment_id, "timeout_seconds": self.timeout_seconds,
                 "poll_interval": self.poll_interval, "aws_conn_id": self.aws_conn_id,
                 "region_name": self.region_name, "payload": self.payload})

    def _hook(self) -> FisHook:
        return FisHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        deadline = time.monotonic() + self.timeout_seconds
        async with await self._hook().get_async_conn() as client:
            while True:
                resp = await client.get_experiment(id=self.experiment_id)
                state = experiment_state(resp["experiment"])
                done = state["status"] in TERMINAL
                if done or time.monotonic() >= deadline:
                    state["state"] = state.pop("status")
                    yield TriggerEvent({"status": "finished" if done else "timeout", "payload": self.payload,
                                        **state})
                    return
                self.log.info("FIS experiment %s: %s (%s)", self.experiment_id, state["status"], state["reason"])
                await asyncio.sleep(self.poll_interval)

    async def on_kill(self) -> None:
        """The user killed the deferred task: stop the experiment (never leave it running)."""
        async with await self._hook().get_async_conn() as client:
            resp = await client.get_experiment(id=self.experiment_id)
            if experiment_state(resp["experiment"])["status"] not in TERMINAL:
                await client.stop_experiment(id=self.experiment_id)
                self.log.warning("FIS experiment %s stopped: its task was killed", self.experiment_id)


class EcsServicesHealedTrigger(BaseTrigger):
    """Fires once every ECS service runs its desired count, or when the heal bound passes.

    The event: ``{"status": "healed" | "timeout", "payload": ..., "counts": {service: {"running",
    "desired"}}, "short": [services still short], "healed_seconds"}``; ``healed_seconds`` counts
    from ``since`` (epoch seconds, e.g. the end of the experiment).

    :param cluster: the ECS cluster
    :param services: the services that must heal
    :param timeout_seconds: the heal bound, counted from ``since``
    :param since: when the bound started (default: when the trigger starts)
    :param poll_interval: seconds between ``DescribeServices`` calls
    :param aws_conn_id: Airflow AWS connection
    :param region_name: AWS region (default: the connection's)
    :param payload: handed back in the event as is
    """

    def __init__(self, *, cluster: str, services: list[str], timeout_seconds: float, since: float | None = None,
                 poll_interval: float = 5, aws_conn_id: str | None = "aws_default", region_name: str | None = None,
                 payload: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.cluster = cluster
        self.services = list(services)
        self.timeout_seconds = float(timeout_seconds)
        self.since = float(since) if since is not None else None
        self.poll_interval = float(poll_interval)
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.payload = payload or {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"cluster": self.cluster, "services": self.services, "timeout_seconds": self.timeout_seconds,
                 "since": self.since, "poll_interval": self.poll_interval, "aws_conn_id": self.aws_conn_id,
                 "region_name": self.region_name, "payload": self.payload})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from drdrill.hooks.ecs import EcsServicesHook

        since = self.since or time.time()
        async with await EcsServicesHook(aws_conn_id=self.aws_conn_id,
                                         region_name=self.region_name).get_async_conn() as client:
            while True:
                counts: dict[str, dict[str, int]] = {}
                for i in range(0, len(self.services), 10):
                    resp = await client.describe_services(cluster=self.cluster, services=self.services[i:i + 10])
                    for svc in resp.get("services", []):
                        counts[svc["serviceName"]] = {"running": int(svc.get("runningCount", 0)),
                                                      "desired": int(svc.get("desiredCount", 0))}
                short = sorted(s for s in self.services
                               if s.rsplit("/", 1)[-1] not in counts
                               or counts[s.rsplit("/", 1)[-1]]["running"] < counts[s.rsplit("/", 1)[-1]]["desired"])
                elapsed = time.time() - since
                if not short or elapsed >= self.timeout_seconds:
                    yield TriggerEvent({"status": "timeout" if short else "healed", "payload": self.payload,
                                        "counts": counts, "short": short, "healed_seconds": round(elapsed, 3)})
                    return
                await asyncio.sleep(self.poll_interval)
