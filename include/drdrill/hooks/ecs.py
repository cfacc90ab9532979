"""ECS services in the AZ failure's scope: running versus desired count, and the wait until healed.

`EcsServicesHook` is the amazon provider's `EcsHook` (the ``ecs`` client through an Airflow AWS
connection) with what the drill needs on top: every service's running and desired task count
(a service that does not exist is refused before any action) and `wait_desired`, which holds
until every service runs its desired count again, within the heal bound.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from airflow.providers.amazon.aws.hooks.ecs import EcsHook

from drdrill.core.errors import DrillFailed, PreflightError

log = logging.getLogger(__name__)


class EcsServicesHook(EcsHook):
    """ECS services through an Airflow AWS connection.

    :param aws_conn_id: Airflow AWS connection
    :param region_name: AWS region (default: the connection's)

    Usage::

        hook = EcsServicesHook(aws_conn_id="aws_default", region_name="eu-west-1")
        hook.services_at_desired("prod", ["web", "api"])       # {"web": (3, 3), "api": (1, 2)}
        hook.wait_desired("prod", ["web", "api"], timeout=300)  # raises DrillFailed naming "api"
    """

    def services_at_desired(self, cluster: str, services: Iterable[str]) -> dict[str, tuple[int, int]]:
        """``{service: (running, desired)}`` for each service of ``cluster``.

        Refuses (`PreflightError` naming them) services ECS does not know or that are not ACTIVE.
        """
        names = [str(s) for s in services]
        if not names:
            raise PreflightError("no ECS service given: name the services that must heal (ecs_services)")
        out: dict[str, tuple[int, int]] = {}
        missing: list[str] = []
        for i in range(0, len(names), 10):  # DescribeServices takes at most 10
            chunk = names[i:i + 10]
            resp = self.conn.describe_services(cluster=cluster, services=chunk)
            for svc in resp.get("services", []):
                if svc.get("status") != "ACTIVE":
                    missing.append(f"{svc['serviceName']} ({svc.get('status')})")
                    continue
                out[svc["serviceName"]] = (int(svc.get("runningCount", 0)), int(svc.get("desiredCount", 0)))
            missing += [f["arn"].rsplit("/", 1)[-1] + f" ({f.get('reason', 'MISSING')})"
                        for f in resp.get("failures", [])]
        if missing:
            raise PreflightError(f"ECS cluster {cluster!r} has no active service {', '.join(missing)}: fix "
                                 f"ecs_services (or ecs_cluster) to the services the experiment's tasks belong to")
        # Keyed as asked (a name given as an ARN stays an ARN).
        by_name = {n.rsplit("/", 1)[-1]: n for n in names}
        return {by_name.get(k, k): v for k, v in out.items()}

    def short_of_desired(self, cluster: str, services: Iterable[str]) -> dict[str, tuple[int, int]]:
        """The services running fewer tasks than desired, ``{service: (running, desired)}``."""
        return {k: v for k, v in self.services_at_desired(cluster, services).items() if v[0] < v[1]}

    def wait_desired(self, cluster: str, services: Iterable[str], *, timeout: float = 300,
                     poll_interval: float = 5.0) -> dict[str, Any]:
        """Poll until every service runs its desired count; at most ``timeout`` seconds (the heal bound).

        Returns ``{"healed_seconds", "counts"}``; raises `DrillFailed` naming each service still short
        (running/desired) when the bound passes.
        """
        names = list(services)
        t0 = time.monotonic()
        while True:
            counts = self.services_at_desired(cluster, names)
            short = {k: v for k, v in counts.items() if v[0] < v[1]}
            if not short:
                return {"healed_seconds": round(time.monotonic() - t0, 3),
                        "counts": {k: {"running": r, "desired": d} for k, v in counts.items() for r, d in [v]}}
            if time.monotonic() - t0 >= timeout:
                raise DrillFailed(f"ECS services not healed within {timeout:.0f} s: " + ", ".join(
                    f"{k} runs {r} of {d} desired tasks" for k, (r, d) in sorted(short.items()))
                    + f" (cluster {cluster}); check the service events in the ECS console")
            log.info("waiting for ECS services to heal: %s", ", ".join(f"{k} {r}/{d}" for k, (r, d) in short.items()))
            time.sleep(poll_interval)
