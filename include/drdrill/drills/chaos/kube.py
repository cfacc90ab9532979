"""The ``kubernetes`` chaos target: pods of a workload behind a label selector (`drdrill.hooks.kubernetes`).

The same checks as `KubernetesPodKillOperator` (`plan_pod_kill`: namespace, selector, eligible
pods by readiness and minimum age, the workloads' desired count, PodDisruptionBudgets), behind
the interface every chaos target offers the drill (`drdrill.drills.chaos.targets`). Healing is
read through the provider's `AsyncKubernetesHook` in the triggerer: each victim gone and replaced
by a pod that is itself Ready, and the workloads back at their desired count (never a stale
``readyReplicas``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from drdrill.core.services import KubernetesTarget


class KubeOps:
    def __init__(self, spec: KubernetesTarget) -> None:
        from drdrill.hooks.kubernetes import ChaosKubernetesHook

        self.spec = spec
        self.hook = ChaosKubernetesHook(kubernetes_conn_id=spec.conn_id)

    def plan(self, n: int = 1, seed: int | None = 0) -> Any:
        from drdrill.hooks.kubernetes import plan_pod_kill

        return plan_pod_kill(self.hook, namespace=self.spec.namespace, selector=self.spec.selector, max_victims=n,
                             min_pod_age_seconds=self.spec.min_pod_age_seconds, seed=seed)

    def steady(self) -> tuple[bool, str, dict[str, Any]]:
        p = self.plan()
        ready = sum(1 for pod in p.pods if pod.ready and not pod.deleting)
        detail = f"{ready}/{p.desired} pods Ready ({', '.join(sorted(p.workloads))})"
        return ready >= p.desired, detail, {"pods": [pod.name for pod in p.pods], "desired": p.desired,
                                            "workloads": sorted(p.workloads)}

    def candidates(self) -> list[str]:
        return [pod.name for pod in self.plan().eligible]

    def blocked(self, victims: list[str]) -> str | None:
        p = self.plan()
        by = {pod.name: pod for pod in p.pods}
        blocking = [(pdb, allowed, v) for v in victims if v in by
                    for pdb, allowed in self.hook.blocking_pdbs(self.spec.namespace, by[v].labels)]
        if not blocking:
            return None
        names = ", ".join(f"{pdb} (disruptionsAllowed={allowed}, selects {pod})" for pdb, allowed, pod in blocking)
        return f"PodDisruptionBudget {names} in namespace {self.spec.namespace!r} allows no disruption"

    def kill_many(self, victims: list[str], grace_period_seconds: int | None = None) -> list[dict[str, Any]]:
        p = self.plan()
        by = {pod.name: pod for pod in p.pods}
        grace = grace_period_seconds if grace_period_seconds is not None else self.spec.grace_period_seconds
        out = []
        for name in victims:
            self.hook.delete_pod(self.spec.namespace, name, grace)
            out.append({"name": name, "uid": by[name].uid, "namespace": self.spec.namespace, "desired": p.desired,
                        "grace_period_seconds": grace})
        return out

    async def aheal_status(self, victims: list[dict[str, Any]], killed_at: float) -> dict[str, Any]:
        from drdrill.hooks.kubernetes import AsyncChaosKubernetesHook

        hook = AsyncChaosKubernetesHook(kubernetes_conn_id=self.spec.conn_id)
        desired = max((int(v.get("desired") or 0) for v in victims), default=0)
        at = dt.datetime.fromtimestamp(float(killed_at), dt.UTC)
        st = await hook.heal_status(self.spec.namespace, self.spec.selector, [v["uid"] for v in victims], at, desired)
        detected = all(v["gone"] for v in st["victims"]) or bool(st["replacements"])
        return {"healed": st["healed"], "detected": detected, "ready": st["ready_count"], "desired": st["desired"],
                "missing": "; ".join(st["missing"]), "replacements": [r["name"] for r in st["replacements"]],
                "ready_replacements": st["ready_replacements"]}

    def heal_status(self, victims: list[dict[str, Any]], killed_at: float) -> dict[str, Any]:
        return asyncio.run(self.aheal_status(victims, killed_at))

    def start_stopped(self) -> list[str]:
        return []  # the workload's controller re-creates pods; nothing to start
