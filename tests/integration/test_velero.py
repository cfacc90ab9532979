"""Velero: the daily checks and the monthly restore test against kmock's Kubernetes emulator over real HTTP.

Velero's CRDs (``velero.io/v1`` schedules, backups, restores, backupstoragelocations) are registered in the
emulator (tests/k8s_emulator.py); `VeleroHook` reads and writes them through the cncf-kubernetes provider's
``KubernetesHook`` and an Airflow ``kubernetes`` connection. The test plays Velero's controller
(`VeleroController`): a Restore it sees goes InProgress, the source namespace's Deployments are created in
the mapped namespace (pods not Ready), the Restore turns Completed with its item counts, and the restored
pods turn Ready a moment later; or it does nothing (a restore that never completes), or ends PartiallyFailed.
The restore test runs through its DAG (``dag.test()``); the daily checks at the function level
(`drdrill.drills.backups.daily`, what the daily verification's ``velero`` task calls). No PostgreSQL
sandbox is needed: the tests write their own estate (the sandbox estate has no Kubernetes).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kmock import ResourceInfo

from integration.helpers import failures, journal, step
from k8s_emulator import KubernetesCluster, iso

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "dr_monthly_velero_restore_test"
NS = "velero"
V = f"/apis/velero.io/v1/namespaces/{NS}"
SCHEDULE = "daily-production-backup"
LABEL = "drdrill.io/velero-restore-test"
PLURALS = {"schedules": "Schedule", "backups": "Backup", "restores": "Restore",
           "backupstoragelocations": "BackupStorageLocation"}

# The seed's schedule (seed/dr-patterns.md), as the estate expects it and as the cluster holds it.
ENTRY: dict[str, Any] = {
    "name": "prod-k8s", "conn_id": "k8s_emulator", "namespace": NS, "storage_locations": ["default"],
    "schedules": [{"name": SCHEDULE, "schedule": "0 2 * * *",
                   "included_namespaces": ["production", "monitoring", "ingress-nginx"],
                   "excluded_resources": ["events", "events.events.k8s.io", "nodes"], "ttl": "720h0m0s",
                   "storage_location": "default", "hooks": [{"name": "postgres-quiesce", "phase": "pre"}]}],
    # Bounds a passing run never waits out (the emulator slows down as it fills); the tests of a bound
    # shrink it to 2 s (`bounds`).
    "restore_test": {"schedule": SCHEDULE, "namespace_mappings": {"production": "production-restored"},
                     "timeout_seconds": 20, "ready_timeout_seconds": 20},
}
LIVE_SCHEDULE = {
    "metadata": {"name": SCHEDULE},
    "spec": {"schedule": "0 2 * * *", "template": {
        "includedNamespaces": ["production", "monitoring", "ingress-nginx"],
        "excludedResources": ["events", "events.events.k8s.io", "nodes"], "ttl": "720h0m0s",
        "storageLocation": "default", "volumeSnapshotLocations": ["default"],
        "hooks": {"resources": [{"name": "postgres-quiesce", "includedNamespaces": ["production"],
                                 "labelSelector": {"matchLabels": {"app": "postgres"}},
                                 "pre": [{"exec": {"container": "postgres", "timeout": "30s", "command": [
                                     "/bin/bash", "-c", "psql -U postgres -c 'CHECKPOINT;'"]}}]}]}}},
    "status": {"phase": "Enabled"}}


class VeleroController:
    """Velero's restore controller, played by the test through the emulator's HTTP API.

    :ivar mode: ``complete`` (restore the source namespaces' Deployments into the mapped ones), ``never``
        (do nothing: the Restore stays without a phase), ``partial`` (end PartiallyFailed, 2 errors, 3 warnings)
    :ivar ready_after: seconds from the restore to the restored pods Ready (``None``: never)
    """

    def __init__(self, k8s: KubernetesCluster) -> None:
        self.k8s = k8s
        self.mode = "complete"
        self.ready_after: float | None = 0.3
        self.seen: set[str] = set()
        self._pending: list[tuple[float, str, str]] = []  # (due, namespace, pod)
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._loop, name="velero-test-controller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self._errors:
            raise RuntimeError(f"the Velero test controller failed: {self._errors[0]!r}") from self._errors[0]

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.reconcile()
            except Exception as e:  # noqa: BLE001 - reported by stop()
                self._errors.append(e)

    def reconcile(self) -> None:
        k8s = self.k8s
        for r in k8s.get(f"{V}/restores")["items"]:
            uid = r["metadata"]["uid"]
            if uid in self.seen or self.mode == "never":
                continue
            self.seen.add(uid)
            name = r["metadata"]["name"]
            k8s.patch(f"{V}/restores/{name}/status", {"status": {"phase": "InProgress"}})
            if self.mode == "partial":
                k8s.patch(f"{V}/restores/{name}/status", {"status": {
                    "phase": "PartiallyFailed", "errors": 2, "warnings": 3,
                    "progress": {"totalItems": 7, "itemsRestored": 5}}})
                continue
            items = 0
            for src, dst in (r["spec"].get("namespaceMapping") or {}).items():
                if k8s.get(f"/api/v1/namespaces/{dst}") is None:
                    k8s.post("/api/v1/namespaces", {"metadata": {"name": dst,
                                                                 "labels": {"velero.io/restore-name": name}}})
                items += 1
                for d in k8s.get(f"/apis/apps/v1/namespaces/{src}/deployments")["items"]:
                    made = k8s.create_deployment(dst, d["metadata"]["name"], replicas=d["spec"]["replicas"],
                                                 labels=d["spec"]["selector"]["matchLabels"], ready=False,
                                                 age_seconds=None)
                    items += 2 + len(made["pods"])
                    if self.ready_after is not None:
                        self._pending += [(time.monotonic() + self.ready_after, dst, p["metadata"]["name"])
                                          for p in made["pods"]]
            k8s.patch(f"{V}/restores/{name}/status", {"status": {
                "phase": "Completed", "errors": 0, "warnings": 0, "completionTimestamp": iso(datetime.now(UTC)),
                "progress": {"totalItems": items, "itemsRestored": items}}})
        now = time.monotonic()
        for due, ns, pod in [p for p in self._pending if p[0] <= now]:
            self._pending.remove((due, ns, pod))
            k8s.set_pod_ready(ns, pod, True, missing_ok=True)  # (the teardown may have deleted it)


def _ago(hours: float) -> str:
    return iso(datetime.now(UTC) - timedelta(hours=hours))


def backup(name: str, *, schedule: str | None = SCHEDULE, phase: str = "Completed", hours_ago: float = 3,
           errors: int = 0, warnings: int = 0, failure_reason: str | None = None, items: int = 40) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "startTimestamp": _ago(hours_ago),
                              "completionTimestamp": _ago(hours_ago - 0.1), "errors": errors, "warnings": warnings,
                              "progress": {"totalItems": items, "itemsBackedUp": items}}
    if failure_reason:
        status["failureReason"] = failure_reason
    return {"metadata": {"name": name, "creationTimestamp": _ago(hours_ago),
                         "labels": {"velero.io/schedule-name": schedule} if schedule else {}},
            "spec": {"includedNamespaces": ["production", "monitoring", "ingress-nginx"]}, "status": status}


def put(k8s: KubernetesCluster, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
    return k8s.post(f"{V}/{plural}", {"apiVersion": "velero.io/v1", "kind": PLURALS[plural], **obj})


def _ns(k8s: KubernetesCluster, name: str, labels: dict[str, str] | None = None) -> None:
    if k8s.get(f"/api/v1/namespaces/{name}") is None:
        k8s.post("/api/v1/namespaces", {"metadata": {"name": name, "labels": labels or {}}})


@pytest.fixture(scope="module")
def velero_cluster(k8s_cluster):
    """Velero's CRDs in the session's emulator, its namespace, a production namespace with two Deployments,
    and the test's Velero controller (one per module)."""
    assert k8s_cluster.emulator is not None
    for plural, kind in PLURALS.items():
        k8s_cluster.emulator.resources[f"velero.io/v1/{plural}"] = ResourceInfo(
            namespaced=True, kind=kind, singular=kind.lower(), subresources={"status"},
            verbs={"get", "list", "create", "delete", "patch", "update", "watch"})
    for ns in (NS, "monitoring", "ingress-nginx"):
        _ns(k8s_cluster, ns)
    if k8s_cluster.get("/api/v1/namespaces/production") is None:
        _ns(k8s_cluster, "production")
        k8s_cluster.create_deployment("production", "web", labels={"app": "web"}, replicas=2)
        k8s_cluster.create_deployment("production", "postgres", labels={"app": "postgres"}, replicas=1)
    ctl = VeleroController(k8s_cluster)
    ctl.start()
    yield k8s_cluster, ctl
    ctl.stop()


@pytest.fixture
def velero(velero_cluster, k8s, tmp_path, monkeypatch):
    """A healthy Velero install (the seed's schedule, two Completed backups, an Available location), an
    estate file naming it (DRDRILL_ESTATE), and the controller completing restores."""
    k8s, ctl = velero_cluster
    for plural in PLURALS:
        for o in k8s.get(f"{V}/{plural}")["items"]:
            k8s.delete(f"{V}/{plural}/{o['metadata']['name']}")
    for n in k8s.get("/api/v1/namespaces", labelSelector=LABEL)["items"]:
        if n["metadata"]["name"] != "production":
            k8s.delete(f"/api/v1/namespaces/{n['metadata']['name']}")
    ctl.mode, ctl.ready_after = "complete", 0.3
    put(k8s, "schedules", LIVE_SCHEDULE)
    put(k8s, "backups", backup("daily-production-backup-20260101020000", hours_ago=27))
    put(k8s, "backups", backup("daily-production-backup-20260102020000", hours_ago=3))
    put(k8s, "backups", backup("other-newer-failed", schedule="other", phase="Failed", hours_ago=1))
    put(k8s, "backupstoragelocations", {"metadata": {"name": "default"}, "spec": {"provider": "aws"},
                                        "status": {"phase": "Available", "lastValidationTime": _ago(0.01)}})
    write_estate(tmp_path, monkeypatch)
    return k8s


@pytest.fixture
def velero_ctl(velero_cluster, velero) -> VeleroController:
    """The test's Velero controller (reset by ``velero``): set ``mode`` / ``ready_after``."""
    return velero_cluster[1]


def write_estate(tmp_path: Path, monkeypatch, entry: dict[str, Any] | None = None) -> Path:
    """The sandbox estate (journal to tmp_path) whose ``backups`` is ``velero: [entry]`` alone (the sandbox's
    other backup systems need its moto); DRDRILL_ESTATE -> it."""
    from drdrill.core.paths import DEFAULT_ESTATE

    doc = yaml.safe_load(DEFAULT_ESTATE.read_text())
    doc["journal"]["location"] = f"file://{tmp_path}/journal"
    doc["backups"] = {"velero": [entry or ENTRY]}
    f = tmp_path / f"estate-{time.monotonic_ns()}.yaml"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.setenv("DRDRILL_ESTATE", str(f))
    return f


def bounds(tmp_path: Path, monkeypatch, **restore_test: Any) -> None:
    """The estate with other restore_test fields (bounds, mappings)."""
    write_estate(tmp_path, monkeypatch, {**ENTRY, "restore_test": {**ENTRY["restore_test"], **restore_test}})


def entry(**changes: Any):
    from drdrill.core.backups import Velero

    return Velero.model_validate({**ENTRY, **changes})


def checks(e=None) -> dict[tuple[str, str], Any]:
    from drdrill.drills.backups import velero

    return {(r.name, r.target): r for r in velero.daily(e or entry())}


T_SCHEDULE = f"velero/prod-k8s/{SCHEDULE}"
T_BSL = "velero/prod-k8s/default"


# -- the daily checks ----------------------------------------------------------------------------------

def test_a_healthy_install_passes_every_check_through_the_daily_dispatch(velero):
    from drdrill.core.estate import load_estate
    from drdrill.drills import backups

    results = backups.daily("velero", load_estate())
    assert {(r.name, r.target, r.status.value) for r in results} == {
        ("velero_schedule", T_SCHEDULE, "pass"), ("velero_backup", T_SCHEDULE, "pass"),
        ("velero_storage_location", T_BSL, "pass")}, [r.line() for r in results]
    b = next(r for r in results if r.name == "velero_backup")
    # the newest of the schedule's (not the other schedule's newer Failed one), 3 h old against 26 h
    assert "daily-production-backup-20260102020000" in b.message and b.threshold == 26 and 2.8 < b.value < 3.1


def test_a_partially_failed_newest_backup_fails_with_its_counts(velero):
    put(velero, "backups", backup("daily-production-backup-20260103020000", phase="PartiallyFailed", hours_ago=1,
                                  errors=4, warnings=7, failure_reason="pod volume backup failed"))
    r = checks()[("velero_backup", T_SCHEDULE)]
    assert r.failed and "daily-production-backup-20260103020000, is PartiallyFailed" in r.message, r.message
    assert "4 error(s), 7 warning(s), failure reason: pod volume backup failed" in r.message
    assert r.details["errors"] == 4 and r.details["warnings"] == 7


def test_a_running_backup_is_not_judged_the_newest_finished_one_is(velero):
    put(velero, "backups", backup("daily-production-backup-20260103020000", phase="InProgress", hours_ago=0.1))
    r = checks()[("velero_backup", T_SCHEDULE)]
    assert not r.failed and "still running: daily-production-backup-20260103020000" in r.message, r.message


def test_the_newest_backup_older_than_the_bound_fails(velero):
    velero.delete(f"{V}/backups/daily-production-backup-20260102020000")
    r = checks()[("velero_backup", T_SCHEDULE)]
    assert r.failed and "daily-production-backup-20260101020000" in r.message, r.message
    assert "older than the bound of 26 h" in r.message and 26.5 < r.value < 27.1
    # a schedule's own bound wins over the install's
    sch = {**ENTRY["schedules"][0], "max_backup_age_hours": 30}
    assert not checks(entry(schedules=[sch]))[("velero_backup", T_SCHEDULE)].failed


def test_no_backup_at_all_fails(velero):
    for b in velero.get(f"{V}/backups")["items"]:
        velero.delete(f"{V}/backups/{b['metadata']['name']}")
    r = checks()[("velero_backup", T_SCHEDULE)]
    assert r.failed and f"Schedule {SCHEDULE!r} has no Backup at all" in r.message, r.message


def test_a_missing_schedule_fails_naming_it(velero):
    velero.delete(f"{V}/schedules/{SCHEDULE}")
    r = checks()[("velero_schedule", T_SCHEDULE)]
    assert r.failed and f"Schedule {SCHEDULE!r} does not exist in namespace 'velero'" in r.message, r.message
    assert "connection 'k8s_emulator'" in r.message


def test_a_drifted_schedule_names_every_field_with_both_values(velero):
    spec = json.loads(json.dumps(LIVE_SCHEDULE["spec"]))
    spec["schedule"] = "0 4 * * *"
    spec["template"]["hooks"] = {"resources": []}  # the quiesce hook removed
    spec["template"]["ttl"] = "168h"
    spec["template"]["includedNamespaces"] = ["production"]
    velero.patch(f"{V}/schedules/{SCHEDULE}", {"spec": spec})
    r = checks()[("velero_schedule", T_SCHEDULE)]
    assert r.failed, r.message
    assert "schedule: estate '0 2 * * *', live '0 4 * * *'" in r.message
    assert "hooks: estate has the pre-hook 'postgres-quiesce', live has no backup hooks" in r.message
    assert "ttl: estate '720h0m0s', live '168h'" in r.message
    assert ("included_namespaces: estate ['ingress-nginx', 'monitoring', 'production'], live ['production']"
            in r.message)
    assert len(r.details["drift"]) == 4
    # The same ttl written another way ("720h" for "720h0m0s") is no drift.
    spec = json.loads(json.dumps(LIVE_SCHEDULE["spec"]))
    spec["template"]["ttl"] = "720h"
    velero.patch(f"{V}/schedules/{SCHEDULE}", {"spec": spec})
    assert not checks()[("velero_schedule", T_SCHEDULE)].failed


def test_a_storage_location_unavailable_or_missing_fails(velero):
    velero.patch(f"{V}/backupstoragelocations/default/status", {"status": {
        "phase": "Unavailable", "message": "BackupStorageLocation \"default\" is unavailable: AccessDenied"}})
    r = checks()[("velero_storage_location", T_BSL)]
    assert r.failed and "BackupStorageLocation 'default' is Unavailable, not Available" in r.message, r.message
    assert "AccessDenied" in r.message
    r = checks(entry(storage_locations=["default", "dr-region"]))[("velero_storage_location",
                                                                   "velero/prod-k8s/dr-region")]
    assert r.failed and "BackupStorageLocation 'dr-region' does not exist" in r.message, r.message


def test_an_unreachable_api_is_one_failed_check_not_a_traceback(velero, monkeypatch):
    dead = {**velero.kubeconfig(), "clusters": [{"name": "emulator", "cluster": {"server": "http://127.0.0.1:9"}}]}
    monkeypatch.setenv("AIRFLOW_CONN_K8S_DEAD", json.dumps({"conn_type": "kubernetes",
                                                            "extra": {"kube_config": json.dumps(dead)}}))
    [r] = checks(entry(conn_id="k8s_dead")).values()
    assert r.failed and r.name == "velero_connection" and r.target == "velero/prod-k8s", r.line()
    assert "could not be reached through connection 'k8s_dead' (http://127.0.0.1:9)" in r.message, r.message


def test_what_is_not_there_reads_as_missing_and_other_errors_raise_naming_the_call(velero):
    """The hook's 404s (a Velero object, a namespace, read or deleted) are answers, not errors; a 403 is an
    error naming what was asked and the grant."""
    from drdrill.core.errors import DrillError
    from drdrill.hooks.velero import BACKUPS, VeleroHook

    hook = VeleroHook(kubernetes_conn_id="k8s_emulator", velero_namespace=NS)
    assert hook.get(BACKUPS, "no-such-backup") is None and hook.delete(BACKUPS, "no-such-backup") is False
    assert hook.namespace_exists("no-such-namespace") is False and hook.delete_namespace("no-such-namespace") is False
    assert hook.get(BACKUPS, "daily-production-backup-20260101020000") is not None
    velero.emulator.forbidden.add(("GET", rf"{V}/backups/no-such-backup"))
    with pytest.raises(DrillError, match="reading Backup 'no-such-backup' in 'velero': the Kubernetes API answered 403"
                       ):
        hook.get(BACKUPS, "no-such-backup")


def test_a_forbidden_read_fails_that_check_naming_the_grant(velero):
    velero.emulator.forbidden.add(("GET", rf"{V}/backups"))
    res = checks()
    r = res[("velero_backup", T_SCHEDULE)]
    assert r.failed and "403" in r.message and "grant get/list/create/delete" in r.message, r.message
    assert not res[("velero_schedule", T_SCHEDULE)].failed  # the other checks still ran


# -- the restore test ----------------------------------------------------------------------------------

@pytest.fixture
def restore_dag(velero, airflow_db):
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    bag = DagBag(dag_folder=str(ROOT / "dags" / f"{DAG_ID}.py"))
    assert bag.import_errors == {}
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, bundle_name="dags-folder", bundle_version=None)
    return bag.get_dag(DAG_ID)


def _run(dag, **conf):
    from drdrill.core.estate import load_estate

    dr = dag.test(run_conf={"velero": "prod-k8s", "backup": None, "dry_run": False, **conf})
    return dr, journal(load_estate(), DAG_ID, dr.run_id)


def _restored_namespaces(k8s) -> list[str]:
    return sorted(n["metadata"]["name"] for n in k8s.get("/api/v1/namespaces")["items"]
                  if n["metadata"]["name"].startswith("production-restored"))


def test_the_restore_test_restores_compares_waits_ready_and_deletes_everything(restore_dag, velero, velero_ctl):
    velero_ctl.ready_after = 5  # the restored pods turn Ready well after the Restore completed
    dr, doc = _run(restore_dag)
    assert dr.state == "success" and doc["status"] == "passed", failures(doc)
    plan = doc["plan"]
    [target_ns] = plan["target_namespaces"]
    assert target_ns.startswith("production-restored-") and len(target_ns) == len("production-restored-") + 6
    assert plan["backup"] == "daily-production-backup-20260102020000" and plan["backup_items"] == 40
    assert doc["restore"]["phase"] == "Completed" and doc["restore"]["items_restored"] == 8  # ns + 2x(dep, rs) + 3 pods
    results = {r["name"]: r for r in doc["results"]}
    assert results["velero_restore_items"]["status"] == "pass"
    assert "8 item(s) restored of its 8 (the backup holds 40" in results["velero_restore_items"]["message"]
    ready = results["velero_restore_ready"]
    assert ready["status"] == "pass" and "2 restored workload(s) Ready" in ready["message"]
    assert ready["details"]["polls"] >= 2  # the pods were seen not Ready first: their delay was waited for
    assert {w["name"] for w in ready["details"]["workloads"][target_ns]} == {"web", "postgres"}
    # What the cluster holds afterwards: no restored namespace, no Restore; production untouched.
    assert doc["teardown"]["namespaces_deleted"] == [target_ns] and doc["teardown"]["restore_deleted"]
    assert _restored_namespaces(velero) == [] and velero.get(f"{V}/restores")["items"] == []
    assert target_ns in velero.emulator.deleted_namespaces
    assert len(velero.get("/apis/apps/v1/namespaces/production/deployments")["items"]) == 2
    assert [s["status"] for s in doc["steps"]] == ["success"] * 5


def test_a_restore_that_never_completes_fails_with_the_bound_and_is_still_torn_down(restore_dag, velero,
                                                                                     velero_ctl, tmp_path,
                                                                                     monkeypatch):
    bounds(tmp_path, monkeypatch, timeout_seconds=2)
    velero_ctl.mode = "never"
    t0 = time.monotonic()
    dr, doc = _run(restore_dag)
    assert dr.state == "failed" and doc["status"] == "failed"
    assert "not Completed within 2 s (timeout_seconds; last phase: none yet)" in step(doc, "restore")["error"]
    assert step(doc, "teardown")["status"] == "success" and step(doc, "verify")["status"] == "not run"
    [target_ns] = doc["plan"]["target_namespaces"]
    assert doc["teardown"]["namespaces_deleted"] == [target_ns] and doc["teardown"]["restore_deleted"]
    assert _restored_namespaces(velero) == [] and velero.get(f"{V}/restores")["items"] == []
    assert time.monotonic() - t0 < 40


def test_a_partially_failed_restore_fails_with_its_counts(restore_dag, velero, velero_ctl):
    velero_ctl.mode = "partial"
    dr, doc = _run(restore_dag)
    assert dr.state == "failed"
    assert "is PartiallyFailed: 2 error(s), 3 warning(s)" in step(doc, "restore")["error"], failures(doc)
    assert _restored_namespaces(velero) == [] and velero.get(f"{V}/restores")["items"] == []


def test_restored_workloads_never_ready_fail_verify_naming_them(restore_dag, velero, velero_ctl, tmp_path,
                                                                monkeypatch):
    bounds(tmp_path, monkeypatch, ready_timeout_seconds=2)
    velero_ctl.ready_after = None
    dr, doc = _run(restore_dag)
    assert dr.state == "failed"
    assert "restored workloads not Ready within 2 s" in failures(doc) and "Deployment/web 0/2 pods Ready" in \
        failures(doc), failures(doc)
    assert {r["name"]: r["status"] for r in doc["results"] if r["name"].startswith("velero_")} == {
        "velero_restore_items": "pass", "velero_restore_ready": "fail"}
    assert _restored_namespaces(velero) == []


def test_a_mapping_onto_production_is_refused_before_anything_is_created(restore_dag, velero, tmp_path, monkeypatch):
    from drdrill.core.errors import PreflightError
    from drdrill.drills.backups import velero_restore

    before = sorted(n["metadata"]["name"] for n in velero.get("/api/v1/namespaces")["items"])
    bounds(tmp_path, monkeypatch, namespace_mappings={"production": "production"})
    dr, doc = _run(restore_dag)
    assert dr.state == "failed"
    err = step(doc, "preflight")["error"]
    assert "maps 'production' onto 'production', a namespace a restore may never write into" in err, err
    assert {s["task_id"]: s["status"] for s in doc["steps"]}["prepare"] == "not run"
    assert sorted(n["metadata"]["name"] for n in velero.get("/api/v1/namespaces")["items"]) == before
    assert velero.get(f"{V}/restores")["items"] == []
    # A namespace the schedule backs up (not the source) is refused too.
    bounds(tmp_path, monkeypatch, namespace_mappings={"production": "monitoring"})
    with pytest.raises(PreflightError, match="maps 'production' onto 'monitoring', a namespace a restore may never"):
        velero_restore.preflight({"velero": "prod-k8s"}, "manual__r2")


def test_an_existing_target_namespace_is_refused(velero):
    from drdrill.core.errors import PreflightError
    from drdrill.drills.backups import velero_restore

    existing = f"production-restored-{velero_restore.short_run_id('manual__r1')}"
    _ns(velero, existing)  # not drdrill's (no label): never deleted, never written into
    try:
        with pytest.raises(PreflightError, match=f"the restored namespace '{existing}' already exists"):
            velero_restore.preflight({"velero": "prod-k8s"}, "manual__r1")
        assert velero.get(f"/api/v1/namespaces/{existing}") is not None
    finally:
        velero.delete(f"/api/v1/namespaces/{existing}")


def test_a_killed_runs_leftovers_are_deleted_by_the_next_run_and_production_never(restore_dag, velero):
    labels = {LABEL: "prod-k8s", "drdrill.io/run": "abc123"}
    _ns(velero, "production-restored-abc123", labels)
    put(velero, "restores", {"metadata": {"name": "drdrill-prod-k8s-abc123", "labels": labels},
                             "spec": {"backupName": "x"}, "status": {"phase": "InProgress"}})
    left = {"restores": ["drdrill-prod-k8s-abc123"], "namespaces": ["production-restored-abc123"]}
    # A dry run walks the graph, names the leftovers and creates or deletes nothing.
    restores_before = [r["metadata"]["uid"] for r in velero.get(f"{V}/restores")["items"]]
    dr, doc = _run(restore_dag, dry_run=True)
    assert dr.state == "success", failures(doc)
    assert doc["plan"]["leftovers"] == left and doc["plan"]["cleaned"] == {"restores": [], "namespaces": []}
    assert doc["prepare"]["namespaces"] == [] and doc["restore"]["dry_run"] and doc["teardown"]["dry_run"]
    assert _restored_namespaces(velero) == ["production-restored-abc123"]
    assert [r["metadata"]["uid"] for r in velero.get(f"{V}/restores")["items"]] == restores_before
    # The next real run (restoring an older backup, named by the param) deletes them first.
    dr, doc = _run(restore_dag, backup="daily-production-backup-20260101020000")
    assert dr.state == "success", failures(doc)
    assert doc["plan"]["cleaned"] == left and doc["plan"]["backup"] == "daily-production-backup-20260101020000"
    assert _restored_namespaces(velero) == [] and velero.get(f"{V}/restores")["items"] == []
    assert velero.get("/api/v1/namespaces/production") is not None


def test_a_labelled_protected_namespace_is_never_a_leftover(velero):
    from drdrill.drills.backups import velero_restore
    from drdrill.hooks.velero import VeleroHook

    _ns(velero, "monitoring-x", {LABEL: "prod-k8s"})
    try:
        hook = VeleroHook(kubernetes_conn_id="k8s_emulator")
        left = velero_restore.leftovers(entry(), hook, protected={"monitoring-x"})
        assert left["namespaces"] == []
    finally:
        velero.delete("/api/v1/namespaces/monitoring-x")


def test_the_backup_param_must_name_a_completed_backup(velero):
    from drdrill.core.errors import PreflightError
    from drdrill.drills.backups import velero_restore

    put(velero, "backups", backup("bad-one", phase="PartiallyFailed", hours_ago=1))
    with pytest.raises(PreflightError, match="Backup 'bad-one' is PartiallyFailed, not Completed"):
        velero_restore.preflight({"velero": "prod-k8s", "backup": "bad-one"}, "manual__r3")
    with pytest.raises(PreflightError, match="Backup 'nope' does not exist in namespace 'velero'"):
        velero_restore.preflight({"velero": "prod-k8s", "backup": "nope"}, "manual__r3")
    with pytest.raises(PreflightError, match="velero entry 'other' is not in the estate's backups.velero"):
        velero_restore.preflight({"velero": "other"}, "manual__r3")


def test_the_restore_trigger_fires_finished_timeout_and_error(velero, velero_ctl, monkeypatch):
    import asyncio

    from drdrill.triggers.velero import VeleroRestoreTrigger

    async def first(t):
        return (await anext(t.run())).payload

    velero_ctl.mode = "never"
    put(velero, "restores", {"metadata": {"name": "r-trigger"}, "spec": {"backupName": "b"}})
    kw = {"conn_id": "k8s_emulator", "velero_namespace": NS, "restore_name": "r-trigger",
          "created_at": datetime.now(UTC).isoformat(), "timeout_seconds": 1.0, "poll_interval": 0.1,
          "payload": {"k": 1}}
    path, args = VeleroRestoreTrigger(**kw).serialize()
    assert path == "drdrill.triggers.velero.VeleroRestoreTrigger" and args == kw
    ev = asyncio.run(first(VeleroRestoreTrigger(**args)))
    assert ev["status"] == "timeout" and ev["restore"] == {} and ev["seconds"] >= 1 and ev["payload"] == {"k": 1}
    velero.patch(f"{V}/restores/r-trigger/status", {"status": {"phase": "Completed",
                                                               "progress": {"itemsRestored": 3, "totalItems": 3}}})
    ev = asyncio.run(first(VeleroRestoreTrigger(**{**args, "timeout_seconds": 10})))
    assert ev["status"] == "finished" and ev["restore"]["phase"] == "Completed"
    ev = asyncio.run(first(VeleroRestoreTrigger(**{**args, "restore_name": "gone", "timeout_seconds": 10})))
    assert ev["status"] == "error" and "Restore 'gone' disappeared" in ev["message"]
    dead = {**velero.kubeconfig(), "clusters": [{"name": "emulator", "cluster": {"server": "http://127.0.0.1:9"}}]}
    monkeypatch.setenv("AIRFLOW_CONN_K8S_DEAD", json.dumps({"conn_type": "kubernetes",
                                                            "extra": {"kube_config": json.dumps(dead)}}))
    ev = asyncio.run(first(VeleroRestoreTrigger(**{**args, "conn_id": "k8s_dead", "timeout_seconds": 10})))
    assert ev["status"] == "error" and "through connection 'k8s_dead' failed 3 time(s)" in ev["message"], ev
