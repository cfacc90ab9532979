"""RTO and RPO, measured from the canary's acknowledged writes and compared with the estate's targets."""

from __future__ import annotations

import logging
from typing import Any

from drdrill.core import canary
from drdrill.core.checks import CheckResult, Status, at_most
from drdrill.core.estate import Cluster, load_estate
from drdrill.drills.failover.plan import Plan, _cluster
from drdrill.drills.failover.probes import resolve_endpoint
from drdrill.hooks import postgres as pg

# One logger for the whole runbook: the name its log lines had before it was split.
log = logging.getLogger("drdrill.drills.failover")


def measure(plan: Plan, fault: dict[str, Any] | None, verified: dict[str, Any] | None) -> dict[str, Any]:
    """RTO and RPO against the estate's targets (a miss is a failed check, so a failed drill)."""
    cluster = _cluster(plan)
    t = cluster.targets
    if plan.dry_run:
        return {"measurements": {"dry_run": True}, "results": []}
    start = (fault or {}).get("fault_at") if plan.drill else plan.started_at
    # From the state store, where the writer published them (it may have run on another worker); after
    # stop_canary, every attempt is there or this fails (incomplete evidence is never a shorter record).
    recs = canary.shared(load_estate().state_store, plan.run_id).records()
    results: list[CheckResult] = []
    m: dict[str, Any] = {"rto_start": "fault injected" if plan.drill else "run start",
                         "rto_target_seconds": t.rto_minutes * 60, "rpo_target_seconds": t.rpo_minutes * 60,
                         "lag_bytes_before_fault": (fault or {}).get("lag_bytes_before")}
    if not recs or start is None:
        results.append(CheckResult("rto", Status.FAIL, "no canary writes recorded: RTO/RPO not measured "
                                   "(is the service configured and reachable?)", cluster.name))
        return {"measurements": m, "results": [r.to_dict() for r in results]}
    present = _present_seqs(cluster, plan.run_id)
    report = canary.analyse(recs, present, start)
    m["canary"] = report.to_dict()
    rto = round(report.first_ack_after_fault - start, 3) if report.first_ack_after_fault else None
    m["rto_seconds"] = rto
    results.append(at_most("rto", rto, t.rto_minutes * 60, unit="s", target=cluster.name,
                           what=f"RTO ({m['rto_start']} -> first write through the endpoint)"))
    m["rpo_seconds"] = report.loss_window_seconds
    m["lost_writes"] = len(report.lost)
    results.append(at_most("rpo", report.loss_window_seconds, t.rpo_minutes * 60, unit="s", target=cluster.name,
                           what=f"RPO (data lost: {len(report.lost)} acknowledged write(s))",
                           fix="Acknowledged writes were lost beyond the target: check replication lag and "
                               "consider synchronous_commit/synchronous_standby_names."))
    holes = canary.holes(recs, present, start)
    results.append(CheckResult("canary_no_holes", Status.FAIL if holes else Status.PASS,
                               f"{len(holes)} acknowledged write(s) missing BEFORE the last surviving one "
                               f"(seq {holes[:10]})" if holes else
                               "no acknowledged write is missing before the last surviving one", cluster.name,
                               len(holes), 0))
    for r in results:
        (log.warning if r.failed else log.info)("%s", r.line())
    return {"measurements": m, "results": [r.to_dict() for r in results]}


def _present_seqs(cluster: Cluster, run_id: str) -> set[int]:
    node = resolve_endpoint(cluster)
    with pg.connect(cluster, node.host, node.port) as c:
        return {r[0] for r in pg.query(c, "SELECT seq FROM drdrill.canary_writes WHERE run_id = %s", (run_id,))}
