"""Phase 3, Verify: the new primary accepts writes through the endpoint, the service works, the
canary's writes resumed (read from the state store: the writer may run on another worker). A
failed check fails the step, which starts the rollback path.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from drdrill.core import canary
from drdrill.core.checks import CheckResult, Status
from drdrill.core.errors import DrillError, DrillFailed
from drdrill.core.estate import load_estate
from drdrill.core.polling import wait_until
from drdrill.drills.failover.plan import Plan, _cluster
from drdrill.drills.failover.probes import announce, resolve_endpoint, smoke_test
from drdrill.hooks import postgres as pg

# One logger for the whole runbook: the name its log lines had before it was split.
log = logging.getLogger("drdrill.drills.failover")


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
        # Read from the state store: the writer may run on another worker than this task.
        acks = canary.shared(load_estate().state_store, plan.run_id)

        def first_after_fault() -> float | None:
            first = next((r["done_at"] for r in acks.records() if r.get("ok") and r["sent_at"] >= fault_at), None)
            if first is None and (gone := acks.stopped()):
                raise DrillError(f"the canary writer stopped before a write succeeded after the fault: "
                                 f"{gone.get('reason')}")
            return first

        try:
            first_write = wait_until(first_after_fault, timeout=60, interval=0.2,
                                     what="the first acknowledged canary write after the fault")
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
