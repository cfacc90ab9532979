"""The failover runs' target lock and kill switch (`drdrill.core.targetlock`, `drdrill.core.killswitch`).

The drill takes the lease on ``cluster:<name>`` right after its approval, before its first action
(the canary writes to the primary, then the fault), and releases it in a teardown at the very end,
whatever failed. The kill switch is checked when the lease is taken and again RIGHT BEFORE the fault
and the failback; the lease is checked to be still this run's at the same moments.

Once the drill's own fault is in, the promotion and the DNS switch are the recovery from it: the
kill switch's verdict is journalled right before each of them, but an engaged switch does not stop
them (stopping there would leave the cluster without a primary, the harm a kill switch exists to
prevent). The rollback and the rebuild of the old primary as a standby are recovery too.

The incident runbook (``dr_postgres_primary_failover``) is a human's response to a real outage: the
kill switch, which stops drills, does not apply to it, and it never waits behind a drill's lease. It
takes the lease by force (``force=True``: the drill that held it finds it gone at its next check and
stops), so that no chaos or restore drill starts on the cluster mid-incident, and the journal records
whose lease it took.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from drdrill.core import killswitch, targetlock
from drdrill.drills.failover.plan import Plan

log = logging.getLogger("drdrill.drills.failover")

# The lease outlives any real run (from the approval to the failback); a run that ended frees it at
# once (its DAG run is no longer running), so the TTL only matters when Airflow cannot be asked.
LOCK_TTL_SECONDS = float(os.environ.get("DRDRILL_FAILOVER_LOCK_TTL_MINUTES", "180")) * 60
# How long the drill waits for a cluster another drill is acting on. The acquiring task runs in the
# 1-slot pool dr_destructive, so a long wait would hold every other drill's destructive step: 0 by
# default (the drill fails at once, naming the holder; nothing was touched).
LOCK_WAIT_SECONDS = float(os.environ.get("DRDRILL_FAILOVER_LOCK_WAIT_SECONDS", "0"))


def target_keys(plan: Plan) -> list[str]:
    return [f"cluster:{plan.cluster}"]


def lock(plan: Plan, task_id: str) -> dict[str, Any]:
    """Take the lease on the plan's cluster (drill: after the kill switch; incident: by force).

    Returns ``{"keys", "lease", "kill_switch", "taken_over", "waited_seconds"}`` for the journal; a dry
    run takes nothing and says who holds the keys now."""
    keys = target_keys(plan)
    verdict = killswitch.check_kill_switch(f"the failover drill of {plan.cluster}") if plan.drill else \
        {"applies": False, "why": "a real incident: the kill switch stops drills, never an incident's recovery"}
    if plan.dry_run:
        now = targetlock.holders(keys)
        log.info("[DRY RUN] would take the lease on %s (now: %s)", keys, now)
        return {"keys": keys, "lease": None, "dry_run": True, "holders_now": now, "kill_switch": verdict}
    holder = targetlock.Holder(plan.dag_id, plan.run_id, task_id,
                               "failover drill" if plan.drill else "incident failover")
    try:
        lease = targetlock.acquire(keys, holder=holder, ttl_seconds=LOCK_TTL_SECONDS,
                                   wait_seconds=LOCK_WAIT_SECONDS if plan.drill else 0, force=not plan.drill)
    except targetlock.TargetBusy as e:
        if plan.drill:
            raise
        # An incident never stops for a lock: another writer kept overwriting the key. Go on, and say so.
        log.error("the incident could not hold the lease on %s (%s); the failover goes on without it", keys, e)
        return {"keys": keys, "lease": None, "kill_switch": verdict, "error": str(e)}
    return {"keys": keys, "lease": lease.to_dict(), "kill_switch": verdict, "taken_over": lease.taken_over,
            "waited_seconds": lease.waited_seconds}


def guard(plan: Plan, locked: dict[str, Any] | None, action: str) -> dict[str, Any]:
    """RIGHT BEFORE a drill's action: the kill switch (raises `KillSwitchEngaged`) and the lease still ours
    (raises `TargetBusy`). Returns both verdicts for the journal step of the action."""
    verdict = killswitch.check_kill_switch(f"{action} of {plan.cluster}")
    lease = (locked or {}).get("lease")
    held = targetlock.ensure_held(lease, action) if lease else "no lease (dry run)"
    return {"kill_switch": verdict, "lease": held}


def unlock(locked: dict[str, Any] | None) -> dict[str, Any]:
    """Release this run's lease (only its own keys); nothing to do when none was taken."""
    lease = (locked or {}).get("lease")
    if not lease:
        return {"released": [], "reason": "no lease was taken (a dry run, or an incident that could not hold it)"}
    return {"released": targetlock.release(lease)}
