"""Around the action: the canary writer, started before the fault and stopped after Verify, and
the run's scratch directory it lives in, removed at the end whatever happened.

The writer runs on the worker that started it; its acknowledged writes and its stop control are
in the estate's state store (`drdrill.core.canary`), so the tasks that read or stop it can run on
any worker. Its local scratch directory (log, PID file, its own copy of the writes) is removed
by `cleanup` on that worker, or by the next run's preflight there.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from drdrill.core import canary
from drdrill.core.errors import DrillError
from drdrill.core.estate import load_estate
from drdrill.core.polling import wait_until
from drdrill.core.runner import LocalRunner
from drdrill.drills.failover.plan import Plan, _cluster
from drdrill.hooks import postgres as pg

# One logger for the whole runbook: the name its log lines had before it was split.
log = logging.getLogger("drdrill.drills.failover")


def start_canary(plan: Plan) -> dict[str, Any]:
    from drdrill.core import scratch

    estate = load_estate()
    cluster = _cluster(plan, estate)
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
                       timeout=svc.timeout_seconds, max_seconds=lease, store=estate.state_store,
                       meta={"dag_id": plan.dag_id})
    shared = canary.shared(estate.state_store, plan.run_id)
    if plan.drill:  # steady state from the application's side: acknowledged writes before the fault,
        # read back from the state store as every later task will read them
        def first_writes() -> bool:
            if not canary.is_running(workdir):
                log_tail = (workdir / canary.LOGFILE).read_text()[-1500:] if (workdir / canary.LOGFILE).exists() else ""
                raise DrillError(f"the canary writer exited before its first acknowledged writes reached the state "
                                 f"store {shared.dir}:\n{log_tail}")
            return sum(1 for r in shared.records() if r.get("ok")) >= 3

        wait_until(first_writes, timeout=30, interval=0.1,
                   what=f"the canary writer's first acknowledged writes through the service, in {shared.dir}")
    return {"started": True, "pid": pid, "urls": urls, "workdir": str(workdir), "state": str(shared.dir)}


def stop_canary(plan: Plan) -> dict[str, Any]:
    """Stop the writer wherever it runs (its stop marker in the state store), and wait for its answer.

    A writer on this very worker that did not answer is signalled; one elsewhere that did not answer
    fails the step: it stops by itself at the end of its bounded lifetime, or as soon as it cannot
    publish, but nobody here can prove it stopped.
    """
    estate = load_estate()
    cluster = _cluster(plan, estate)
    svc = cluster.failover.service if cluster.failover else None
    # Two write attempts (a replica down) and two flushes, with a margin: the writer's longest reaction.
    wait = 2 * (svc.timeout_seconds if svc else 2) + 4 * canary.PUBLISH_SECONDS + 5
    try:
        out = canary.stop_shared(estate.state_store, plan.run_id, by=f"{plan.dag_id} {plan.run_id} stop_canary",
                                 wait=wait)
    except DrillError as e:  # the store does not answer: neither can the writer publish, so it stops by itself
        out = {"stopped": False, "confirmed": False, "reason": f"{e} (a writer that cannot publish stops "
                                                               f"within {canary.PUBLISH_GRACE_SECONDS:.0f}s)"}
    if canary.stop(Path(plan.workdir)) and not out.get("confirmed"):  # here, and silent: signalled
        out.update(stopped=True, signalled_here=True)
    if out.get("confirmed") is False and not out.get("stopped"):
        raise DrillError(f"the canary writer of this run (pid {out.get('pid')} on {out.get('host')}) did not confirm "
                         f"that it stopped ({out.get('reason')}). It stops by itself when its lifetime ends and as "
                         f"soon as it cannot publish; check that host.")
    return out


def cleanup(plan: Plan) -> dict[str, Any]:
    """Remove the run's scratch directory if it is on this worker (the canary writer is stopped first),
    and the run's canary state once its writer has stopped."""
    from drdrill.core import scratch

    estate = load_estate()
    cluster = _cluster(plan, estate)
    region_out = _region_cleanup(plan, estate) if plan.scope == "region" and not plan.dry_run else None
    d = Path(plan.workdir)
    here = d.exists()  # on the worker that started the writer; elsewhere the next run's preflight there does it
    if here:
        scratch.remove(d, LocalRunner(), cluster.postgres.bin_dir)  # the canary's directory: this worker's
    shared = canary.shared(estate.state_store, plan.run_id)
    w = shared.writer()
    if w and w.get("pid") and shared.stopped() is None:
        shared.request_stop(f"{plan.dag_id} {plan.run_id} cleanup")
        log.warning("the canary writer of this run (pid %s on %s) has not confirmed it stopped: its state %s is "
                    "kept with a stop request; the next run's preflight removes it once it has stopped",
                    w.get("pid"), w.get("host"), shared.dir)
        return {"removed": str(d) if here else None, "canary_state_kept": str(shared.dir), "region": region_out}
    shared.remove()
    return {"removed": str(d) if here else None, "canary_state_removed": str(shared.dir), "region": region_out}


def _region_cleanup(plan: Plan, estate: Any) -> dict[str, Any] | None:
    """A region drill that stopped the primary region and failed before its DR node was promoted: the primary
    region comes back now. Promoted and not failed back: the cluster stays on the DR node (one writable primary;
    the lost region's nodes are down or its standbys), and the next run fails back first."""
    from drdrill.drills.failover import region

    rec = region.read_record(estate, plan.cluster)
    if not rec or rec.get("run_id") != plan.run_id:
        return None
    if rec.get("phase") == "fault":
        return {"aborted": region.abort(plan, "the run failed before the DR node was promoted")}
    log.warning("%s runs on the DR node %s (promoted by this run, not failed back): the next run of %s fails back "
                "to %s first", plan.cluster, plan.standby, plan.dag_id, plan.primary)
    return {"left_on": plan.standby, "phase": rec.get("phase")}
