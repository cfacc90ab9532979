"""Phase 2, Failover: the fault (drill only), the promotion and what follows it, the DNS switch.

Also the drill's failback, which is a planned switchover ending in the same promotion.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from drdrill.core import canary
from drdrill.core.estate import load_estate
from drdrill.drills.failover.node_ops import NodeOps
from drdrill.drills.failover.plan import Plan, _cluster
from drdrill.drills.failover.probes import announce
from drdrill.hooks import postgres as pg

# One logger for the whole runbook: the name its log lines had before it was split.
log = logging.getLogger("drdrill.drills.failover")


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


DNS_INSYNC_IN_TASK_SECONDS = 3.0  # INSYNC polled here this long; after that dns_switch.insync waits (deferred)


def promote_and_switch(plan: Plan, steps: Any, before: dict[str, Any] | None = None,
                       locked: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fault (drill only) -> promote -> wait until writable -> Route53 UPSERT, with no task boundary between.

    ``steps`` is the task's `drdrill.core.journal.StepsOfTask`: each part is its own journal step
    (``inject_fault``, ``promote``, ``wait_writable``, ``switch``; their ids are the runbook's,
    `drdrill.runbook.common.critical_path_steps`). The fault's time is published at once (XCom
    ``fault_at``) for the RTO watch running beside this task. The Route53 client is built before
    the fault; what is not on the way to the first write (the canary's table, the topology record,
    the message) is `after_promotion`, a task of its own.
    Route53's INSYNC is polled here for a few seconds; a slower zone is waited for by
    ``dns_switch.insync`` in the triggerer (the record is switched already).

    ``locked``: what `drdrill.drills.failover.locking.lock` returned. In a drill, right before the fault
    the kill switch is checked and the lease must still be this run's (`locking.guard`; nothing is done
    otherwise); right before the promotion and the DNS switch the kill switch's verdict is recorded in
    the step (``kill_switch``) but does not stop them: they are the recovery from the drill's own fault.

    Returns ``{"fault", "promote", "writable", "dns"}`` (``dns``: the change, ``status`` INSYNC or
    PENDING; what `Route53RecordSwitchOperator` takes as ``change``).
    """
    cluster = _cluster(plan)
    node = cluster.node(plan.standby)
    f = cluster.failover
    r53 = None
    if f and f.dns and not plan.dry_run:
        from drdrill.hooks import route53 as dns

        r53 = dns.client(f.dns)
        _ = r53.conn  # built before the fault: the switch itself is what is timed
    out: dict[str, Any] = {}
    region = None
    if plan.scope == "region":
        from drdrill.drills.failover import region
    if plan.drill:
        from drdrill.drills.failover import locking

        with steps.step("inject_fault") as rec:
            rec["guard"] = locking.guard(plan, locked, "the fault injection")
            out["fault"] = (region.inject_fault if region else inject_fault)(plan, before or {})
        steps.publish("fault_at", out["fault"]["fault_at"])
        # region: the DR node comes back from the DR repo (cold: restored; warm: already replaying it)
        with steps.step("restore") as rec:
            if region:
                out["restore"] = region.restore(plan, out["fault"].get("timeline"))
            else:
                rec.update(status="skipped", note="scope node: the standby streams, nothing to restore")
        with steps.step("replay") as rec:
            if region:
                out["replay"] = region.replay(plan, out["fault"].get("timeline"))
            else:
                rec.update(status="skipped", note="scope node: the standby streams")
    with steps.step("promote") as rec:
        _record_kill_switch(plan, rec, "the promotion")
        out["promote"] = _promote_only(plan, cluster, node)
    with steps.step("wait_writable"):
        out["writable"] = _wait_writable(plan, cluster, node)
    with steps.step("switch") as rec:
        _record_kill_switch(plan, rec, "the DNS switch")
        out["dns"] = _upsert(plan, cluster, node, r53)
    if region:  # off the RTO path; a run killed before it is healed all the same (abort sees the promotion)
        region.mark_promoted(plan)
    return out


def _record_kill_switch(plan: Plan, rec: dict[str, Any], action: str) -> None:
    """After the drill's fault: the verdict goes in the journal step; an engaged switch does not stop the recovery."""
    if not plan.drill:
        return
    from drdrill.core import killswitch

    verdict = killswitch.kill_switch_state(f"{action} of {plan.cluster}")
    if verdict["engaged"]:
        verdict["overridden"] = ("the drill's fault is in: this step is the recovery from it, so it goes on; the "
                                 "kill switch stops the failback")
        log.warning("%s; going on: %s", killswitch.describe(verdict), verdict["overridden"])
    rec["kill_switch"] = verdict


def _promote_only(plan: Plan, cluster: Any, node: Any) -> dict[str, Any]:
    target = {"host": node.host, "port": node.port, "node": node.name}
    if plan.dry_run:
        log.info("[DRY RUN] would promote %s with pg_promote(wait => true)", node.name)
        return {**target, "dry_run": True, "promoted_at": time.time()}
    return {**target, **NodeOps(cluster).promote(node, wait_seconds=int(cluster.failover.promote_timeout_seconds))}


def _wait_writable(plan: Plan, cluster: Any, node: Any, poll: float = 0.05, down_grace: float = 10.0
                   ) -> dict[str, Any]:
    """Until the promoted server is out of recovery and takes a connection (it usually is at once: pg_promote
    waited). A server that answers and refuses us fails at once, naming why (waiting would not fix it); one
    that refuses connections for ``down_grace`` seconds has stopped; else up to the promote timeout."""
    from drdrill.core.errors import DrillError
    from drdrill.core.pgerrors import refusal

    t0 = time.time()
    if plan.dry_run:
        log.info("[DRY RUN] would wait for %s to accept writes", node.name)
        return {"ready_at": t0, "dry_run": True}
    timeout = float(cluster.failover.promote_timeout_seconds)
    where = f"{node.name} ({node.host}:{node.port})"
    seen, down_since = "", None
    while True:
        try:
            with pg.connect(cluster, node.host, node.port, "postgres") as c:
                if not pg.query_one(c, "SELECT pg_is_in_recovery()")[0]:
                    return {"ready_at": time.time(), "host": node.host, "port": node.port, "node": node.name,
                            "seconds": round(time.time() - t0, 3)}
                seen, down_since = "still in recovery", None
        except Exception as e:  # noqa: BLE001 - classified below: refused (fail now) or not up yet (wait)
            why = refusal(e)
            if why:
                raise DrillError(f"{where} is up but refuses drdrill: {why}; fix the cluster's connection or the "
                                 f"role before going on") from e
            seen = " ".join(str(e).split())[:300]
            refused = "refused" in seen or "No such file" in seen
            down_since = (down_since or time.time()) if refused else None
            if down_since and time.time() - down_since > down_grace:
                raise DrillError(f"{where} is not running: it refused connections for {down_grace:.0f}s after its "
                                 f"promotion ({seen}); the server probably stopped: read its log") from e
        if time.time() - t0 > timeout:
            raise DrillError(f"{where} not writable {timeout:.0f}s after its promotion; last seen: {seen}; read "
                             f"the server's log")
        time.sleep(poll)


def _upsert(plan: Plan, cluster: Any, node: Any, r53: Any) -> dict[str, Any]:
    f = cluster.failover
    if not f or not f.dns:
        return {"switched": False, "reason": "no DNS record configured"}
    from drdrill.hooks import route53 as dns

    if plan.dry_run:
        log.info("[DRY RUN] would UPSERT %s -> %s", f.dns.record, dns.value_for(f.dns, node))
        return {"switched": False, "dry_run": True}
    change = r53.upsert_record(zone=f.dns.zone, record=f.dns.record, value=dns.value_for(f.dns, node),
                               type=f.dns.type, ttl=f.dns.ttl, hosted_zone_id=f.dns.hosted_zone_id,
                               comment=f"drdrill {plan.dag_id} {plan.run_id}: {node.name} is primary")
    if r53.wait_insync(change, timeout=DNS_INSYNC_IN_TASK_SECONDS, poll_interval=0.2):
        change.update(status="INSYNC", insync_at=time.time())
    else:
        log.info("Route53 change %s still PENDING after %.0fs: dns_switch.insync waits for it", change["change_id"],
                 DNS_INSYNC_IN_TASK_SECONDS)
    return change


def promote(plan: Plan, node_name: str | None = None, *, reason: str = "failover") -> dict[str, Any]:
    """Promote ``node_name`` (default: the plan's standby), then record it (`after_promotion`)."""
    cluster = _cluster(plan)
    node = cluster.node(node_name or plan.standby)
    # conn_id: the sensor that waits for it to be writable logs in with the node's connection
    target = {"host": node.host, "port": node.port, "node": node.name,
              "conn_id": pg.conn_id_for(cluster, node.host, node.port), "user": cluster.postgres.user}
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


def failback_switchover(plan: Plan, locked: dict[str, Any] | None = None) -> dict[str, Any]:
    """Planned switchover back to the original primary: clean stop, replayed, promote.

    Right before it, the kill switch and the lease (`drdrill.drills.failover.locking.guard`): when the
    switch is engaged the cluster stays on the promoted standby (a working primary) and nothing is done."""
    from drdrill.drills.failover import locking

    guarded = locking.guard(plan, locked, "the failback switchover")
    cluster = _cluster(plan)
    current, original = cluster.node(plan.standby), cluster.node(plan.primary)
    if plan.dry_run:
        log.info("[DRY RUN] would stop %s cleanly and promote %s", current.name, original.name)
        return {"dry_run": True, "host": original.host, "port": original.port, "guard": guarded}
    t0 = time.time()
    stopped = NodeOps(cluster).switchover_stop(current, original)
    rec = promote(plan, original.name, reason="failback")
    return {**rec, "stopped": stopped, "stopped_at": t0, "guard": guarded}
