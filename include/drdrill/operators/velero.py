"""Velero restores in any DAG: create a Restore and wait for it (bounded), and delete what a restore made.

Explicit arguments and an Airflow ``kubernetes`` connection only; nothing here reads the estate.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from drdrill.operators.base import DrillOperator, truthy

TERMINAL = ("Completed", "PartiallyFailed", "Failed", "FailedValidation")


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


class VeleroRestoreOperator(DrillOperator):
    """Create a Velero ``Restore`` of ``backup_name`` into mapped namespaces and wait until it finishes.

    The Restore includes the mapping's source namespaces only (``includedNamespaces``) and writes them to
    the targets (``namespaceMapping``). The wait is bounded: not ``Completed`` within ``timeout_seconds``
    fails the task naming the bound and the last phase; ``PartiallyFailed``, ``Failed`` or
    ``FailedValidation`` fail it with the Restore's error and warning counts and failure reason. The drdrill
    kill switch (`drdrill.core.killswitch`) is read right before the Restore is created.

    :param kubernetes_conn_id: Airflow ``kubernetes`` connection to the cluster Velero runs in
    :param velero_namespace: the namespace Velero runs in
    :param backup_name: the Backup to restore (``Completed``)
    :param namespace_mappings: ``{source: target}``; targets must not be production namespaces (the caller
        refuses that: `drdrill.drills.backups.velero_restore.preflight` does for the drill)
    :param restore_name: the Restore's name (default ``<backup_name>-restore-<epoch>``)
    :param labels: labels on the Restore (find it again with them)
    :param timeout_seconds: the bound on the wait
    :param poll_interval: seconds between reads of the Restore
    :param deferrable: wait in the triggerer (`drdrill.triggers.velero.VeleroRestoreTrigger`), not in the worker
    :param dry_run: create nothing, return what would be created

    Returns ``{"dry_run", "restore_name", "backup", "namespace_mappings", "phase", "items_restored",
    "total_items", "errors", "warnings", "failure_reason", "seconds"}``.

    Usage::

        VeleroRestoreOperator(task_id="restore", kubernetes_conn_id="k8s_prod", backup_name="daily-2026...",
                              namespace_mappings={"production": "production-restored-test"},
                              timeout_seconds=900)
    """

    template_fields: Sequence[str] = ("kubernetes_conn_id", "velero_namespace", "backup_name", "namespace_mappings",
                                      "restore_name", "labels", "timeout_seconds", "dry_run")

    def __init__(self, *, kubernetes_conn_id: str = "kubernetes_default", velero_namespace: str = "velero",
                 backup_name: Any, namespace_mappings: Any, restore_name: Any = None, labels: Any = None,
                 timeout_seconds: Any = 900, poll_interval: float = 5.0, deferrable: bool = False,
                 dry_run: Any = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kubernetes_conn_id = kubernetes_conn_id
        self.velero_namespace = velero_namespace
        self.backup_name = backup_name
        self.namespace_mappings = namespace_mappings
        self.restore_name = restore_name
        self.labels = labels
        self.timeout_seconds = timeout_seconds
        self.poll_interval = poll_interval
        self.deferrable = deferrable
        self.dry_run = dry_run

    def run(self, context: Any) -> dict[str, Any]:
        from drdrill.core.errors import DrillFailed, PreflightError
        from drdrill.hooks.velero import RESTORES, VeleroHook

        mappings = dict(self.namespace_mappings or {})
        if not mappings or not self.backup_name:
            raise PreflightError("VeleroRestoreOperator needs backup_name and a non-empty namespace_mappings "
                                 "{source: target}")
        same = [s for s, t in mappings.items() if s == t]
        if same:
            raise PreflightError(f"namespace_mappings maps {same} onto itself: a restore test never writes into "
                                 f"its source; map it onto a new namespace")
        name = str(self.restore_name or f"{self.backup_name}-restore-{int(time.time())}")[:63]
        timeout = float(self.timeout_seconds)
        out: dict[str, Any] = {"dry_run": truthy(self.dry_run), "restore_name": name, "backup": self.backup_name,
                               "namespace_mappings": mappings, "phase": None, "items_restored": None,
                               "total_items": None, "errors": None, "warnings": None, "failure_reason": None,
                               "seconds": None, "timeout_seconds": timeout}
        if out["dry_run"]:
            self.log.info("dry run: would restore %s as %s with %s", self.backup_name, name, mappings)
            return out
        from drdrill.core.killswitch import check_kill_switch

        check_kill_switch(f"Velero restore {name} of {self.backup_name} into {', '.join(mappings.values())}")
        hook = VeleroHook(kubernetes_conn_id=self.kubernetes_conn_id, velero_namespace=self.velero_namespace)
        hook.create(RESTORES, {"metadata": {"name": name, "labels": dict(self.labels or {})},
                               "spec": {"backupName": self.backup_name, "includedNamespaces": sorted(mappings),
                                        "namespaceMapping": mappings}})
        created_at = datetime.now(UTC)
        # a tenth of the bound at most: a short bound is not overslept
        interval = min(float(self.poll_interval), timeout / 10)
        if self.deferrable:
            from drdrill.triggers.velero import VeleroRestoreTrigger

            self.defer(trigger=VeleroRestoreTrigger(
                conn_id=self.kubernetes_conn_id, velero_namespace=self.velero_namespace, restore_name=name,
                created_at=created_at.isoformat(), timeout_seconds=timeout, poll_interval=interval, payload=out),
                method_name="execute_complete")
        t0 = time.monotonic()
        while True:
            obj = hook.get(RESTORES, name)
            if obj is None:
                raise DrillFailed(f"Restore {name} disappeared from {self.velero_namespace!r} while waiting for it")
            took = time.monotonic() - t0
            _apply(out, obj.get("status") or {}, took)
            if out["phase"] in TERMINAL:
                break
            if took >= timeout:
                raise DrillFailed(_timeout_message(out))
            time.sleep(min(interval, max(timeout - took, 0.05)))
        return self._verdict(context, out)

    def _verdict(self, context: Any, out: dict[str, Any]) -> dict[str, Any]:
        from drdrill.core.errors import DrillFailed

        context["ti"].xcom_push(key="restore", value=out)
        name = out["restore_name"]
        if out["phase"] != "Completed":
            why = f", failure reason: {out['failure_reason']}" if out["failure_reason"] else ""
            raise DrillFailed(f"Restore {name} of {out['backup']} is {out['phase']}: {out['errors']} error(s), "
                              f"{out['warnings']} warning(s){why}; see velero restore describe {name} --details")
        self.log.info("Restore %s Completed in %.1f s: %s of %s items", name, out["seconds"], out["items_restored"],
                      out["total_items"])
        return out

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """The deferred half: the trigger's event turned into the same result or failure as the worker's wait."""
        from drdrill.core.errors import DrillError, DrillFailed
        from drdrill.core.journal import record_step

        out = dict(event.get("payload") or {})
        _apply(out, event.get("restore") or {}, float(event.get("seconds") or 0))
        started = time.time() - float(event.get("seconds") or 0)
        try:
            if event.get("status") == "timeout":
                raise DrillFailed(_timeout_message(out))
            if event.get("status") != "finished":
                raise DrillError(str(event.get("message") or f"the wait ended with {event.get('status')!r}"))
            result = self._verdict(context, out)
        except DrillError as e:
            record_step(context, self.task_id, "failed", started, f"{type(e).__name__}: {e}")
            raise
        record_step(context, self.task_id, "success", started)
        return result


def _apply(out: dict[str, Any], st: dict[str, Any], seconds: float) -> None:
    """A Restore's ``status`` into the operator's result."""
    prog = st.get("progress") or {}
    out.update(phase=st.get("phase"), items_restored=prog.get("itemsRestored"), total_items=prog.get("totalItems"),
               errors=int(st.get("errors") or 0), warnings=int(st.get("warnings") or 0),
               failure_reason=st.get("failureReason"), seconds=round(seconds, 3))


def _timeout_message(out: dict[str, Any]) -> str:
    name = out["restore_name"]
    return (f"Restore {name} of {out['backup']} not Completed within {out['timeout_seconds']:g} s (timeout_seconds; "
            f"last phase: {out['phase'] or 'none yet'}): is Velero running? see velero restore describe {name}")


class VeleroRestoreTeardownOperator(DrillOperator):
    """Delete a Restore object and the namespaces it restored into, then wait until they are gone (bounded).

    Meant as a teardown task (it runs after a failed restore too). Objects already gone are fine; a
    namespace still there after ``wait_seconds`` (stuck Terminating) fails the task, naming it.

    :param kubernetes_conn_id: Airflow ``kubernetes`` connection
    :param velero_namespace: the namespace Velero runs in
    :param restore_name: the Restore to delete (``None``: none)
    :param namespaces: the namespaces to delete (a list, or comma-separated)
    :param wait_seconds: how long deleted namespaces may take to disappear
    :param dry_run: delete nothing

    Returns ``{"dry_run", "restore_deleted", "namespaces_deleted", "namespaces_gone"}``.
    """

    template_fields: Sequence[str] = ("kubernetes_conn_id", "velero_namespace", "restore_name", "namespaces",
                                      "dry_run")

    def __init__(self, *, kubernetes_conn_id: str = "kubernetes_default", velero_namespace: str = "velero",
                 restore_name: Any = None, namespaces: Any = (), wait_seconds: float = 300, poll_interval: float = 2,
                 dry_run: Any = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kubernetes_conn_id = kubernetes_conn_id
        self.velero_namespace = velero_namespace
        self.restore_name = restore_name
        self.namespaces = namespaces
        self.wait_seconds = wait_seconds
        self.poll_interval = poll_interval
        self.dry_run = dry_run

    def run(self, context: Any) -> dict[str, Any]:
        from drdrill.core.errors import DrillError
        from drdrill.hooks.velero import RESTORES, VeleroHook

        namespaces = _as_list(self.namespaces)
        out: dict[str, Any] = {"dry_run": truthy(self.dry_run), "restore_deleted": False, "namespaces_deleted": [],
                               "namespaces_gone": []}
        if out["dry_run"]:
            return out
        hook = VeleroHook(kubernetes_conn_id=self.kubernetes_conn_id, velero_namespace=self.velero_namespace)
        errors: list[str] = []
        if self.restore_name:
            try:
                out["restore_deleted"] = hook.delete(RESTORES, str(self.restore_name))
            except DrillError as e:  # the namespaces are deleted all the same
                errors.append(str(e))
        for ns in namespaces:
            try:
                if hook.delete_namespace(ns):
                    out["namespaces_deleted"].append(ns)
            except DrillError as e:
                errors.append(str(e))
        t0 = time.monotonic()
        while True:
            left = [ns for ns in namespaces if hook.namespace_exists(ns)]
            if not left or time.monotonic() - t0 >= float(self.wait_seconds):
                break
            time.sleep(float(self.poll_interval))
        out["namespaces_gone"] = [ns for ns in namespaces if ns not in left]
        if left:
            errors.append(f"namespace(s) {left} still exist {float(self.wait_seconds):g} s after their deletion "
                          f"(stuck Terminating? check their finalizers)")
        if errors:
            raise DrillError("teardown incomplete: " + "; ".join(errors))
        return out
