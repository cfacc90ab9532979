"""Phase 1, Assess: the figures, and the safeguards that must hold before the primary is touched.

The safeguards are checked in Assess and again right before acting (`recheck`): the picture may
have changed since Assess.
"""

from __future__ import annotations

import logging
from typing import Any

from drdrill.core.checks import CheckResult, Status, at_most
from drdrill.core.errors import PreflightError
from drdrill.core.estate import Cluster
from drdrill.core.pgerrors import REFUSED_US
from drdrill.drills.failover.plan import INCIDENT, Plan, _cluster, _lag_limits
from drdrill.drills.failover.probes import announce, probe, smoke_test

# One logger for the whole runbook: the name its log lines had before it was split.
log = logging.getLogger("drdrill.drills.failover")


def safeguards(plan: Plan, figures: dict[str, Any], *, stage: str, cluster: Cluster | None = None
               ) -> list[CheckResult]:
    """The conditions that must hold before the primary is touched; raise with every reason if not."""
    cluster = cluster or _cluster(plan)
    max_bytes, max_s = _lag_limits(cluster)
    target = f"{cluster.name}/{plan.standby}"
    p, s = figures["primary"], figures["standby"]
    out = [CheckResult("cluster_allows", Status.PASS if cluster.allows(plan.dag_id) else Status.FAIL,
                       f"{plan.dag_id} {'is' if cluster.allows(plan.dag_id) else 'is NOT'} in allowed_drills",
                       cluster.name)]
    out.append(CheckResult("standby_ready", Status.PASS if s["ready"] else Status.FAIL,
                           "standby accepts connections" if s["ready"] else
                           f"standby {plan.standby} is not reachable ({s['why']}): failing over would leave no "
                           f"database", target))
    if s["ready"]:
        out.append(CheckResult("standby_in_recovery", Status.PASS if s.get("in_recovery") else Status.FAIL,
                               "standby is in recovery" if s.get("in_recovery") else
                               f"{plan.standby} is NOT in recovery: it is already a primary (split brain?)", target))
        out.append(at_most("standby_lag_bytes", s.get("lag_bytes"), max_bytes, unit=" B", target=target,
                           what=f"standby lag ({s.get('lag_source')})",
                           fix="Promoting now would lose that much WAL; wait for the standby to catch up."))
        out.append(at_most("standby_lag_seconds", s.get("lag_seconds"), max_s, unit="s", target=target,
                           what=f"standby replay lag ({s.get('lag_source')})"))
    if plan.drill:
        out.append(CheckResult("primary_ready", Status.PASS if p["ready"] else Status.FAIL,
                               "primary accepts connections (steady state before the drill)" if p["ready"] else
                               f"primary {plan.primary} is not reachable ({p['why']}): the estate is not in steady "
                               f"state; this is an incident, not a drill (use {INCIDENT})", cluster.name))
        if s["ready"]:
            out.append(CheckResult("standby_streaming", Status.PASS if s.get("receiver") == "streaming"
                                   else Status.FAIL, f"WAL receiver {s.get('receiver') or 'not running'}", target))
        svc = figures.get("service") or {}
        if svc.get("configured"):
            # Steady state from the customer's side: a write and a read back through every replica
            # work now. (The service's error rate covers the last minute, which may still hold the
            # previous drill's outage; it is reported, not gated on.)
            out += smoke_test(cluster, plan.run_id, retry_seconds=0)
    else:
        answers = str(p.get("why") or "").startswith(REFUSED_US)  # up, refusing our login: not down
        down = not p["ready"] and not answers
        out.append(CheckResult("primary_down", Status.PASS if down else Status.FAIL,
                               f"primary {plan.primary} does not answer ({p['why']})" if down else
                               f"primary {plan.primary} answers but refuses drdrill ({p['why']}): it is UP. "
                               f"Promoting the standby would make two primaries (split brain): fix the "
                               f"credentials or fence it first, or cancel this run." if answers else
                               f"primary {plan.primary} ACCEPTS connections: promoting the standby now would make "
                               f"two primaries (split brain). Stop or fence it first, or cancel this run.",
                               cluster.name))
    d = figures.get("dns") or {}
    if d.get("configured"):
        ok = d.get("points_at") in (plan.primary,) or (not plan.drill and d.get("points_at") == plan.standby)
        out.append(CheckResult("dns_record", Status.PASS if ok else Status.FAIL,
                               f"{d.get('record')} -> {d.get('value')} ({d.get('points_at') or 'no estate node'})"
                               + ("" if ok else f"; expected the primary {plan.primary}. Someone changed the record "
                                  f"or the topology state is wrong: fix it before failing over."
                                  if not d.get("error") else f"; cannot read it: {d['error']}"), "dns"))
    return refuse_if_failed(out, f"safeguards ({stage}) refuse the failover; the primary was not touched")


def refuse_if_failed(out: list[CheckResult], headline: str) -> list[CheckResult]:
    """Log every safeguard; raise `PreflightError` (``headline``, then each failed one) if any failed, with all of
    them for the journal step."""
    failed = [r for r in out if r.failed]
    for r in out:
        (log.warning if r.failed else log.info)("%s", r.line())
    if failed:
        err = PreflightError(f"{headline}:\n" + "\n".join(r.line() for r in failed))
        err.results = [r.to_dict() for r in out]  # type: ignore[attr-defined]  # journalled by the step
        raise err
    return out


def assess(plan: Plan) -> dict[str, Any]:
    if plan.scope == "region":
        return _assess_region(plan)
    figures = probe(plan)
    results = safeguards(plan, figures, stage="assess")
    s = figures["standby"]
    msg = announce(plan, "assess", impact=_impact(figures))
    summary = (f"Primary {plan.primary}: {'UP' if figures['primary']['ready'] else 'DOWN'} "
               f"({figures['primary']['why']}). Standby {plan.standby}: in recovery={s.get('in_recovery')}, "
               f"receiver={s.get('receiver')}, receive {s.get('receive_lsn')}, replay {s.get('replay_lsn')}, "
               f"lag {s.get('lag_bytes')} B / {s.get('lag_seconds')} s. Service error rate "
               f"{(figures.get('service') or {}).get('error_rate')}. DNS {figures['dns'].get('record')} -> "
               f"{figures['dns'].get('points_at')}.")
    return {"figures": figures, "results": [r.to_dict() for r in results], "summary": summary, "comms": msg}


def _impact(figures: dict[str, Any]) -> str:
    svc = figures.get("service") or {}
    if not svc.get("configured"):
        return "unknown (no service probe configured)"
    return (f"{svc.get('healthy')}/{len(svc.get('replicas', []))} service replicas healthy, error rate "
            f"{svc.get('error_rate')}")


def _assess_region(plan: Plan) -> dict[str, Any]:
    from drdrill.drills.failover import region

    figures = region.figures(plan)
    results = region.safeguards(plan, figures, stage="assess")
    lag, repo, node = figures["dr_repo_lag"], figures["dr_repo"], figures["dr_node"]
    msg = announce(plan, "assess", impact=_impact(figures))
    summary = (f"Region {figures['primary_region']} (primary {plan.primary}) -> DR region {figures['dr_region']} "
               f"({figures['mode']}: {plan.standby}). repo{repo['repo']}: newest full backup "
               f"{(repo.get('full_backup') or {}).get('label')}, newest WAL {repo.get('newest_wal')}; behind the "
               f"primary by {lag.get('segments')} segment(s) / {lag.get('bytes')} B for {lag.get('seconds')} s. "
               f"{plan.standby}: port {'open' if node['port_open'] else 'free'}, data directory {node['dir']}.")
    return {"figures": figures, "results": [r.to_dict() for r in results], "summary": summary, "comms": msg}


def recheck(plan: Plan) -> dict[str, Any]:
    """The safeguards again, right before acting (the picture may have changed since Assess)."""
    if plan.scope == "region":
        from drdrill.drills.failover import region

        figures = region.figures(plan)
        return {"figures": figures, "results": [r.to_dict() for r in region.safeguards(
            plan, figures, stage="right before acting")]}
    figures = probe(plan)
    results = safeguards(plan, figures, stage="right before acting")
    return {"figures": figures, "results": [r.to_dict() for r in results]}
