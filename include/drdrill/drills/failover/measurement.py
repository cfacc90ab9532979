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


def measure(plan: Plan, fault: dict[str, Any] | None, verified: dict[str, Any] | None,
            critical: dict[str, Any] | None = None, steps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """RTO and RPO against the estate's targets (a miss is a failed check, so a failed drill).

    ``critical`` and ``steps``: the critical path task's output and its journal steps (region scope: the RTO
    split into restore, replay, promote, DNS and first write; how far the DR repo was behind)."""
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
    fix = ("Acknowledged writes were lost beyond the target: check replication lag and consider "
           "synchronous_commit/synchronous_standby_names.")
    what = f"RPO (data lost: {len(report.lost)} acknowledged write(s))"
    if plan.scope == "region":
        m["region"] = region_figures(fault or {}, critical or {}, steps or [], start, rto, report)
        lag = m["region"].get("dr_repo_lag_at_fault") or {}
        repo = f"repo{cluster.dr_repo}"
        what = (f"RPO (data lost: {len(report.lost)} acknowledged write(s) between "
                f"{report.last_surviving_committed_at or report.first_lost_committed_at} and "
                f"{report.last_lost_committed_at}; {repo} was "
                f"{lag.get('segments', '?')} complete segment(s) / {lag.get('bytes', '?')} B / "
                f"{lag.get('seconds', '?')} s behind the primary at the fault)")
        fix = (f"{repo} was behind when the region was lost: check archiving to {repo} (archive_command errors, "
               f"throughput) and archive_timeout; a region failover loses what {repo} does not hold.")
    results.append(at_most("rpo", report.loss_window_seconds, t.rpo_minutes * 60, unit="s", target=cluster.name,
                           what=what, fix=fix))
    holes = canary.holes(recs, present, start)
    results.append(CheckResult("canary_no_holes", Status.FAIL if holes else Status.PASS,
                               f"{len(holes)} acknowledged write(s) missing BEFORE the last surviving one "
                               f"(seq {holes[:10]})" if holes else
                               "no acknowledged write is missing before the last surviving one", cluster.name,
                               len(holes), 0))
    for r in results:
        (log.warning if r.failed else log.info)("%s", r.line())
    return {"measurements": m, "results": [r.to_dict() for r in results]}


def region_figures(fault: dict[str, Any], critical: dict[str, Any], steps: list[dict[str, Any]], start: float,
                   rto: float | None, report: Any) -> dict[str, Any]:
    """The region failover's RTO per phase (from the critical path's journal steps) and how far the DR repo was
    behind: at the fault (segments, bytes, seconds) and in WAL actually lost (the primary's position at the
    fault against where the DR node's replay ended)."""
    from datetime import datetime

    from drdrill.drills.failover.region import lsn_int

    def end(name: str) -> float | None:
        rec = next((s for s in steps if s.get("task_id", "").rsplit(".", 1)[-1] == name), None)
        if not rec or not rec.get("ended_at") or rec.get("status") != "success":
            return None
        return datetime.fromisoformat(rec["ended_at"]).timestamp()

    phases: dict[str, float | None] = {}
    prev = start
    for name in ("restore", "replay", "promote", "wait_writable", "switch"):
        e = end(name)
        phases[name if name != "switch" else "dns"] = round(e - prev, 3) if e is not None and prev else None
        prev = e if e is not None else prev
    if rto is not None and prev:
        phases["first_write"] = round(start + rto - prev, 3)
    replay_end = (critical.get("replay") or {}).get("replay_lsn")
    at_fault = fault.get("primary_lsn_at_fault")
    lost_bytes = max(0, lsn_int(at_fault) - lsn_int(replay_end)) if at_fault and replay_end else None
    return {"rto_phases_seconds": phases, "dr_repo_lag_at_fault": fault.get("dr_repo_lag"),
            "primary_lsn_at_fault": at_fault, "recovered_to_lsn": replay_end, "wal_bytes_lost": lost_bytes,
            "restore": critical.get("restore"), "lost_window": {
                "from": report.last_surviving_committed_at or report.first_lost_committed_at,
                "to": report.last_lost_committed_at,
                "seconds": report.loss_window_seconds, "writes": len(report.lost)}}


def _present_seqs(cluster: Cluster, run_id: str) -> set[int]:
    node = resolve_endpoint(cluster)
    with pg.connect(cluster, node.host, node.port) as c:
        return {r[0] for r in pg.query(c, "SELECT seq FROM drdrill.canary_writes WHERE run_id = %s", (run_id,))}
