"""Velero's custom resources (``velero.io/v1``) and the namespaces a restore test makes, through an Airflow
``kubernetes`` connection.

`VeleroHook` is the cncf-kubernetes provider's `KubernetesHook` (its custom objects API) with the calls
the daily checks and the restore test make: get, list, create and delete Schedules, Backups, Restores
and BackupStorageLocations in the namespace Velero runs in; create, list and delete namespaces; and the
readiness of the Deployments and StatefulSets in a namespace. Nothing here reads the estate.

Every failure of the API (404 where an object must exist, 401/403, a refused or unreachable server)
is a `drdrill.core.errors.DrillError` naming the resource, the connection and the server, with the fix;
`VeleroUnreachable` (a subclass) when the server could not be reached at all, so a caller can stop
asking after the first one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

from drdrill.core.errors import DrillError
from drdrill.hooks.kubernetes import parse_selector, selector_matches

GROUP = "velero.io"
VERSION = "v1"
SCHEDULES, BACKUPS, RESTORES, STORAGE_LOCATIONS = "schedules", "backups", "restores", "backupstoragelocations"
KINDS = {SCHEDULES: "Schedule", BACKUPS: "Backup", RESTORES: "Restore", STORAGE_LOCATIONS: "BackupStorageLocation"}
SCHEDULE_LABEL = "velero.io/schedule-name"  # Velero labels every backup of a schedule with its name
# The label drdrill puts on what a restore test creates (Restore objects, target namespaces): its value is
# the estate entry's name, so a later run finds what a killed run left.
RESTORE_TEST_LABEL = "drdrill.io/velero-restore-test"
RUN_LABEL = "drdrill.io/run"


class VeleroUnreachable(DrillError):
    """The Kubernetes API of the connection could not be reached (refused, timed out, bad kubeconfig)."""


def parse_time(value: Any) -> datetime | None:
    """A Kubernetes timestamp (``2026-01-02T03:04:05Z``) as an aware datetime; ``None`` when absent."""
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)


def backup_time(obj: Mapping[str, Any]) -> datetime | None:
    """When a Backup or Restore was taken: its ``status.startTimestamp``, else ``metadata.creationTimestamp``."""
    status = obj.get("status") or {}
    return parse_time(status.get("startTimestamp")) or parse_time((obj.get("metadata") or {}).get("creationTimestamp"))


@dataclass(frozen=True)
class WorkloadReadiness:
    """One Deployment or StatefulSet: desired replicas, Ready pods (each pod's own condition), and the
    controller's ``status.readyReplicas`` (not trusted alone: it can be stale)."""

    kind: str
    name: str
    desired: int
    ready_pods: int
    ready_replicas: int

    @property
    def ready(self) -> bool:
        return self.ready_pods >= self.desired and self.ready_replicas >= self.desired

    def line(self) -> str:
        return f"{self.kind}/{self.name} {self.ready_pods}/{self.desired} pods Ready"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ready": self.ready}


def _pod_ready(pod: Any) -> bool:
    conds = (pod.status.conditions if pod.status else None) or []
    return pod.metadata.deletion_timestamp is None and any(c.type == "Ready" and c.status == "True" for c in conds)


class VeleroHook(KubernetesHook):
    """The provider's `KubernetesHook` with Velero's custom resources and the namespaces of a restore test.

    :param kubernetes_conn_id: Airflow ``kubernetes`` connection (kubeconfig, kube_config_path or in-cluster)
    :param velero_namespace: the namespace Velero runs in (its Schedules, Backups, Restores and
        BackupStorageLocations live there)

    Usage::

        hook = VeleroHook(kubernetes_conn_id="k8s_prod", velero_namespace="velero")
        schedule = hook.get(SCHEDULES, "daily-production-backup")      # None when it does not exist
        newest = hook.backups_of("daily-production-backup")[0]          # newest first
    """

    def __init__(self, kubernetes_conn_id: str | None = KubernetesHook.default_conn_name, *,
                 velero_namespace: str = "velero", **kwargs: Any) -> None:
        super().__init__(kubernetes_conn_id=kubernetes_conn_id, **kwargs)
        self.velero_namespace = velero_namespace

    # -- errors ----------------------------------------------------------------------------------
    def server(self) -> str:
        """The API server's URL (for messages); ``?`` when the connection cannot even be loaded."""
        try:
            return str(self.api_client.configuration.host)
        except Exception:  # noqa: BLE001 - only for a message
            return "?"

    def _error(self, e: Exception, what: str) -> DrillError:
        from kubernetes.client import ApiException

        where = f"connection {self.conn_id!r} ({self.server()})"
        if isinstance(e, ApiException):
            if e.status in (401, 403):
                return DrillError(f"{what}: the Kubernetes API answered {e.status} ({e.reason}) through {where}: "
                                  f"its credentials may not do this; grant get/list/create/delete on "
                                  f"{GROUP} schedules, backups, restores and backupstoragelocations in "
                                  f"{self.velero_namespace!r}, and on namespaces, deployments, statefulsets and pods")
            if e.status == 404:
                return DrillError(f"{what}: not found (404) through {where}: is Velero installed (its CRDs "
                                  f"{GROUP}/{VERSION}) and is the namespace right?")
            return DrillError(f"{what}: the Kubernetes API answered {e.status} {e.reason} through {where}: "
                              f"{str(e.body or '')[:300]}")
        return VeleroUnreachable(f"{what}: the Kubernetes API could not be reached through {where}: "
                                 f"{type(e).__name__}: {str(e)[:300]}; check the connection's kubeconfig and that "
                                 f"the server is up")

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client import ApiException

        try:
            return fn(*args, **kwargs)
        except Exception as e:
            if isinstance(e, ApiException) or _transport(e):
                raise self._error(e, what) from e
            raise

    def _call_or_missing(self, what: str, fn: Any, *args: Any) -> tuple[bool, Any]:
        """``(True, fn(*args))``, or ``(False, None)`` when the API answers 404; any other API or transport
        error as `_call`."""
        from kubernetes.client import ApiException

        try:
            return True, self._call(what, fn, *args)
        except DrillError as e:
            if isinstance(e.__cause__, ApiException) and e.__cause__.status == 404:
                return False, None
            raise

    def _api(self, what: str) -> Any:
        try:
            return self.custom_object_client
        except DrillError:
            raise
        except Exception as e:  # noqa: BLE001 - a kubeconfig that does not load: name the connection
            raise VeleroUnreachable(f"{what}: connection {self.conn_id!r} does not give a Kubernetes client: "
                                    f"{type(e).__name__}: {str(e)[:300]}") from e

    # -- Velero objects --------------------------------------------------------------------------
    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        """One Velero object of the Velero namespace; ``None`` when it does not exist."""

        what = f"reading {KINDS.get(plural, plural)} {name!r} in {self.velero_namespace!r}"
        api = self._api(what)
        # A 404: the object, or Velero's CRD itself (not installed): either way not there.
        return self._call_or_missing(what, api.get_namespaced_custom_object, GROUP, VERSION, self.velero_namespace,
                                     plural, name)[1]

    def list(self, plural: str, selector: str = "") -> list[dict[str, Any]]:
        """Velero objects of the Velero namespace matching the label ``selector`` (by the server, then again
        here: a server ignoring the selector never widens the answer)."""
        reqs = parse_selector(selector)
        what = f"listing {plural} {selector!r} in {self.velero_namespace!r}" if selector else \
            f"listing {plural} in {self.velero_namespace!r}"
        api = self._api(what)
        out = self._call(what, api.list_namespaced_custom_object, GROUP, VERSION, self.velero_namespace, plural,
                         label_selector=selector or None)
        return [i for i in out.get("items") or [] if selector_matches(reqs, (i.get("metadata") or {}).get("labels"))]

    def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a Velero object in the Velero namespace (``apiVersion``/``kind`` filled in)."""
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KINDS.get(plural, plural), **body}
        what = f"creating {body['kind']} {body.get('metadata', {}).get('name')!r} in {self.velero_namespace!r}"
        api = self._api(what)
        return self._call(what, api.create_namespaced_custom_object, GROUP, VERSION, self.velero_namespace, plural,
                          body)

    def delete(self, plural: str, name: str) -> bool:
        """Delete a Velero object; False when it was already gone."""

        what = f"deleting {KINDS.get(plural, plural)} {name!r} in {self.velero_namespace!r}"
        api = self._api(what)
        return self._call_or_missing(what, api.delete_namespaced_custom_object, GROUP, VERSION,
                                     self.velero_namespace, plural, name)[0]

    def backups_of(self, schedule: str) -> list[dict[str, Any]]:
        """The Backups a schedule made (label ``velero.io/schedule-name``), newest first."""
        items = self.list(BACKUPS, f"{SCHEDULE_LABEL}={schedule}")
        return sorted(items, key=lambda b: backup_time(b) or datetime.min.replace(tzinfo=UTC), reverse=True)

    def newest_completed_backup(self, schedule: str) -> dict[str, Any] | None:
        """The newest ``Completed`` Backup of a schedule; ``None`` when it has none."""
        return next((b for b in self.backups_of(schedule) if (b.get("status") or {}).get("phase") == "Completed"),
                    None)

    # -- namespaces ------------------------------------------------------------------------------
    def namespace_exists(self, namespace: str) -> bool:

        return self._call_or_missing(f"reading namespace {namespace!r}", self.core_v1_client.read_namespace,
                                     namespace)[0]

    def namespaces(self, selector: str) -> list[str]:
        """Names of the namespaces matching the label ``selector`` (filtered again here), sorted."""
        reqs = parse_selector(selector)
        items = self._call(f"listing namespaces {selector!r}", self.core_v1_client.list_namespace,
                           label_selector=selector or None).items
        return sorted(n.metadata.name for n in items if selector_matches(reqs, n.metadata.labels))

    def create_namespace(self, namespace: str, labels: Mapping[str, str]) -> None:
        """Create a namespace with ``labels``; a namespace that already exists is refused (DrillError)."""
        from kubernetes.client import V1Namespace, V1ObjectMeta

        self._call(f"creating namespace {namespace!r}", self.core_v1_client.create_namespace,
                   V1Namespace(metadata=V1ObjectMeta(name=namespace, labels=dict(labels))))

    def delete_namespace(self, namespace: str) -> bool:
        """Delete a namespace (and, by Kubernetes, everything in it); False when it was already gone."""

        return self._call_or_missing(f"deleting namespace {namespace!r}", self.core_v1_client.delete_namespace,
                                     namespace)[0]

    # -- workloads -------------------------------------------------------------------------------
    def workloads(self, namespace: str) -> list[WorkloadReadiness]:
        """Every Deployment and StatefulSet of ``namespace`` with its readiness, sorted by kind and name.

        A workload is Ready when as many of its pods (selected by its ``spec.selector``) are themselves
        Ready as it wants, and its ``status.readyReplicas`` agrees.
        """
        apps = self.apps_v1_client
        pods = self._call(f"listing pods in {namespace!r}", self.core_v1_client.list_namespaced_pod, namespace).items
        out = []
        for kind, lister in (("Deployment", apps.list_namespaced_deployment),
                             ("StatefulSet", apps.list_namespaced_stateful_set)):
            for w in self._call(f"listing {kind}s in {namespace!r}", lister, namespace).items:
                sel = w.spec.selector.match_labels if w.spec and w.spec.selector else None
                reqs = [f"{k}={v}" for k, v in (sel or {}).items()]
                mine = [p for p in pods if sel and selector_matches(",".join(reqs), p.metadata.labels)]
                desired = int(w.spec.replicas if w.spec and w.spec.replicas is not None else 1)
                out.append(WorkloadReadiness(kind, w.metadata.name, desired, sum(1 for p in mine if _pod_ready(p)),
                                             int((w.status.ready_replicas if w.status else 0) or 0)))
        return sorted(out, key=lambda w: (w.kind, w.name))


def _transport(e: BaseException) -> bool:
    """A failure to reach the server: refused, reset, timed out, TLS (urllib3's errors, which wrap OSError)."""
    return isinstance(e, OSError) or type(e).__module__.split(".")[0] == "urllib3"
