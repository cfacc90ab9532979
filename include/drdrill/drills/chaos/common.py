"""What both chaos drills share: preflight (guards and the plan), the steady state, the verdict.

The lifecycle (DESIGN.md): preflight checks every guard and writes the plan (the random seed
included, so a run can be replayed); the steady state is probed before anything is touched (a
drill never hits a sick system); the action re-checks the guards that can change (window, kill
switch, target lock, disruption budget) right before it acts; the fault is observed in the
triggerer while the probe runs (`drdrill.triggers.chaos`); the verdict compares what customers saw
and how fast the service healed with the estate's bounds.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from drdrill.core.checks import CheckResult, Status
from drdrill.core.errors import DrillFailed
from drdrill.core.estate import Estate
from drdrill.core.services import ServiceTarget
from drdrill.drills.chaos import guards
from drdrill.drills.chaos.guards import Verdict

log = logging.getLogger("drdrill.drills.chaos")


def select_service(estate: Estate, name: str | None, drill: str, seed: int) -> ServiceTarget:
    """The service named by the param, else one of those allowing ``drill``, chosen with the run's seed."""
    if name:
        return estate.service(name)
    allowed = estate.services_for(drill)
    if not allowed:
        from drdrill.core.errors import PreflightError

        raise PreflightError(f"no service of {estate.source} allows {drill}: add it to a service's allowed_drills")
    return estate.service(guards.pick([s.name for s in allowed], 1, seed)[0])


def kill_switch_verdict() -> Verdict:
    from drdrill.core import killswitch

    try:
        killswitch.check_kill_switch("chaos action")
    except killswitch.KillSwitchEngaged as e:
        return Verdict("kill_switch", False, str(e), skip=True)
    return Verdict("kill_switch", True, "the kill switch is off")


def preflight(estate: Estate, service: ServiceTarget, *, drill: str, dry_run: bool, at: dt.datetime,
              params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every guard that needs no target API, then the repair of what an earlier run left; raises a skip or a
    refusal before anything is touched; returns the plan."""
    params = dict(params or {})
    verdicts = [guards.allowed(service, drill), guards.namespace(service)]
    if drill == "dr_weekly_pod_kill":
        verdicts.append(guards.blast_radius(service, int(params.get("victims") or 1)))
    if drill == "dr_monthly_az_failure":
        verdicts.append(zone_verdict(service, params.get("zone")))
    verdicts += [guards.window(service, estate.schedules.timezone, at), kill_switch_verdict()]
    for v in verdicts:
        log.info("guard %s: %s - %s", v.name, "ok" if v.ok else ("skip" if v.skip else "REFUSED"), v.detail)
    guards.enforce(verdicts)
    required, reason = guards.approval(service, dry_run=dry_run)
    log.info("approval: %s", reason)
    az = {}
    if drill == "dr_monthly_az_failure":
        az = az_plan(service, params)
    repaired = [] if dry_run else repair(service)
    return {**az, "service": service.name, "kind": service.kind, "url": service.url, "cluster": service.cluster,
            "seed": int(params["seed"]) if params.get("seed") is not None else None,
            "dry_run": dry_run, "approval_required": required, "approval_reason": reason,
            "lock_keys": service.lock_keys(), "guards": [v.to_dict() for v in verdicts], "repaired": repaired,
            "engine": service.az_failure.engine if service.az_failure else None}


def zone_verdict(service: ServiceTarget, zone: str | None) -> Verdict:
    zones = service.zones()
    if zone in (None, ""):
        return Verdict("zone", True, f"zone chosen at random (journalled seed) from {', '.join(zones)}")
    if zone in zones:
        return Verdict("zone", True, f"zone {zone} is one of {', '.join(zones)}")
    return Verdict("zone", False, f"unknown zone {zone!r}: service {service.name}'s zones are {', '.join(zones)}; "
                   f"pass one of them as the zone param, or none for a random one")


def az_plan(service: ServiceTarget, params: dict[str, Any]) -> dict[str, Any]:
    """The AZ failure's zone (the param, else chosen with the run's seed) and, for engine ``fis``, the FIS
    operator's arguments (the template for that zone: an unknown zone or a bad template is refused here)."""
    az = service.az_failure
    assert az is not None  # the allow-list guard passed: the estate refuses the drill without az_failure
    zone = params.get("zone") or guards.pick(service.zones(), 1, int(params["seed"]))[0]
    duration = params.get("duration_seconds")
    out: dict[str, Any] = {"zone": zone, "duration_seconds": float(duration) if duration else az.duration_seconds,
                           "fis": None}
    if az.engine == "fis":
        from drdrill.drills.chaos.fis import operator_kwargs

        out["fis"] = operator_kwargs(service, zone, duration_seconds=float(duration) if duration else None)
    return out


def repair(service: ServiceTarget) -> list[str]:
    """Start replicas a killed run left stopped (the next run heals what a killed run left)."""
    if service.process:
        from drdrill.drills.chaos.process import ProcessOps

        started = ProcessOps(service.process).start_stopped()
    elif service.postgres:
        from drdrill.drills.chaos.standby import StandbyOps

        started = StandbyOps(service.postgres).start_stopped()
    else:
        return []
    if started:
        log.warning("an earlier run left %s stopped: started them again before anything else", started)
    return started


def teardown(plan: dict[str, Any], context: Any) -> dict[str, Any]:
    """Always: replicas a failed run left stopped are started, a FIS experiment still running is stopped,
    then the target lock is released (last: nothing else may act on the target before it is whole)."""
    if not plan:
        return {"nothing": "preflight did not plan an action"}
    from drdrill.core import targetlock
    from drdrill.core.estate import load_estate

    lease = context["ti"].xcom_pull(task_ids="act", key="lease")
    try:
        svc = load_estate().service(plan["service"])
        out: dict[str, Any] = {"started": [] if plan.get("dry_run") else repair(svc)}
        if plan.get("fis"):  # a failed or killed run's experiment never stays running
            from drdrill.drills.chaos.fis import stop_left_running

            out["stopped_experiments"] = stop_left_running(svc)
    finally:
        released = targetlock.release(lease) if lease else []
    out["released"] = released
    return out


def finish(context: Any, ids: list[str], drill: str) -> dict[str, Any]:
    """The journal: guards, steady state, victims, recovery times, what customers saw before/during/after."""
    from drdrill.core import journal

    ti = context["ti"]
    plan = ti.xcom_pull(task_ids="preflight") or {}
    steady = ti.xcom_pull(task_ids="steady_state") or {}
    act = ti.xcom_pull(task_ids="act", key="chaos") or ti.xcom_pull(task_ids="act") or {}
    results = [CheckResult.from_dict(d) for d in (steady.get("results") or [])]
    act_failed = ti.xcom_pull(task_ids="act", key=journal.RESULTS_KEY)  # listed by journal.finish already
    if not act_failed:
        results += [CheckResult.from_dict(d) for d in (act.get("results") or [])]
    chaos = {
        "service": plan.get("service"), "kind": plan.get("kind"), "front_door": plan.get("url"),
        "guards": plan.get("guards", []) + act.get("guards", []), "approval_reason": plan.get("approval_reason"),
        "repaired_before": plan.get("repaired"), "seed": act.get("seed"), "victims": act.get("victims"),
        "zone": act.get("zone") or plan.get("zone"), "killed": act.get("killed"),
        "fis": ({k: act.get(k) for k in ("experiment_id", "template_id", "template", "preview_id", "state", "reason",
                                         "seconds", "alarms", "heal")} if plan.get("fis") else None),
        "dry_run": act.get("dry_run", plan.get("dry_run")),
        "detect_seconds": act.get("detect_seconds"), "recover_seconds": act.get("recover_seconds"),
        "lease": ti.xcom_pull(task_ids="act", key="lease"), "teardown": ti.xcom_pull(task_ids="teardown"),
        "probe": {"before": steady.get("probe"), "kill": act.get("probe_kill"), "fault": act.get("probe_zone_down"),
                  "during": act.get("probe_during"), "after": act.get("probe_after")},
    }
    return journal.finish(context, task_ids=ids, results=results, cluster=plan.get("cluster"),
                          extra={"chaos": chaos}, action="act")


def steady_state(service: ServiceTarget, run_id: str, ops: Any = None) -> dict[str, Any]:
    """The probe's baseline through the front door, and the target's own health, before any action."""

    p = service.probe
    healthy, detail, state = ops.steady() if ops is not None else (True, "no target to check", {})
    # Each probe tags its writes with its own id: the service keeps (run_id, seq) unique.
    with customer_probe(service, f"{run_id}/before") as probe:
        time.sleep(p.baseline_seconds)
    before = probe.report()["before"]
    results = [
        CheckResult("steady_state.target", Status.PASS if healthy else Status.FAIL, detail, service.name,
                    details=state),
        probe_check("steady_state.customer_errors", before, p.max_errors, service),
        latency_check("steady_state.latency_p99", before, p.max_p99_ms, service),
    ]
    out = {"probe": before, "target": state, "results": [r.to_dict() for r in results]}
    failed = [r for r in results if r.failed]
    if failed:
        raise DrillFailed("steady state not met before the fault, so nothing was touched (a drill never hits a "
                          "sick system): " + "; ".join(r.message for r in failed),
                          results=[r.to_dict() for r in results])
    log.info("steady state: %s; %s requests, %s errors, p99 %s ms", detail, before["requests"], before["errors"],
             before["latency_p99_ms"])
    return out


def customer_probe(service: ServiceTarget, run_id: str) -> Any:
    """The customer probe through the service's front door, with the estate's rate and timeout (not started)."""
    from drdrill.core.probe import CustomerProbe

    p = service.probe
    return CustomerProbe(service.url, run_id=run_id, rate=p.rate, timeout=p.timeout_seconds,
                         write_path=p.write_path or "/write", read_path=p.read_path, concurrency=p.concurrency)


def probe_check(name: str, period: dict[str, Any], max_errors: int, service: ServiceTarget) -> CheckResult:
    errors = period.get("errors") or 0
    ok = errors <= max_errors and (period.get("requests") or 0) > 0
    msg = (f"{errors} customer-visible error(s) in {period.get('requests') or 0} requests through {service.url} "
           f"(at most {max_errors})")
    if not period.get("requests"):
        msg = f"the probe got no answer at all through {service.url}"
    return CheckResult(name, Status.PASS if ok else Status.FAIL, msg, service.name, value=errors,
                       threshold=max_errors, details={"examples": period.get("error_examples", [])})


def latency_check(name: str, period: dict[str, Any], max_ms: float, service: ServiceTarget) -> CheckResult:
    p99 = period.get("latency_p99_ms")
    ok = p99 is not None and p99 <= max_ms
    return CheckResult(name, Status.PASS if ok else Status.FAIL,
                       f"p99 latency {p99} ms (p50 {period.get('latency_p50_ms')} ms), at most {max_ms:g} ms",
                       service.name, value=p99, threshold=max_ms)


def after_probe(service: ServiceTarget, run_id: str) -> dict[str, Any]:
    """Customers after recovery: errors and latency back to normal."""

    p = service.probe
    if p.after_seconds <= 0:
        return {}
    with customer_probe(service, f"{run_id}/after") as probe:
        probe.mark("after")
        time.sleep(p.after_seconds)
    return probe.report().get("after", {})


def verdict(service: ServiceTarget, event: dict[str, Any], after: dict[str, Any], *,
            heal_bound: float) -> list[CheckResult]:
    """What the run is judged by: healed in time, customer errors and latency during and after."""
    p = service.probe
    status = event.get("status")
    healed = status in ("healed",)
    rec = event.get("recover_seconds")
    results = [
        CheckResult("recovery", Status.PASS if healed else Status.FAIL,
                    f"healed in {rec:.2f} s (bound {heal_bound:g} s)" if healed
                    else (event.get("message") or f"not healed ({status})"),
                    service.name, value=rec, threshold=heal_bound,
                    details={"detect_seconds": event.get("detect_seconds"), "target": event.get("target")}),
        probe_check("customer_errors.during", event.get("probe") or {}, p.max_errors, service),
        latency_check("latency_p99.during", event.get("probe") or {}, p.max_p99_ms, service),
    ]
    if after:
        results += [probe_check("customer_errors.after", after, p.max_errors, service),
                    latency_check("latency_p99.after", after, p.max_p99_ms, service)]
    if p.alarm and event.get("killed_at"):
        results.append(alarm_check(service, float(event["killed_at"]), float(event.get("ended_at") or time.time())))
    return results


def alarm_check(service: ServiceTarget, since: float, until: float) -> CheckResult:
    """The estate's CloudWatch alarm (e.g. the load balancer's 5xx) must not have fired during the fault."""
    from drdrill.hooks.cloudwatch import AlarmHook

    a = service.probe.alarm
    assert a is not None
    try:
        firings = AlarmHook(aws_conn_id=a.conn_id, region_name=a.region).alarm_fired(a.name, since=since,
                                                                                     until=until + 60)
    except Exception as e:  # noqa: BLE001 - a signal we could not read is a failed check, not a pass
        return CheckResult("alarm", Status.FAIL, f"could not read CloudWatch alarm {a.name}: {e}", service.name)
    if firings.fired:
        return CheckResult("alarm", Status.FAIL, f"CloudWatch alarm {a.name} fired during the fault: "
                           f"{firings.describe()}", service.name)
    return CheckResult("alarm", Status.PASS, f"CloudWatch alarm {a.name} did not fire (now {firings.state})",
                       service.name)
