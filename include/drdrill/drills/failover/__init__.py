"""The PostgreSQL primary failure runbook, one function per runbook step.

Both failover DAGs call these through the task graph built by `drdrill.runbook`:
``dr_quarterly_failover_drill`` injects the fault itself and fails back at the end;
``dr_postgres_primary_failover`` is for a real incident (no fault, human gate, trigger
criteria first). Phases follow the seed runbook: Assess, Failover (promote + DNS switch),
Verify, Stabilize; Rollback when Verify fails; Failback after a drill.

Every action refuses to run on a stale picture: the safeguards are checked in Assess and
again right before the primary is touched. Everything a step did is returned (XCom) and
ends in the journal and the Markdown timeline.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drdrill.core import canary
from drdrill.core.checks import CheckResult, Status, at_most
from drdrill.core.errors import DrillError, DrillFailed, PreflightError
from drdrill.core.estate import Cluster, load_estate
from drdrill.core.polling import wait_until
from drdrill.drills.failover.node_ops import NodeOps
from drdrill.drills.failover.plan import DRILL, FAULTS, INCIDENT, Plan, _cluster, _lag_limits, preflight
from drdrill.drills.failover.probes import (
    STANDBY_SQL,
    announce,
    dns_state,
    probe,
    resolve_endpoint,
    service_health,
    smoke_test,
)
from drdrill.hooks import postgres as pg

log = logging.getLogger(__name__)

__all__ = ["DRILL", "INCIDENT", "FAULTS", "Plan", "preflight", "STANDBY_SQL", "service_health", "probe", "dns_state",
           "safeguards", "assess", "announce", "start_canary", "recheck", "inject_fault", "promote", "after_promotion",
           "switch_dns", "resolve_endpoint", "verify", "smoke_test", "rollback", "archiving", "new_standby",
           "topology_state", "failback_switchover", "measure", "stop_canary", "cleanup"]


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
        out.append(CheckResult("primary_down", Status.PASS if not p["ready"] else Status.FAIL,
                               f"primary {plan.primary} does not answer ({p['why']})" if not p["ready"] else
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
    failed = [r for r in out if r.failed]
    for r in out:
        (log.warning if r.failed else log.info)("%s", r.line())
    if failed:
        err = PreflightError(f"safeguards ({stage}) refuse the failover; the primary was not touched:\n"
                             + "\n".join(r.line() for r in failed))
        err.results = [r.to_dict() for r in out]  # type: ignore[attr-defined]  # journalled by the step
        raise err
    return out


def assess(plan: Plan) -> dict[str, Any]:
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


def start_canary(plan: Plan) -> dict[str, Any]:
    from drdrill.core import scratch

    cluster = _cluster(plan)
    svc = cluster.failover.service if cluster.failover else None
    if svc is None:
        log.warning("no service configured for %s: no canary writer, RTO/RPO cannot be measured from the "
                    "application's side", cluster.name)
        return {"started": False, "reason": "no service configured"}
    if plan.dry_run:
        log.info("[DRY RUN] would start the canary writer through %s", svc.urls)
        return {"started": False, "dry_run": True}
    if plan.drill:  # in an incident the primary is down; promote() creates it on the new primary
        with pg.connect(cluster, cluster.primary.host, cluster.primary.port) as c:
            pg.query(c, canary.TABLE_SQL)
    workdir = Path(plan.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / scratch.TAG_FILE).write_text(json.dumps({"run_id": plan.run_id, "dag_id": plan.dag_id,
                                                        "dir": str(workdir), "kind": "failover"}))
    urls = [u.rstrip("/") + svc.write_path for u in svc.urls]
    pid = canary.start(workdir, plan.run_id, urls, interval_ms=cluster.failover.canary_interval_ms,
                       timeout=svc.timeout_seconds)
    if plan.drill:  # steady state from the application's side: acknowledged writes before the fault
        wait_until(lambda: sum(1 for r in canary.records(workdir) if r.get("ok")) >= 3, timeout=30,
                      interval=0.1, what="the canary writer's first acknowledged writes through the service")
    return {"started": True, "pid": pid, "urls": urls, "workdir": str(workdir)}


def recheck(plan: Plan) -> dict[str, Any]:
    """The safeguards again, right before acting (the picture may have changed since Assess)."""
    figures = probe(plan)
    results = safeguards(plan, figures, stage="right before acting")
    return {"figures": figures, "results": [r.to_dict() for r in results]}


def inject_fault(plan: Plan, before: dict[str, Any]) -> dict[str, Any]:
    cluster = _cluster(plan)
    node = cluster.node(plan.primary)
    lag = (before.get("figures") or {}).get("standby", {}).get("lag_bytes")
    if plan.dry_run:
        log.info("[DRY RUN] would %s the primary %s", plan.fault, node.name)
        return {"fault": plan.fault, "fault_at": time.time(), "dry_run": True, "lag_bytes_before": lag}
    ops = NodeOps(cluster)
    rec = ops.kill(node) if plan.fault == "kill" else ops.stop(node, "immediate")
    # The fault counts from the moment the command returned: the server is certainly down then.
    # A write sent while pg_ctl was still starting could be served by the old primary, and would
    # otherwise pass for a write after the failover.
    log.warning("FAULT INJECTED: %s of %s at %s", rec["action"], node.name,
                datetime.fromtimestamp(rec["done_at"], UTC).isoformat(timespec="milliseconds"))
    return {"fault": plan.fault, "fault_at": rec["done_at"], "fault_command_started_at": rec["at"],
            "action": rec["action"], "lag_bytes_before": lag}


def promote(plan: Plan, node_name: str | None = None, *, reason: str = "failover") -> dict[str, Any]:
    """Promote ``node_name`` (default: the plan's standby), then record it (`after_promotion`)."""
    cluster = _cluster(plan)
    node = cluster.node(node_name or plan.standby)
    target = {"host": node.host, "port": node.port, "node": node.name}
    if plan.dry_run:
        log.info("[DRY RUN] would promote %s with pg_promote(wait => true)", node.name)
        return {**target, "dry_run": True, "promoted_at": time.time()}
    rec = NodeOps(cluster).promote(node, wait_seconds=int(cluster.failover.promote_timeout_seconds))
    return {**target, **rec, **after_promotion(plan, node.name, reason=reason)}


def after_promotion(plan: Plan, node_name: str, *, reason: str = "failover") -> dict[str, Any]:
    """What follows a promotion at once: the canary's table, the topology record, the message."""
    from drdrill.core import topology

    estate = load_estate()
    cluster = _cluster(plan, estate)
    node = cluster.node(node_name)
    if plan.dry_run:
        return {"dry_run": True}
    if cluster.failover.service:  # the canary's table, in case the old primary never had it
        try:
            with pg.connect(cluster, node.host, node.port) as c:
                if pg.query_one(c, "SELECT to_regclass('drdrill.canary_writes') IS NULL")[0]:
                    pg.query(c, canary.TABLE_SQL)
        except Exception as e:  # noqa: BLE001 - the promotion happened; verify judges the writes
            log.warning("could not create drdrill.canary_writes on %s: %s", node.name, e)
    # Recorded at once: from now on the next drill and the daily verification must see the truth.
    topology.record(estate, cluster.name, node.name, run_id=plan.run_id, drill=plan.dag_id, reason=reason)
    msg = announce(plan, "failover" if reason == "failover" else "failback", standby=node.name,
                   impact="writes fail until the DNS switch completes")
    return {"topology_recorded": node.name, "comms": msg}


def switch_dns(plan: Plan, node_name: str) -> dict[str, Any]:
    cluster = _cluster(plan)
    f = cluster.failover
    if not f or not f.dns:
        return {"switched": False, "reason": "no DNS record configured"}
    from drdrill.hooks import route53 as dns

    node = cluster.node(node_name)
    if plan.dry_run:
        log.info("[DRY RUN] would UPSERT %s -> %s", f.dns.record, dns.value_for(f.dns, node))
        return {"switched": False, "dry_run": True}
    out = dns.switch(f.dns, node, comment=f"drdrill {plan.dag_id} {plan.run_id}: {node.name} is primary")
    return {"switched": True, "at": time.time(), **out}


def verify(plan: Plan, node_name: str, *, fault_at: float | None, wait_canary: bool = True) -> dict[str, Any]:
    """The runbook's verification commands; raise `DrillFailed` with every failed check."""
    cluster = _cluster(plan)
    node = cluster.node(node_name)
    if plan.dry_run:
        log.info("[DRY RUN] would verify %s: not in recovery, write test through the endpoint, smoke test", node.name)
        return {"results": [], "dry_run": True}
    target = f"{cluster.name}/{node.name}"
    out: list[CheckResult] = []
    try:
        endpoint = resolve_endpoint(cluster)
        out.append(CheckResult("endpoint_points_at_new_primary", Status.PASS if endpoint.name == node.name
                               else Status.FAIL, f"the service record resolves to {endpoint.name}", target,
                               endpoint.name, node.name))
    except Exception as e:  # noqa: BLE001 - reported as a failed check
        endpoint = node
        out.append(CheckResult("endpoint_points_at_new_primary", Status.FAIL, f"cannot resolve the endpoint: {e}",
                               target))
    try:
        with pg.connect(cluster, endpoint.host, endpoint.port) as c:
            in_rec = pg.query_one(c, "SELECT pg_is_in_recovery()")[0]
            out.append(CheckResult("not_in_recovery", Status.FAIL if in_rec else Status.PASS,
                                   "pg_is_in_recovery() is false: it accepts writes" if not in_rec else
                                   "pg_is_in_recovery() is TRUE: the endpoint is still a standby", target))
            name = f"dr_test_{int(time.time() * 1000)}"
            pg.query(c, f"CREATE TABLE drdrill.{name} (t timestamptz DEFAULT now()); "
                        f"INSERT INTO drdrill.{name} DEFAULT VALUES; DROP TABLE drdrill.{name}")
            out.append(CheckResult("write_test", Status.PASS, "CREATE TABLE / INSERT / DROP TABLE succeeded "
                                   "through the endpoint", target))
    except Exception as e:  # noqa: BLE001 - the failed check says why
        out.append(CheckResult("write_test", Status.FAIL, f"write through the endpoint failed: "
                               f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}", target))
    out += smoke_test(cluster, plan.run_id)
    first_write = None
    writes_fail = any(r.failed and r.name == "write_test" for r in out)
    if wait_canary and fault_at and cluster.failover and cluster.failover.service and not writes_fail:
        try:
            first_write = wait_until(
                lambda: next((r["done_at"] for r in canary.records(Path(plan.workdir))
                              if r.get("ok") and r["sent_at"] >= fault_at), None),
                timeout=60, interval=0.1, what="the first acknowledged canary write after the fault")
            out.append(CheckResult("canary_writes_resumed", Status.PASS,
                                   f"the canary's writes through the service succeed again "
                                   f"{first_write - fault_at:.2f}s after the fault", "service",
                                   round(first_write - fault_at, 3)))
        except DrillError as e:
            out.append(CheckResult("canary_writes_resumed", Status.FAIL, str(e), "service"))
    failed = [r for r in out if r.failed]
    for r in out:
        (log.warning if r.failed else log.info)("%s", r.line())
    if failed:
        raise DrillFailed("verify failed:\n" + "\n".join(r.line() for r in failed),
                          results=[r.to_dict() for r in out])
    msg = announce(plan, "verify", standby=node.name, impact="none: writes succeed through the endpoint")
    return {"results": [r.to_dict() for r in out], "first_write_at": first_write, "comms": msg}


def rollback(plan: Plan, steps: dict[str, str], reason: str) -> dict[str, Any]:
    """Put the original primary back when Verify failed and it is recoverable; else escalate."""
    from drdrill.core import topology

    promoted = steps.get("promote") == "success"
    if not promoted:
        log.info("the standby was never promoted: nothing to roll back")
        return {"rolled_back": False, "reason": "nothing was changed"}
    estate = load_estate()
    cluster = _cluster(plan, estate)
    old, failed_new = cluster.node(plan.primary), cluster.node(plan.standby)
    ops = NodeOps(cluster)
    out: dict[str, Any] = {"reason": reason, "actions": []}
    if plan.dry_run:
        return {"rolled_back": False, "dry_run": True}
    ready, why = ops.is_ready(old)
    if not ready and plan.drill and not ops.running_pid(old):
        ops.start(old)  # the fault was ours: the original primary is recoverable
        out["actions"].append(f"restarted {old.name}")
        ready, why = ops.is_ready(old)
    if not ready:
        msg = announce(plan, "failed", reason=f"verify failed ({reason}) and the original primary {old.name} is not "
                       f"recoverable ({why}); staying on {failed_new.name}")
        return {"rolled_back": False, "recoverable": False, "why": why, "comms": msg, **out}
    # Fence the failed new primary before sending clients back: never two writable endpoints.
    if ops.running_pid(failed_new):
        ops.stop(failed_new, "fast")
        out["actions"].append(f"stopped {failed_new.name}")
    if cluster.failover and cluster.failover.dns:
        out["dns"] = switch_dns(plan, old.name)
        out["actions"].append(f"DNS back to {old.name}")
    topology.record(estate, cluster.name, old.name, run_id=plan.run_id, drill=plan.dag_id, reason="rollback")
    # The abandoned promotion archived a .partial of the original primary's current WAL segment.
    # The original goes on writing that segment on its old timeline, so the next promotion of a
    # standby in the same segment would archive a .partial of the same name with other content,
    # and pgBackRest refuses it for ever ("already exists ... with a different checksum"):
    # archiving would stop. Switching segments now keeps the names apart.
    with pg.connect(cluster, old.host, old.port, "postgres") as c:
        out["wal_switched_at"] = pg.query_one(c, "SELECT pg_switch_wal()::text")[0]
    out["actions"].append(f"WAL segment switched on {old.name}")
    try:
        out["standby"] = ops.rebuild_standby(failed_new, old, method=cluster.failover.new_standby,
                                             timeout=cluster.failover.standby_streaming_timeout_seconds)
        out["actions"].append(f"{failed_new.name} rebuilt as standby of {old.name}")
    except DrillError as e:
        out["standby_error"] = str(e)
    out["comms"] = announce(plan, "rollback", reason=reason, standby=old.name)
    out["rolled_back"] = True
    return out


def archiving(plan: Plan) -> dict[str, Any]:
    """pgBackRest check on the new primary: WAL from the new timeline reaches every repo."""
    from drdrill.hooks.pgbackrest import PgBackRestHook

    cluster = _cluster(plan)
    if plan.dry_run:
        log.info("[DRY RUN] would run pgbackrest check on %s", cluster.primary.name)
        return {"results": []}
    with pg.connect(cluster, cluster.primary.host, cluster.primary.port, "postgres") as c:
        mode, cmd = pg.query_one(c, "SELECT current_setting('archive_mode'), current_setting('archive_command')")
    res = PgBackRestHook.for_cluster(cluster).check(timeout=300)
    r = [CheckResult("archive_mode", Status.PASS if mode in ("on", "always") and cmd else Status.FAIL,
                     f"archive_mode={mode}, archive_command {'set' if cmd else 'EMPTY'} on {cluster.primary.name}",
                     f"{cluster.name}/{cluster.primary.name}"),
         CheckResult("archive_round_trip", Status.PASS if res.returncode == 0 else Status.FAIL,
                     f"pgbackrest check on the new primary {cluster.primary.name}: " +
                     ("WAL reached every repo" if res.returncode == 0 else _error_lines(res.stderr + res.stdout)),
                     f"{cluster.name}/{cluster.primary.name}")]
    if any(x.failed for x in r):
        raise DrillFailed("archiving on the new primary does not work:\n" + "\n".join(x.line() for x in r),
                          results=[x.to_dict() for x in r])
    return {"results": [x.to_dict() for x in r]}


def _error_lines(text: str) -> str:
    """pgBackRest's ERROR lines (its HINT lines come last and say less)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "ERROR" in ln]
    return " | ".join((errors or lines[-3:])[:3])[:1000]


def new_standby(plan: Plan, old_name: str, new_primary: str) -> dict[str, Any]:
    """Provision a standby: the old primary rebuilt (pg_rewind or pgBackRest) and streaming."""
    cluster = _cluster(plan)
    f = cluster.failover
    if plan.dry_run:
        log.info("[DRY RUN] would rebuild %s as standby of %s (%s)", old_name, new_primary, f.new_standby)
        return {"dry_run": True}
    return NodeOps(cluster).rebuild_standby(cluster.node(old_name), cluster.node(new_primary),
                                             method=f.new_standby, timeout=f.standby_streaming_timeout_seconds)


def topology_state(plan: Plan, phase: str) -> dict[str, Any]:
    from drdrill.core import topology

    estate = load_estate()
    cluster = _cluster(plan, estate)
    state = topology.read(estate.state_store).get(cluster.name, {})
    msg = announce(plan, phase, standby=cluster.primary.name, impact="none")
    return {"primary": cluster.primary.name, "standbys": [n.name for n in cluster.standbys],
            "recorded": {k: state.get(k) for k in ("primary", "since", "run_id")}, "comms": msg}


def failback_switchover(plan: Plan) -> dict[str, Any]:
    """Planned switchover back to the original primary: clean stop, replayed, promote."""
    cluster = _cluster(plan)
    current, original = cluster.node(plan.standby), cluster.node(plan.primary)
    if plan.dry_run:
        log.info("[DRY RUN] would stop %s cleanly and promote %s", current.name, original.name)
        return {"dry_run": True, "host": original.host, "port": original.port}
    t0 = time.time()
    stopped = NodeOps(cluster).switchover_stop(current, original)
    rec = promote(plan, original.name, reason="failback")
    return {**rec, "stopped": stopped, "stopped_at": t0}


def measure(plan: Plan, fault: dict[str, Any] | None, verified: dict[str, Any] | None) -> dict[str, Any]:
    """RTO and RPO against the estate's targets (a miss is a failed check, so a failed drill)."""
    cluster = _cluster(plan)
    t = cluster.targets
    if plan.dry_run:
        return {"measurements": {"dry_run": True}, "results": []}
    start = (fault or {}).get("fault_at") if plan.drill else plan.started_at
    recs = canary.records(Path(plan.workdir))
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


def stop_canary(plan: Plan) -> dict[str, Any]:
    stopped = canary.stop(Path(plan.workdir))
    return {"stopped": stopped}


def cleanup(plan: Plan) -> dict[str, Any]:
    """Remove the run's scratch directory (the canary writer is stopped first)."""
    from drdrill.core import scratch

    cluster = _cluster(plan)
    d = Path(plan.workdir)
    if d.exists():
        scratch.remove(d, NodeOps(cluster).runner, cluster.postgres.bin_dir)
    return {"removed": str(d)}
