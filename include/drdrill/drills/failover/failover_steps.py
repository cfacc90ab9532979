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
