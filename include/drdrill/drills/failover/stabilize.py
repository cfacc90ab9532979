"""Phase 4, Stabilize: archiving works on the new primary, the old primary is its new standby, the
topology is recorded.
"""

from __future__ import annotations

import logging
from typing import Any

from drdrill.core.checks import CheckResult, Status
from drdrill.core.errors import DrillFailed
from drdrill.core.estate import load_estate
from drdrill.drills.failover.node_ops import NodeOps
from drdrill.drills.failover.plan import Plan, _cluster
from drdrill.drills.failover.probes import announce
from drdrill.hooks import postgres as pg

# One logger for the whole runbook: the name its log lines had before it was split.
log = logging.getLogger("drdrill.drills.failover")


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
