"""The chaos drills' actions: kill victims of a service's target, or take one zone down, then watch.

Both take the estate's ``service`` name (templated) and re-check, right before acting, the guards
that can change between preflight and now: the time window, the kill switch, the target lock
(no other drill acting on the same service or database cluster) and the target's own
disruption budget. The fault is then observed in the triggerer (`ChaosObserveTrigger`) with the
customer probe running; the task resumes to probe "after" and judge. Every result is a check the
journal keeps; any failed check fails the task with all of them listed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from drdrill.operators.base import DrillOperator, truthy
from drdrill.operators.fis import FisExperimentOperator


def _estate_service(name: str) -> tuple[Any, Any]:
    from drdrill.core.estate import load_estate

    estate = load_estate()
    return estate, estate.service(str(name))


def recheck(estate: Any, service: Any) -> list[dict[str, Any]]:
    """The guards that can change between preflight and the action, checked again now."""
    import datetime as dt

    from drdrill.drills.chaos import guards
    from drdrill.drills.chaos.common import kill_switch_verdict

    verdicts = [guards.window(service, estate.schedules.timezone, dt.datetime.now(dt.UTC)), kill_switch_verdict()]
    guards.enforce(verdicts)
    return [v.to_dict() for v in verdicts]


LOCK_MARGIN_SECONDS = 300  # the lease outlives the heal bound and the probe periods by this much


def take_lock(context: Any, service: Any, action: str, ttl_seconds: float) -> dict[str, Any]:
    """The lease on the service and its database cluster (`drdrill.core.targetlock`) for this run, taken in
    the dr_destructive pool the action runs in; a target busy with another drill skips the run, naming it.
    The chaos teardown releases it (`drdrill.drills.chaos.common.teardown`)."""
    from drdrill.core import targetlock
    from drdrill.drills.chaos import guards

    try:
        lease = targetlock.acquire(service.lock_keys(), holder=targetlock.Holder.current(action),
                                   ttl_seconds=ttl_seconds)
    except targetlock.TargetBusy as e:
        guards.enforce([guards.Verdict("target_lock", False, f"{e}; nothing was done: a chaos action never "
                                       f"overlaps another drill acting on the same target", skip=True)])
        raise  # not reached: enforce raised the skip
    out = lease.to_dict()
    context["ti"].xcom_push(key="lease", value=out)
    return out


def ensure_lock(lease: dict[str, Any], action: str) -> None:
    """Right before the action: the lease is still ours (an incident may have taken the cluster by force)."""
    from drdrill.core import targetlock
    from drdrill.drills.chaos import guards

    try:
        targetlock.ensure_held(lease, action)
    except targetlock.TargetBusy as e:
        guards.enforce([guards.Verdict("target_lock", False, f"{e}; nothing was done", skip=True)])


class _ChaosMixin:
    """What both chaos actions share: the seed, the deferral to `ChaosObserveTrigger`, the verdict."""

    service: Any
    seed: Any
    task_id: str
    log: Any
    defer: Any

    def _seed(self, context: Any) -> int:
        from drdrill.drills.chaos.guards import seed_for

        given = None if self.seed in (None, "", "None") else int(self.seed)
        return seed_for(context["run_id"], given)

    def _defer(self, service: Any, mode: str, victims: list[dict], at: float, payload: dict, *,
               timeout: float = 0, hold: float = 0, method: str = "execute_complete") -> None:
        from drdrill.triggers.chaos import ChaosObserveTrigger

        self.defer(trigger=ChaosObserveTrigger(service=service.model_dump(mode="json"), mode=mode, victims=victims,
                                               killed_at=at, timeout_seconds=timeout, hold_seconds=hold,
                                               probe_run_id=f"{payload['run_id']}/{mode}", payload=payload),
                   method_name=method)

    def _judge(self, context: Any, service: Any, event: dict, payload: dict, extra: dict | None = None) -> dict:
        from drdrill.core.errors import DrillFailed
        from drdrill.drills.chaos.common import after_probe, probe_check, verdict

        after = after_probe(service, payload["run_id"]) if event.get("status") == "healed" else {}
        results = verdict(service, event, after, heal_bound=service.heal_seconds)
        if (payload.get("probe_kill") or {}).get("requests"):
            results.insert(1, probe_check("customer_errors.kill", payload["probe_kill"], service.probe.max_errors,
                                          service))
        out = {**payload, **(extra or {}), "status": event.get("status"), "detect_seconds": event.get("detect_seconds"),
               "recover_seconds": event.get("recover_seconds"), "probe_during": event.get("probe"),
               "probe_after": after, "replicas": event.get("replicas"), "results": [r.to_dict() for r in results]}
        context["ti"].xcom_push(key="chaos", value=out)
        failed = [r for r in results if r.failed]
        if failed:
            raise DrillFailed("; ".join(r.message for r in failed), results=[r.to_dict() for r in results])
        return out

    def _complete(self, context: Any, event: dict, fn: Any) -> Any:
        from drdrill.core.journal import record_step

        started = (event.get("payload") or {}).get("started_at") or time.time()
        try:
            out = fn(context, event)
        except BaseException as e:
            from airflow.sdk.exceptions import TaskDeferred

            if isinstance(e, TaskDeferred):
                raise
            if getattr(e, "results", None):
                from drdrill.core.journal import RESULTS_KEY

                context["ti"].xcom_push(key=RESULTS_KEY, value=e.results)
            record_step(context, self.task_id, "failed", started, f"{type(e).__name__}: {e}")
            raise
        record_step(context, self.task_id, "success", started)
        return out


class ChaosKillOperator(_ChaosMixin, DrillOperator):
    """Kill ``victims`` random replicas/pods of the service's target, then wait in the triggerer until the
    target healed (each victim replaced by a replica that is itself ready) with the customer probe running.

    :param service: the estate's service (templated)
    :param victims: how many (at most the service's ``max_victims``)
    :param seed: the random choice's seed (default: drawn, and journalled so a run can be replayed)
    :param grace_period_seconds: Kubernetes pod deletion grace (default: the estate's, else the pod's)
    :param dry_run: choose and report the victims, touch nothing
    """

    template_fields: Sequence[str] = ("service", "seed", "dry_run", "victims", "grace_period_seconds")
    ui_color = "#fbe3e3"

    def __init__(self, *, service: str, seed: Any = None, dry_run: Any = False, victims: Any = 1,
                 grace_period_seconds: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service
        self.seed = seed
        self.dry_run = dry_run
        self.victims = victims
        self.grace_period_seconds = grace_period_seconds

    def run(self, context: Any) -> Any:
        from drdrill.core.errors import DrillError
        from drdrill.drills.chaos import guards
        from drdrill.drills.chaos.targets import target_ops

        estate, svc = _estate_service(self.service)
        n = int(self.victims or 1)
        guards.enforce([guards.blast_radius(svc, n), guards.namespace(svc)])
        dry = truthy(self.dry_run)
        action = f"kill {n} of service {svc.name}"
        p = svc.probe
        lease = None if dry else take_lock(context, svc, action, svc.heal_seconds + p.baseline_seconds +
                                           p.after_seconds + LOCK_MARGIN_SECONDS)
        verdicts = recheck(estate, svc)
        ops = target_ops(svc)
        candidates = ops.candidates()
        if not candidates:
            raise DrillError(f"no eligible victim in service {svc.name}'s {svc.kind} target (none is healthy, or "
                             f"every pod is younger than the minimum age): nothing was killed")
        seed = self._seed(context)
        chosen = guards.pick(candidates, n, seed)
        blocked = ops.blocked(chosen)
        if blocked:
            guards.enforce([guards.Verdict("disruption_budget", False, f"{blocked}: nothing was killed", skip=True)])
        self.log.info("victims %s of %s (seed %s; replay with seed=%s)", chosen, candidates, seed, seed)
        payload = {"service": svc.name, "kind": svc.kind, "seed": seed, "candidates": candidates, "victims": chosen,
                   "guards": verdicts, "run_id": f"{context['dag'].dag_id}/{context['run_id']}",
                   "started_at": time.time()}
        if truthy(self.dry_run):
            self.log.info("[DRY RUN] would kill %s", chosen)
            return {**payload, "dry_run": True, "status": "dry_run"}
        grace = None if self.grace_period_seconds in (None, "", "None") else int(self.grace_period_seconds)
        assert lease is not None
        ensure_lock(lease, action)
        payload["lease"] = lease["keys"]
        # Customers are probed across the kill itself too (a standby restarted by the drill takes seconds).
        from drdrill.drills.chaos.common import customer_probe

        probe = customer_probe(svc, f"{payload['run_id']}/kill").start("kill")
        try:
            killed_at = time.time()
            records = ops.kill_many(chosen, grace)
        finally:
            probe.stop()
        payload.update(killed=records, killed_at=killed_at, probe_kill=probe.report().get("kill", {}))
        context["ti"].xcom_push(key="victims", value=records)
        self._defer(svc, "heal", records, killed_at, payload, timeout=svc.heal_seconds)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        def judge(ctx: Any, ev: dict) -> dict:
            _, svc = _estate_service(ev["payload"]["service"])
            return self._judge(ctx, svc, ev, ev["payload"])

        return self._complete(context, event, judge)


class ZoneFailureOperator(_ChaosMixin, FisExperimentOperator):
    """The AZ failure, by the service's ``az_failure.engine`` (from the preflight task's plan: the zone chosen
    there, with the run's seed):

    - ``sandbox``: stop ``percent`` of the service's ``process`` replicas in the zone for ``duration``, with the
      customer probe running, then start them again and wait until they heal;
    - ``fis``: `FisExperimentOperator` with the arguments preflight built from the estate (template for the
      zone, drift refused unless ``update_template``, preview first, stop-condition alarm, ECS services back
      at desired count within the heal bound; a failed run's experiment is stopped).

    The DAG must render templates as native objects (the FIS template is a dict).

    :param plan_task: the task whose XCom holds the plan (``service``, ``engine``, ``zone``, ``fis``)
    :param duration_seconds: how long the zone stays down (default: the estate's ``az_failure.duration``)
    """

    template_fields: Sequence[str] = (*FisExperimentOperator.template_fields, "service", "seed", "zone",
                                      "duration_seconds", "engine")
    ui_color = "#fbe3e3"

    def __init__(self, *, plan_task: str = "preflight", update_template: Any = False, dry_run: Any = False,
                 **kwargs: Any) -> None:
        plan = f"ti.xcom_pull(task_ids='{plan_task}')"
        fis = f"({plan}['fis'] or {{}})"
        super().__init__(template=f"{{{{ {fis}.get('template') }}}}", aws_conn_id=f"{{{{ {fis}.get('aws_conn_id') }}}}",
                         region_name=f"{{{{ {fis}.get('region_name') }}}}",
                         ecs_cluster=f"{{{{ {fis}.get('ecs_cluster') }}}}",
                         ecs_services=f"{{{{ {fis}.get('ecs_services') }}}}",
                         heal_seconds=f"{{{{ {fis}.get('heal_seconds') or 300 }}}}",
                         update_template=update_template, dry_run=dry_run, **kwargs)
        self.service = f"{{{{ {plan}['service'] }}}}"
        self.seed = f"{{{{ {plan}['seed'] }}}}"
        self.zone = f"{{{{ {plan}['zone'] }}}}"
        self.duration_seconds = f"{{{{ {plan}['duration_seconds'] }}}}"
        self.engine = f"{{{{ {plan}['engine'] }}}}"

    def run(self, context: Any) -> Any:
        estate, svc = _estate_service(self.service)
        action = f"fail zone {self.zone} of service {svc.name}"
        p = svc.probe
        lease = None
        if not truthy(self.dry_run):
            lease = take_lock(context, svc, action, float(self.duration_seconds) + svc.heal_seconds +
                              p.baseline_seconds + p.after_seconds + LOCK_MARGIN_SECONDS)
        verdicts = recheck(estate, svc)  # the window and the kill switch, right before the action
        if lease:
            ensure_lock(lease, action)
        if self.engine == "fis":
            out = super().run(context)
            return {**(out or {}), "zone": self.zone, "guards": verdicts}
        return self._sandbox(context, estate, svc, verdicts)

    def _sandbox(self, context: Any, estate: Any, svc: Any, verdicts: list[dict]) -> Any:
        from drdrill.core.errors import PreflightError
        from drdrill.drills.chaos import guards
        from drdrill.drills.chaos.process import ProcessOps

        az = svc.az_failure
        if not az or az.engine != "sandbox" or not svc.process:
            raise PreflightError(f"service {svc.name} has no az_failure with engine sandbox and process replicas")
        zone, seed, duration = str(self.zone), int(self.seed), float(self.duration_seconds)
        if zone not in svc.zones():
            raise PreflightError(f"unknown zone {zone!r}: service {svc.name}'s replicas are in zones "
                                 f"{', '.join(svc.zones())}")
        in_zone = sorted(r.program for r in svc.process.replicas if r.zone == zone)
        victims = guards.pick(in_zone, az.share(len(in_zone)), seed)
        payload = {"service": svc.name, "zone": zone, "seed": seed, "victims": victims, "percent": az.percent,
                   "duration_seconds": duration, "guards": verdicts, "engine": "sandbox",
                   "run_id": f"{context['dag'].dag_id}/{context['run_id']}", "started_at": time.time()}
        self.log.info("zone %s: stopping %s of its replicas %s for %.0f s (seed %s)", zone, victims, in_zone,
                      duration, seed)
        if truthy(self.dry_run):
            self.log.info("[DRY RUN] would stop %s", victims)
            return {**payload, "dry_run": True, "status": "dry_run"}
        ops = ProcessOps(svc.process)
        at = time.time()
        ops.stop(victims)
        payload.update(stopped_at=at)
        context["ti"].xcom_push(key="victims", value=victims)
        self._defer(svc, "hold", [], at, payload, hold=duration, method="resume_after_hold")

    def resume_after_hold(self, context: Any, event: dict[str, Any]) -> Any:
        def restart(ctx: Any, ev: dict) -> dict:
            from drdrill.drills.chaos.process import ProcessOps

            payload = ev["payload"]
            _, svc = _estate_service(payload["service"])
            restart_at = time.time()  # recovery counts from the end of the fault, the restart included
            started = ProcessOps(svc.process).start_stopped()  # always, whatever the probe saw
            self.log.info("zone %s back: started %s after %.1f s (%s)", payload["zone"], started, ev.get("seconds"),
                          ev.get("status"))
            payload = {**payload, "fault_status": ev.get("status"), "fault_message": ev.get("message"),
                       "fault_seconds": ev.get("seconds"), "probe_fault": ev.get("probe"),
                       "restarted_at": restart_at}
            self._defer(svc, "heal", [], payload["restarted_at"], payload, timeout=svc.heal_seconds,
                        method="sandbox_complete")
            return {}

        return self._complete(context, event, restart)

    def sandbox_complete(self, context: Any, event: dict[str, Any]) -> Any:
        def judge(ctx: Any, ev: dict) -> dict:
            from drdrill.core.checks import CheckResult, Status
            from drdrill.drills.chaos.common import latency_check, probe_check

            payload = ev["payload"]
            _, svc = _estate_service(payload["service"])
            fault = payload.get("probe_fault") or {}
            extra = [probe_check("customer_errors.zone_down", fault, svc.probe.max_errors, svc),
                     latency_check("latency_p99.zone_down", fault, svc.probe.max_p99_ms, svc)]
            if payload.get("fault_status") == "aborted":
                extra.append(CheckResult("fault.aborted", Status.FAIL, payload.get("fault_message") or "aborted",
                                         svc.name))
            try:
                out = self._judge(ctx, svc, ev, payload, {"probe_zone_down": fault})
            except Exception as e:
                results = [*(getattr(e, "results", None) or []), *[r.to_dict() for r in extra]]
                e.results = results  # type: ignore[attr-defined]
                raise
            failed = [r for r in extra if r.failed]
            out["results"] = [*out["results"], *[r.to_dict() for r in extra]]
            ctx["ti"].xcom_push(key="chaos", value=out)
            if failed:
                from drdrill.core.errors import DrillFailed

                raise DrillFailed("; ".join(r.message for r in failed), results=out["results"])
            return out

        return self._complete(context, event, judge)
