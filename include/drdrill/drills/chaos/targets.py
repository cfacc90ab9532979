"""A service's pod-kill target by kind: one interface the drill and its trigger use.

``steady()`` (ok, detail, state), ``candidates()`` (eligible victim ids), ``blocked(victims)``
(why acting now would hurt more than the blast radius, e.g. a PodDisruptionBudget at 0),
``kill_many(victims, grace)`` (victim records), ``heal_status(victims, killed_at)`` (healed,
detected, ready, desired, missing).
"""

from __future__ import annotations

from typing import Any

from drdrill.core.services import ServiceTarget


def target_ops(service: ServiceTarget) -> Any:
    if service.process:
        from drdrill.drills.chaos.process import ProcessOps

        return ProcessOps(service.process)
    if service.kubernetes:
        from drdrill.drills.chaos.kube import KubeOps

        return KubeOps(service.kubernetes)
    if service.postgres:
        from drdrill.drills.chaos.standby import StandbyOps

        return StandbyOps(service.postgres)
    raise ValueError(f"service {service.name} has no pod-kill target (process or kubernetes)")
