"""The PostgreSQL primary failure runbook, one function per runbook step.

Both failover DAGs call these through the task graph built by `drdrill.runbook`:
``dr_quarterly_failover_drill`` injects the fault itself and fails back at the end;
``dr_postgres_primary_failover`` is for a real incident (no fault, human gate, trigger
criteria first). Phases follow the seed runbook: Assess, Failover (promote + DNS switch),
Verify, Stabilize; Rollback when Verify fails; Failback after a drill.

Every action refuses to run on a stale picture: the safeguards are checked in Assess and
again right before the primary is touched. Everything a step did is returned (XCom) and
ends in the journal and the Markdown timeline.

One module per phase; callers use the names re-exported here (``failover.promote(...)``):

- ``plan``: `Plan`, `DRILL`, `INCIDENT`, `FAULTS`, `preflight` (validate, choose the nodes).
- ``probes``: what several phases share: `probe`, `service_health`, `dns_state`,
  `resolve_endpoint`, `smoke_test`, `announce` (the phase's message).
- ``assessment``: Phase 1, Assess: `assess`, `safeguards`, `recheck` (again, right before acting).
- ``setup_teardown``: `start_canary`, `stop_canary`, `cleanup` (the run's scratch directory).
- ``failover_steps``: Phase 2, Failover: `promote_and_switch` (the critical path in one task:
  `inject_fault` in a drill, promote, wait for writes, DNS UPSERT, one journal step each),
  `after_promotion`, `switch_dns`; `promote` and the drill's `failback_switchover`.
- ``verification``: Phase 3, Verify: `verify`.
- ``rollback_path``: `rollback`, when Verify fails.
- ``stabilize``: Phase 4, Stabilize: `archiving`, `new_standby`, `topology_state`.
- ``measurement``: `measure` (RTO and RPO against the targets).
- ``region``: the region scope (the primary region lost, the DR node from the DR repo alone): `region.DrSite`,
  its Assess (`figures`, `safeguards`), `inject_fault`, `restore`, `replay`, `abort`, `finish_failback`,
  `heal`; the phase functions above dispatch to it on ``plan.scope``. Imported as a module.
- ``locking``: the lease on ``cluster:<name>`` and the kill switch (`locking.lock`, `locking.guard` right
  before the fault and the failback, `locking.unlock`); imported as a module.
- ``node_ops`` (servers), ``comms`` (messages), ``timeline`` and ``journal`` (the evidence).

Imports point one way: plan <- probes <- the phase modules (rollback_path also uses
failover_steps' `switch_dns`). Module names differ from the step names so that
``failover.verify`` is always the step, never a module.
"""

from drdrill.drills.failover.assessment import assess, recheck, safeguards
from drdrill.drills.failover.failover_steps import (
    after_promotion,
    failback_switchover,
    inject_fault,
    promote,
    promote_and_switch,
    switch_dns,
)
from drdrill.drills.failover.measurement import measure
from drdrill.drills.failover.plan import DRILL, FAULTS, INCIDENT, Plan, preflight
from drdrill.drills.failover.probes import (
    STANDBY_SQL,
    announce,
    dns_state,
    probe,
    resolve_endpoint,
    service_health,
    smoke_test,
)
from drdrill.drills.failover.rollback_path import rollback
from drdrill.drills.failover.setup_teardown import cleanup, start_canary, stop_canary
from drdrill.drills.failover.stabilize import archiving, new_standby, topology_state
from drdrill.drills.failover.verification import verify

__all__ = ["DRILL", "FAULTS", "INCIDENT", "STANDBY_SQL", "Plan", "after_promotion", "announce", "archiving", "assess",
           "cleanup", "dns_state", "failback_switchover", "inject_fault", "measure", "new_standby", "preflight",
           "probe", "promote", "promote_and_switch", "recheck", "resolve_endpoint", "rollback", "safeguards",
           "service_health", "smoke_test", "start_canary", "stop_canary", "switch_dns", "topology_state", "verify"]
