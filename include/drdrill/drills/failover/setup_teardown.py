"""Around the action: the canary writer, started before the fault and stopped after Verify, and
the run's scratch directory it lives in, removed at the end whatever happened.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from drdrill.core import canary
from drdrill.core.polling import wait_until
from drdrill.drills.failover.node_ops import NodeOps
from drdrill.drills.failover.plan import Plan, _cluster
from drdrill.hooks import postgres as pg

# One logger for the whole runbook: the name its log lines had before it was split.
log = logging.getLogger("drdrill.drills.failover")


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
    lease = 2 * cluster.targets.rto_minutes * 60  # the canary writer's own bounded lifetime
    scratch.write_tag(workdir, {"run_id": plan.run_id, "dag_id": plan.dag_id, "dir": str(workdir),
                                "kind": "failover"}, lease=lease)
    urls = [u.rstrip("/") + svc.write_path for u in svc.urls]
    # Bounded: a writer whose teardown never comes (a dead worker) stops writing into production by
    # itself, at twice the RTO target (the whole failover must be over long before that).
    pid = canary.start(workdir, plan.run_id, urls, interval_ms=cluster.failover.canary_interval_ms,
                       timeout=svc.timeout_seconds, max_seconds=lease)
    if plan.drill:  # steady state from the application's side: acknowledged writes before the fault
        wait_until(lambda: sum(1 for r in canary.records(workdir) if r.get("ok")) >= 3, timeout=30,
                      interval=0.1, what="the canary writer's first acknowledged writes through the service")
    return {"started": True, "pid": pid, "urls": urls, "workdir": str(workdir)}


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
