"""Kill random pods of a Kubernetes workload and wait, deferred, until it has healed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from drdrill.operators.base import DrillOperator, truthy


class KubernetesPodKillOperator(DrillOperator):
    """Delete ``max_victims`` random eligible pods matching ``selector``, then defer to `PodHealedTrigger`
    until the workload is back at its desired Ready count with every replacement itself Ready.

    Before anything is deleted it refuses (`drdrill.core.errors.PreflightError`, naming the field and the
    fix) when the namespace does not exist, the selector is empty, malformed or matches no pod, or no
    matching pod is eligible (Running, Ready, not deleting, at least ``min_pod_age_seconds`` old, owned
    by a controller: each pod's reason is listed); it skips (``AirflowSkipException``, journalled as
    skipped) when a PodDisruptionBudget selecting a victim allows no disruption, naming the budget.

    The victims are drawn by ``random.Random(seed)`` from the eligible pods sorted by name: the seed
    (drawn when not given) is in the result, and the same seed on the same pods picks the same victims.

    :param kubernetes_conn_id: Airflow ``kubernetes`` connection to the cluster
    :param namespace: the workload's namespace
    :param selector: label selector of the workload's pods (``app=web``, ``tier in (web,api)``...):
        required, matched by the API server and again client-side
    :param max_victims: pods to kill (at most the eligible ones)
    :param min_pod_age_seconds: pods younger than this are never killed
    :param grace_period_seconds: the delete's grace period (``None``: the pod's own)
    :param seed: the random choice's seed (replay a run with its journalled seed)
    :param heal_timeout_seconds: the heal bound: not healed by then fails the task
    :param poll_interval: seconds between heal checks in the triggerer
    :param dry_run: pick and report the victims, delete nothing

    Returns ``{"dry_run", "namespace", "selector", "seed", "victims": [pod dicts], "desired", "workloads",
    "killed_at", "healed", "detect_seconds", "recover_seconds", "replacements", "candidates"}``; a timeout or an API
    error while waiting fails the task with the trigger's message ("... not healed within N s after the
    kill: replacement web-abc not Ready").

    Usage::

        KubernetesPodKillOperator(task_id="kill", kubernetes_conn_id="k8s_prod", namespace="shop",
                                  selector="app=web", min_pod_age_seconds=600, heal_timeout_seconds=300)
    """

    template_fields: Sequence[str] = ("kubernetes_conn_id", "namespace", "selector", "max_victims",
                                      "min_pod_age_seconds", "grace_period_seconds", "seed",
                                      "heal_timeout_seconds", "dry_run")

    def __init__(self, *, kubernetes_conn_id: str | None = "kubernetes_default", namespace: str, selector: str,
                 max_victims: Any = 1, min_pod_age_seconds: Any = 0, grace_period_seconds: Any = None,
                 seed: Any = None, heal_timeout_seconds: Any = 300, poll_interval: float = 1.0, dry_run: Any = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kubernetes_conn_id = kubernetes_conn_id
        self.namespace = namespace
        self.selector = selector
        self.max_victims = max_victims
        self.min_pod_age_seconds = min_pod_age_seconds
        self.grace_period_seconds = grace_period_seconds
        self.seed = seed
        self.heal_timeout_seconds = heal_timeout_seconds
        self.poll_interval = poll_interval
        self.dry_run = dry_run

    def _int(self, name: str, value: Any, minimum: int) -> int:
        from drdrill.core.errors import PreflightError

        try:
            out = int(str(value).strip())
        except ValueError:
            raise PreflightError(f"{name} must be an integer, got {value!r}") from None
        if out < minimum:
            raise PreflightError(f"{name} must be at least {minimum}, got {out}")
        return out

    def run(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from drdrill.hooks.kubernetes import ChaosKubernetesHook, plan_pod_kill
        from drdrill.triggers.kubernetes import PodHealedTrigger

        conn = self.kubernetes_conn_id
        n = self._int("max_victims", self.max_victims, 1)
        min_age = float(self._int("min_pod_age_seconds", self.min_pod_age_seconds, 0))
        grace = None if self.grace_period_seconds in (None, "", "None") else \
            self._int("grace_period_seconds", self.grace_period_seconds, 0)
        timeout = float(self._int("heal_timeout_seconds", self.heal_timeout_seconds, 1))
        hook = ChaosKubernetesHook(kubernetes_conn_id=conn)
        plan = plan_pod_kill(hook, namespace=self.namespace, selector=self.selector, max_victims=n,
                             min_pod_age_seconds=min_age, seed=self.seed)
        if plan.blocking_pdbs:
            raise AirflowSkipException(plan.pdb_message())
        ns, selector, seed, victims, desired = plan.namespace, plan.selector, plan.seed, plan.victims, plan.desired
        out: dict[str, Any] = {"dry_run": truthy(self.dry_run), **plan.to_dict()}
        out.pop("blocking_pdbs")
        if truthy(self.dry_run):
            self.log.info("[DRY RUN] would delete %s (seed %s) of %s", [v.name for v in victims], seed,
                          out["candidates"])
            return out
        killed_at = datetime.now(UTC).isoformat()
        for v in victims:
            self.log.info("deleting pod %s/%s (uid %s, grace %s)", ns, v.name, v.uid, grace)
            hook.delete_pod(ns, v.name, grace)
        out["killed_at"] = killed_at
        self.log.info("deleted %s (seed %s): waiting for the heal (desired %d Ready, bound %.0f s)",
                      [v.name for v in victims], seed, desired, timeout)
        self.defer(trigger=PodHealedTrigger(conn_id=conn, namespace=ns, selector=selector,
                                            victim_uids=[v.uid for v in victims], killed_at=killed_at,
                                            desired=desired, timeout_seconds=timeout,
                                            poll_interval=float(self.poll_interval), payload=out),
                   method_name="execute_complete")

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from drdrill.core.errors import DrillError, DrillFailed
        from drdrill.core.journal import record_step

        result = dict(event.get("payload") or {})
        started = datetime.fromisoformat(result.get("killed_at") or event["killed_at"]).timestamp()
        if event.get("status") != "healed":
            msg = str(event.get("message") or f"the heal check ended with status {event.get('status')!r}")
            record_step(context, self.task_id, "failed", started, msg)
            # not healed in time: the drill's verdict; an API failure: no verdict could be reached
            raise (DrillFailed if event.get("status") == "timeout" else DrillError)(msg)
        result.update(healed=True, detect_seconds=event["detect_seconds"], recover_seconds=event["recover_seconds"],
                      replacements=event["replacements"])
        record_step(context, self.task_id, "success", started)
        self.log.info("healed: replacement(s) %s seen %.2f s and Ready %.2f s after the kill", event["replacements"],
                      event["detect_seconds"], event["recover_seconds"])
        return result
