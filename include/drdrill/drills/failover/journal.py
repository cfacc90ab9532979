"""The failover runs' journal: results of every phase, RTO/RPO, events, messages, timeline.

Called by the last task of both failover DAGs (trigger rule ``all_done``). It sends the final
message of the runbook (resolved, or failed with the reason), then writes the journal through
`drdrill.core.journal.finish`, with the Markdown timeline beside it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from drdrill.core import journal
from drdrill.core.checks import CheckResult
from drdrill.drills.failover import timeline

log = logging.getLogger(__name__)

# Tasks whose XCom carries CheckResults (under "results").
RESULT_TASKS = ["assess.probe", "failover.safeguards", "verify.checks", "measure", "stabilize.archiving",
                "failback.safeguards", "failback.verify"]


def _pull(ti: Any, task_id: str) -> Any:
    try:
        return ti.xcom_pull(task_ids=task_id)
    except Exception:  # noqa: BLE001 - a task that never ran has no XCom
        return None


def finish(context: dict[str, Any], task_ids: list[str], parts: dict[str, list[str]] | None = None
           ) -> dict[str, Any]:
    from drdrill.drills import failover

    ti = context["ti"]
    outputs = {tid: _pull(ti, tid) for tid in task_ids}
    plan_d = outputs.get("preflight")
    results: list[CheckResult] = []
    for tid in RESULT_TASKS:
        out = outputs.get(tid) if tid in outputs else _pull(ti, tid)
        # a step that failed: its checks are listed by journal.finish with the step's failure
        found = (out or {}).get("results") or []
        for r in found:
            results.append(CheckResult.from_dict(r))
    fb = outputs.get("failback.new_standby") or {}
    for r in ((fb.get("archiving") or {}).get("results") or []):
        results.append(CheckResult.from_dict({**r, "name": f"failback.{r['name']}"}))
    msgs = [o["comms"] for o in outputs.values() if isinstance(o, dict) and isinstance(o.get("comms"), dict)]
    fb_topo = fb.get("topology") or {}
    if isinstance(fb_topo.get("comms"), dict):
        msgs.append(fb_topo["comms"])
    rb = outputs.get("rollback.revert") or {}
    events: list[tuple[Any, str]] = []
    critical = outputs.get("failover.promote_and_switch") or {}  # fault (drill), promote, writable, DNS UPSERT
    fault = critical.get("fault") or {}
    if fault.get("fault_at"):
        events.append((fault["fault_at"], f"fault injected: {fault.get('action', fault.get('fault'))}"))
    det = outputs.get("detect.primary_down") or {}
    if det.get("failing_since"):
        events.append((det["failing_since"], "primary started failing its health checks"))
    prom = {**(critical.get("promote") or {}), "writable": critical.get("writable")} if critical else {}
    if prom.get("promoted_at"):
        events.append((prom["promoted_at"], f"{prom.get('node')} promoted"))
    sw = outputs.get("dns_switch.insync") or {}  # INSYNC and read back (the time INSYNC was first seen)
    if sw.get("switched"):
        events.append((sw["at"], f"DNS {sw['record']} -> {sw['to']} INSYNC"))
    ver = outputs.get("verify.checks") or {}
    if ver.get("first_write_at"):
        events.append((ver["first_write_at"], "first acknowledged write through the endpoint"))
    watch = outputs.get("rto_watch") or {}
    if watch.get("status") == "missed":
        alert = watch.get("alert") or {}
        if alert.get("message"):
            msgs.append(alert)
        sent = [c["kind"] for c in alert.get("sent", []) if c.get("sent")]
        events.append((watch["fired_at"], f"RTO alert: service not verified {watch.get('minutes'):g} min after "
                                          f"the outage began; escalation sent ({', '.join(sent) or 'nowhere'})"))
    if rb.get("rolled_back"):
        events.append((time.time(), f"rolled back: {'; '.join(rb.get('actions', []))}"))
    meas = outputs.get("measure") or {}
    extra = {"plan": plan_d, "assess": (outputs.get("assess.probe") or {}).get("figures"),
             # who approved (HITL response) or why no approval was needed
             "approval": {**(outputs.get("approval.approve") or {"gate": outputs.get("approval.gate")}),
                          "reason": (plan_d or {}).get("approval_reason")},
             "failover": {"fault": fault, "promote": prom, "dns": sw, "dns_change": critical.get("dns")},
             "verify": ver, "rollback": rb,
             # the lease on the cluster (who held it before, how long we waited) and the kill switch's verdict
             "targets": {"lock": outputs.get("failover.lock_targets"), "release": outputs.get("release_targets")},
             "rto_alert": watch or None,
             "stabilize": {k.split(".", 1)[1]: outputs.get(k) for k in task_ids if k.startswith("stabilize.")},
             "failback": {k.split(".", 1)[1]: outputs.get(k) for k in task_ids if k.startswith("failback.")},
             "measurements": meas.get("measurements", {}), "events": events}
    steps = journal.gather_steps(ti, task_ids, parts)
    extra["phases"] = timeline.phase_durations(steps)
    cluster = (plan_d or {}).get("cluster") or str(context["params"].get("cluster"))
    failed = [r.line() for r in results if r.failed] + [f"{s['task_id']}: {s.get('error', '')}" for s in steps
                                                        if s.get("status") == "failed"]
    if plan_d:  # the runbook's last message, with the outcome (also in the journal and timeline)
        p = failover.Plan.from_dict(plan_d)
        m = extra["measurements"]
        msgs.append(failover.announce(p, "failed", reason=failed[0].splitlines()[0][:300]) if failed else
                    failover.announce(p, "resolved", rto=f"{m.get('rto_seconds', '-')} s",
                                      rpo=f"{m.get('lost_writes', '-')} write(s) lost"))
    return journal.finish(context, task_ids=task_ids, parts=parts, cluster=cluster, results=results,
                          extra={**extra, "comms": msgs},
                          attachments_for=lambda d: {"timeline.md": timeline.render(d)})
