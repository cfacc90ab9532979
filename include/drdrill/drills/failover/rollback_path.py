"""The rollback path, when Verify fails: back to the original primary if it is recoverable, else escalate."""

from __future__ import annotations

import logging
from typing import Any

from drdrill.core.errors import DrillError
from drdrill.core.estate import load_estate
from drdrill.drills.failover.failover_steps import switch_dns
from drdrill.drills.failover.node_ops import NodeOps
from drdrill.drills.failover.plan import Plan, _cluster
from drdrill.drills.failover.probes import announce
from drdrill.hooks import postgres as pg

# One logger for the whole runbook: the name its log lines had before it was split.
log = logging.getLogger("drdrill.drills.failover")


def rollback(plan: Plan, steps: dict[str, str], reason: str) -> dict[str, Any]:
    """Put the original primary back when Verify failed and it is recoverable; else escalate."""
    from drdrill.core import topology

    promoted = steps.get("promote") == "success"
    if plan.scope == "region" and steps.get("inject_fault") == "success":
        # the primary region was stopped by the drill: it comes back, the DR node is fenced
        from drdrill.drills.failover import region

        return {"rolled_back": True, **region.abort(plan, reason)} if not plan.dry_run else {"dry_run": True}
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
