"""The run's plan: what a failover run will do, decided once by `preflight` and passed to every step.

Nothing is touched here: preflight validates the params and the estate, chooses the primary and
the standby, and refuses a run that would overlap another failover.
"""

from __future__ import annotations

import logging
import time
from dataclasses import MISSING, asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drdrill.core.errors import PreflightError
from drdrill.core.estate import Cluster, Estate, load_estate
from drdrill.core.runner import LocalRunner
from drdrill.core.schedules import approval_decision
from drdrill.drills.failover import comms
from drdrill.hooks import postgres as pg

# One logger for the whole runbook: the name its log lines had before it was split.
log = logging.getLogger("drdrill.drills.failover")

DRILL = "dr_quarterly_failover_drill"
INCIDENT = "dr_postgres_primary_failover"
FAULTS = ("kill", "stop")
SCOPES = ("node", "region")


@dataclass(frozen=True)
class Plan:
    """What this run will do, decided once by preflight and passed to every step."""

    dag_id: str
    run_id: str
    cluster: str
    primary: str
    standby: str
    fault: str | None  # drill only
    failback: bool
    dry_run: bool
    workdir: str
    started_at: float
    approval_required: bool
    skip_health_wait: bool
    health_check_failed_seconds: float
    health_check_interval_seconds: float
    primary_addr: dict[str, Any]  # for the deferrable health-check sensor
    conn_id: str | None
    approval_reason: str = ""  # why approval_required is what it is (drdrill.core.schedules)
    scope: str = "node"  # node: the standby in the same region; region: the DR node from the DR repo

    @property
    def drill(self) -> bool:
        return self.dag_id == DRILL

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d or f.default is MISSING})


def _cluster(plan: Plan, estate: Estate | None = None) -> Cluster:
    return (estate or load_estate()).cluster(plan.cluster)


def _lag_limits(cluster: Cluster) -> tuple[int, float]:
    f = cluster.failover
    assert f is not None
    t = cluster.targets
    return (f.max_standby_lag_bytes if f.max_standby_lag_bytes is not None else t.max_replication_lag_bytes,
            f.max_standby_lag_seconds or t.max_replication_lag_seconds)


def preflight(params: dict[str, Any], run_id: str, dag_id: str, *, is_active=None,
              concurrent: dict[str, int] | None = None, estate: Estate | None = None, scheduled: bool = False,
              now: float | None = None) -> dict[str, Any]:
    """Validate params and estate; choose primary and standby; decide whether a human must approve.

    ``scheduled``: the run was started by the DAG's schedule (not a manual trigger or a backfill);
    only such a run, at ``now`` (default: the current time) inside the cluster's unattended window,
    goes ahead without approval (`drdrill.core.schedules.approval_decision`). Nothing is touched here.
    """
    from drdrill.core import scratch

    busy = {d: n for d, n in (concurrent or {}).items() if n}
    if busy:
        running = ", ".join(f"{d}: {n} active run(s)" for d, n in busy.items())
        raise PreflightError(f"another failover is running ({running}); two failovers must never overlap. "
                             f"Let it finish, or mark it failed in the Airflow UI if it is stuck, then trigger "
                             f"this run again.")
    estate = estate or load_estate()
    cluster = estate.cluster(str(params.get("cluster") or ""))
    if not cluster.allows(dag_id):
        raise PreflightError(f"cluster {cluster.name!r} does not allow {dag_id}; add it to the cluster's "
                             f"allowed_drills in {estate.source} if this is intended")
    if cluster.failover is None:
        raise PreflightError(f"cluster {cluster.name!r} has no 'failover:' section in {estate.source}; the runbook "
                             f"needs at least the DNS record and thresholds (see include/estate/README.md)")
    healed = None
    if dag_id == DRILL and cluster.dr is not None:
        # What a killed region drill left (its record in the state store): the primary region started again
        # (before its recovery was promoted) or the failback completed (after), before anything else.
        from drdrill.drills.failover import region

        healed = region.heal(estate, cluster, run_id, (lambda rid: is_active({"run_id": rid, "dag_id": dag_id}))
                             if is_active else None, dry_run=bool(params.get("dry_run", False)))
        if healed:
            estate = load_estate()
            cluster = estate.cluster(cluster.name)
    fault = params.get("fault") if dag_id == DRILL else None
    if dag_id == DRILL and fault not in FAULTS:
        raise PreflightError(f"fault must be one of {list(FAULTS)} (stop: pg_ctl stop -m immediate; kill: kill -9 "
                             f"of the postmaster), got {fault!r}")
    scope = params.get("scope") or ("region" if dag_id == DRILL and cluster.dr else "node")
    if scope not in SCOPES:
        raise PreflightError(f"scope must be one of {list(SCOPES)} (node: the standby in the same region; region: "
                             f"the whole primary region lost, recovery on the DR node), got {scope!r}")
    if scope == "region" and dag_id != DRILL:
        raise PreflightError(f"scope 'region' is the drill's ({DRILL}); an incident runbook fails over to a standby")
    if scope == "region" and cluster.dr is None:
        raise PreflightError(f"scope 'region' needs the cluster's DR region: cluster {cluster.name!r} has no dr: "
                             f"section in {estate.source} (include/estate/README.md, 'dr'); or run scope 'node'")
    if not cluster.standbys and scope == "node":
        raise PreflightError(f"cluster {cluster.name!r} has no standby: there is nothing to fail over to")
    wanted = params.get("standby") or None
    if scope == "region":
        if wanted and wanted != cluster.dr.node.name:
            raise PreflightError(f"scope 'region' recovers on the DR node {cluster.dr.node.name}; the 'standby' param "
                                 f"({wanted}) is for scope 'node'")
        standby = cluster.dr_node
    elif wanted:
        node = cluster.node(str(wanted))
        if node.role != "standby":
            raise PreflightError(f"{node.name} is the current primary of {cluster.name}, not a standby; "
                                 f"choose one of {[n.name for n in cluster.standbys]}")
        standby = node
    elif len(cluster.standbys) == 1:
        standby = cluster.standbys[0]
    else:
        raise PreflightError(f"cluster {cluster.name!r} has several standbys "
                             f"{[n.name for n in cluster.standbys]}: choose one with the 'standby' param")
    if scope == "region" and cluster.primary.name == standby.name:
        raise PreflightError(f"the DR node {standby.name} is the primary of {cluster.name} (a region failover was "
                             f"not failed back): fail back to the primary region first")
    for n in (cluster.primary, standby):
        if not n.data_dir:
            raise PreflightError(f"node {n.name} has no data_dir in the estate: it is needed to stop, start and "
                                 f"rebuild servers")
    if cluster.failover.dns:
        from drdrill.hooks import route53 as dns

        for n in (cluster.primary, standby):
            dns.value_for(cluster.failover.dns, n)  # a CNAME needs a dns_name per node
    comms.check_channels([ch.model_dump() for ch in cluster.failover.notify])
    # A failover run's canary writer lives in a tagged scratch directory on this worker (cleaned up
    # like a restore test's); leftovers of dead failover runs are removed first. A restore test's
    # leftovers live on its backup host, and its own setup removes them.
    scratch.remove_all_scratch(estate.scratch.root, LocalRunner(), cluster.postgres.bin_dir, keep_run_id=run_id,
                               is_active=is_active, dag_ids=(DRILL, INCIDENT))
    # The scratch above is this worker's only. A dead run's writer may run on another worker: its state in
    # the state store tells it to stop (it checks every flush), and is removed once it has.
    from drdrill.core import canary

    canary.stop_leftovers(estate.state_store, keep_run_id=run_id, is_active=is_active)
    workdir = Path(estate.scratch.root) / scratch.run_tag(run_id)
    needed, why = approval_decision(unattended=cluster.unattended, window=cluster.unattended_window,
                                    timezone=estate.schedules.timezone, scheduled=scheduled,
                                    at=datetime.fromtimestamp(time.time() if now is None else now, UTC))
    plan = Plan(dag_id=dag_id, run_id=run_id, cluster=cluster.name, primary=cluster.primary.name,
                standby=standby.name, fault=fault, failback=bool(params.get("failback", dag_id == DRILL)),
                dry_run=bool(params.get("dry_run", False)), workdir=str(workdir), started_at=time.time(),
                approval_required=needed, approval_reason=why, scope=scope,
                skip_health_wait=bool(params.get("skip_health_wait", False)),
                health_check_failed_seconds=cluster.failover.health_check_failed_minutes * 60,
                health_check_interval_seconds=cluster.failover.health_check_interval_seconds,
                primary_addr={"host": cluster.primary.host, "port": cluster.primary.port},
                conn_id=pg.conn_id_for(cluster, cluster.primary.host, cluster.primary.port))
    if healed:
        log.warning("healed what run %s left: %s", healed.get("run_id"), healed)
    log.info("preflight ok: %s (scope %s), primary %s -> %s%s%s; %s", cluster.name, scope, plan.primary, plan.standby,
             f", fault {fault}" if fault else "", " [DRY RUN]" if plan.dry_run else "", why)
    return {**plan.to_dict(), **({"healed": healed} if healed else {})}
