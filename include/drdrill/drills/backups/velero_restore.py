"""The monthly Velero restore test: restore the newest backup of a schedule into mapped namespaces, prove it,
delete what it made.

The steps (``dags/dr_monthly_velero_restore_test.py`` is the graph):

1. `preflight`: the entry has a ``restore_test``; what a killed run left (namespaces and Restores labelled
   ``drdrill.io/velero-restore-test=<entry>``) is deleted first (a dry run only names it); the backup is the
   newest ``Completed`` one of the schedule (or the ``backup`` param, which must be Completed); every
   mapped target namespace is suffixed per run (``production-restored-<6 hex of the run id>``) and is
   refused when it exists or is a source namespace, a namespace of the schedule or the backup, or a
   system namespace. Nothing is created before this step passed.
2. `prepare` (a setup): the target namespaces are created, labelled as drdrill's (so a run killed from
   here on leaves something the next preflight finds), right after the kill switch was read.
3. the Restore (`drdrill.operators.velero.VeleroRestoreOperator`): ``namespaceMapping``, includedNamespaces
   = the mapping's sources, labelled; ``Completed`` within ``timeout_seconds`` or the step fails.
4. `verify`: the restored items (the Restore's ``itemsRestored`` against its ``totalItems`` and the backup's
   ``itemsBackedUp``), and every Deployment and StatefulSet of the target namespaces Ready (each pod
   itself Ready) within ``ready_timeout_seconds``.
5. teardown (`drdrill.operators.velero.VeleroRestoreTeardownOperator`, always): the Restore and the target
   namespaces are deleted.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

from drdrill.core.backups import Velero
from drdrill.core.checks import CheckResult, Status
from drdrill.core.errors import DrillFailed, PreflightError
from drdrill.core.estate import Estate, load_estate
from drdrill.drills.backups import target
from drdrill.hooks.velero import BACKUPS, RESTORE_TEST_LABEL, RESTORES, RUN_LABEL, SCHEDULES, VeleroHook

DRILL = "dr_monthly_velero_restore_test"
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def short_run_id(run_id: str) -> str:
    """Six hex characters of the run id: the per-run suffix of names (run ids hold ``:`` and ``+``)."""
    return hashlib.sha256(run_id.encode()).hexdigest()[:6]


def entry_named(estate: Estate, name: str) -> Velero:
    """The ``backups.velero`` entry ``name``; empty: the first entry with a ``restore_test``."""
    names = [e.name for e in estate.backups.velero]
    if not name:
        with_test = [e for e in estate.backups.velero if e.restore_test]
        if not with_test:
            raise PreflightError(f"no backups.velero entry has a restore_test ({', '.join(names) or 'no entries'}): "
                                 f"add one, or pass the 'velero' param")
        return with_test[0]
    for e in estate.backups.velero:
        if e.name == name:
            return e
    raise PreflightError(f"velero entry {name!r} is not in the estate's backups.velero "
                         f"({', '.join(names) or 'none'}): pass one of them as the 'velero' param")


def hook_for(entry: Velero) -> VeleroHook:
    return VeleroHook(kubernetes_conn_id=entry.conn_id, velero_namespace=entry.namespace)


def _protected(entry: Velero, hook: VeleroHook, backup: dict[str, Any] | None) -> set[str]:
    """Namespaces a restore may never write into: the sources, every namespace the schedule and the backup
    cover (estate and live), Velero's own and the system namespaces."""
    rt = entry.restore_test
    assert rt is not None
    out = {*rt.namespace_mappings, entry.namespace, *SYSTEM_NAMESPACES}
    for s in entry.schedules:
        if s.name == rt.schedule:
            out |= set(s.included_namespaces or [])
    live = hook.get(SCHEDULES, rt.schedule) or {}
    out |= set(((live.get("spec") or {}).get("template") or {}).get("includedNamespaces") or [])
    if backup:
        out |= set((backup.get("spec") or {}).get("includedNamespaces") or [])
    return out - {"*"}


def leftovers(entry: Velero, hook: VeleroHook, protected: set[str]) -> dict[str, list[str]]:
    """What earlier runs left: Restores and namespaces labelled as this entry's restore test (a labelled
    namespace that is protected is never counted: a label alone never makes production deletable)."""
    sel = f"{RESTORE_TEST_LABEL}={entry.name}"
    return {"restores": sorted(r["metadata"]["name"] for r in hook.list(RESTORES, sel)),
            "namespaces": [n for n in hook.namespaces(sel) if n not in protected]}


def clean(hook: VeleroHook, restores: list[str], namespaces: list[str]) -> dict[str, list[str]]:
    """Delete Restores and namespaces (already gone ones are fine); what was deleted."""
    return {"restores": [r for r in restores if hook.delete(RESTORES, r)],
            "namespaces": [n for n in namespaces if hook.delete_namespace(n)]}


def preflight(params: dict[str, Any], run_id: str, estate: Estate | None = None) -> dict[str, Any]:
    """Validate, clean what a killed run left, choose the backup and the per-run target namespaces.

    Raises PreflightError before anything is created; returns the plan (primitives, for XCom).
    """
    estate = estate or load_estate()
    entry = entry_named(estate, str(params.get("velero") or ""))
    rt = entry.restore_test
    if rt is None:
        raise PreflightError(f"backups.velero[{entry.name}] has no restore_test: add one (schedule, "
                             f"namespace_mappings) to run this drill")
    dry_run = bool(params.get("dry_run"))
    hook = hook_for(entry)
    wanted = str(params.get("backup") or "").strip()
    if wanted:
        backup = hook.get(BACKUPS, wanted)
        if backup is None:
            raise PreflightError(f"Backup {wanted!r} does not exist in namespace {entry.namespace!r}: pass the name "
                                 f"of a Completed backup (velero backup get) or leave 'backup' empty for the newest")
        phase = (backup.get("status") or {}).get("phase")
        if phase != "Completed":
            raise PreflightError(f"Backup {wanted!r} is {phase}, not Completed: a restore test restores a "
                                 f"Completed backup only")
    else:
        backup = hook.newest_completed_backup(rt.schedule)
        if backup is None:
            raise PreflightError(f"Schedule {rt.schedule!r} has no Completed Backup in namespace "
                                 f"{entry.namespace!r}: nothing to restore (see the daily velero_backup check)")
    protected = _protected(entry, hook, backup)
    left = leftovers(entry, hook, protected)
    short = short_run_id(run_id)
    mappings: dict[str, str] = {}
    for source, base in rt.namespace_mappings.items():
        tgt = f"{base}-{short}"
        if base in protected or tgt in protected:
            raise PreflightError(f"restore_test.namespace_mappings maps {source!r} onto {base!r}, a namespace a "
                                 f"restore may never write into (a source, a namespace of schedule {rt.schedule!r} "
                                 f"or of its backup, or a system namespace): map it onto a new name such as "
                                 f"'{source}-restored'")
        if len(tgt) > 63 or not _DNS_LABEL.match(tgt):
            raise PreflightError(f"the restored namespace {tgt!r} (mapping {source}: {base} plus the run's suffix) "
                                 f"is not a valid namespace name (lowercase letters, digits and '-', at most 63): "
                                 f"shorten restore_test.namespace_mappings[{source}]")
        if tgt not in left["namespaces"] and hook.namespace_exists(tgt):
            raise PreflightError(f"the restored namespace {tgt!r} already exists and is not a restore test's: "
                                 f"the restore would write into it; delete it or change "
                                 f"restore_test.namespace_mappings[{source}]")
        mappings[source] = tgt
    sources = (backup.get("spec") or {}).get("includedNamespaces") or ["*"]
    missing = [s for s in mappings if "*" not in sources and s not in sources]
    if missing:
        raise PreflightError(f"Backup {backup['metadata']['name']} does not hold namespace(s) {missing} (it "
                             f"includes {sources}): fix restore_test.namespace_mappings")
    # Only now, with the plan valid, what a killed run left is deleted (a dry run only names it).
    cleaned: dict[str, list[str]] = {"restores": [], "namespaces": []}
    if not dry_run and (left["restores"] or left["namespaces"]):
        cleaned = clean(hook, left["restores"], left["namespaces"])
    st = backup.get("status") or {}
    return {
        "velero": entry.name, "conn_id": entry.conn_id, "velero_namespace": entry.namespace,
        "schedule": rt.schedule, "backup": backup["metadata"]["name"],
        "backup_items": (st.get("progress") or {}).get("itemsBackedUp", (st.get("progress") or {}).get("totalItems")),
        "backup_namespaces": sources, "namespace_mappings": mappings, "target_namespaces": sorted(mappings.values()),
        "restore_name": f"drdrill-{entry.name}-{short}"[:63].rstrip("-"),
        "labels": {RESTORE_TEST_LABEL: entry.name, RUN_LABEL: short},
        "timeout_seconds": rt.timeout_seconds, "ready_timeout_seconds": rt.ready_timeout_seconds,
        "dry_run": dry_run, "leftovers": left, "cleaned": cleaned,
    }


def prepare(plan: dict[str, Any]) -> dict[str, Any]:
    """Create the target namespaces, labelled as drdrill's (the kill switch read right before); a dry run
    creates nothing. A failure half-way deletes what it created before raising."""
    if plan["dry_run"]:
        return {"dry_run": True, "namespaces": []}
    from drdrill.core.killswitch import check_kill_switch

    verdict = check_kill_switch(f"Velero restore test: create namespaces {', '.join(plan['target_namespaces'])} "
                                f"and restore {plan['backup']}")
    hook = VeleroHook(kubernetes_conn_id=plan["conn_id"], velero_namespace=plan["velero_namespace"])
    made: list[str] = []
    try:
        for ns in plan["target_namespaces"]:
            hook.create_namespace(ns, plan["labels"])
            made.append(ns)
    except BaseException:
        for ns in made:
            hook.delete_namespace(ns)
        raise
    return {"dry_run": False, "namespaces": made, "kill_switch": verdict}


def compare_items(plan: dict[str, Any], restored: dict[str, Any]) -> CheckResult:
    """Every item the Restore planned was restored, at least one, and no more than the backup holds."""
    tgt = target("velero", plan["velero"], plan["schedule"])
    n, total, held = restored.get("items_restored"), restored.get("total_items"), plan.get("backup_items")
    details = {"items_restored": n, "restore_total_items": total, "backup_items": held}
    what = (f"Restore {restored.get('restore_name')} of Backup {plan['backup']}: {n} item(s) restored of its "
            f"{total} (the backup holds {held if held is not None else 'an unknown number of'} item(s))")
    if not n:
        return CheckResult("velero_restore_items", Status.FAIL, f"{what}: nothing restored proves nothing; does "
                           f"the backup hold {', '.join(plan['namespace_mappings'])}?", tgt, n, total, details)
    if total is not None and n < total:
        return CheckResult("velero_restore_items", Status.FAIL, f"{what}: {total - n} item(s) not restored; see "
                           f"velero restore describe {restored.get('restore_name')} --details", tgt, n, total,
                           details)
    if held is not None and n > held:
        return CheckResult("velero_restore_items", Status.FAIL, f"{what}: more than the backup holds, so the "
                           f"counts are not of this backup", tgt, n, held, details)
    return CheckResult("velero_restore_items", Status.PASS, what, tgt, n, total, details)


def wait_workloads_ready(plan: dict[str, Any], *, poll_interval: float = 0.5) -> CheckResult:
    """Every Deployment and StatefulSet of the target namespaces Ready within ``ready_timeout_seconds``."""
    tgt = target("velero", plan["velero"], plan["schedule"])
    hook = VeleroHook(kubernetes_conn_id=plan["conn_id"], velero_namespace=plan["velero_namespace"])
    bound = float(plan["ready_timeout_seconds"])
    t0 = time.monotonic()
    polls = 0
    while True:
        polls += 1
        workloads = {ns: hook.workloads(ns) for ns in plan["target_namespaces"]}
        waiting = [f"{ns}/{w.line()}" for ns, ws in workloads.items() for w in ws if not w.ready]
        took = time.monotonic() - t0
        count = sum(len(ws) for ws in workloads.values())
        details = {"workloads": {ns: [w.to_dict() for w in ws] for ns, ws in workloads.items()},
                   "seconds": round(took, 3), "polls": polls}
        if not waiting:
            msg = (f"{count} restored workload(s) Ready in {took:.1f} s <= {bound:g} s" if count else
                   f"no Deployment or StatefulSet in {', '.join(plan['target_namespaces'])} (nothing to wait for)")
            return CheckResult("velero_restore_ready", Status.PASS, msg, tgt, round(took, 3), bound, details)
        if took >= bound:
            return CheckResult("velero_restore_ready", Status.FAIL,
                               f"restored workloads not Ready within {bound:g} s (restore_test.ready_timeout_seconds):"
                               f" {'; '.join(waiting)}", tgt, round(took, 3), bound, details)
        time.sleep(min(poll_interval, max(bound - took, 0.05)))


def verify(plan: dict[str, Any], restored: dict[str, Any]) -> dict[str, Any]:
    """The items compared and the workloads Ready; raises DrillFailed (with every check) when one fails."""
    if plan["dry_run"] or restored.get("dry_run"):
        return {"dry_run": True, "results": []}
    results = [compare_items(plan, restored), wait_workloads_ready(plan)]
    out = {"results": [r.to_dict() for r in results]}
    failed = [r for r in results if r.failed]
    if failed:
        raise DrillFailed("; ".join(r.message for r in failed), results=out["results"])
    return out
