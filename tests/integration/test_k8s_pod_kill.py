"""The Kubernetes pod kill against kmock's emulator over real HTTP (tests/k8s_emulator.py).

The hook, the trigger and the operator talk to the emulator through the cncf-kubernetes provider's
hooks and an Airflow ``kubernetes`` connection (a kubeconfig with a plain-HTTP server). The test
plays the ReplicaSet controller and the kubelet: killed pods are re-created and turn Ready after a
delay, or never. The operator runs in ``dag.test()``, which runs the deferred trigger inline. No
PostgreSQL sandbox is needed.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from integration.helpers import test_dag

DAG_ID = "test_k8s_pod_kill"


@pytest.fixture
def kill_dag(airflow_db, k8s):
    return test_dag("k8s_pod_kill.py", DAG_ID)


DEFAULTS = {"max_victims": 1, "min_pod_age_seconds": 0, "seed": None, "heal_timeout_seconds": 30,
            "grace_period_seconds": 0, "dry_run": False}


def _run(dag, **conf):
    """One run with every param given: in-process runs share the DAG object, and one run's params
    would otherwise leak into the next."""
    dr = dag.test(run_conf={**DEFAULTS, **conf})
    [ti] = dr.get_task_instances()
    return ti, ti.xcom_pull(task_ids="kill"), ti.xcom_pull(task_ids="kill", key="drill_step")


def _uids(pods):
    return sorted(p["metadata"]["uid"] for p in pods)


# -- the hook -------------------------------------------------------------------------------------

def test_pods_are_only_those_the_selector_matches_even_when_the_server_ignores_it(k8s, k8s_namespace):
    from drdrill.hooks.kubernetes import ChaosKubernetesHook

    ns = k8s_namespace
    k8s.create_deployment(ns, "web", labels={"app": "web", "tier": "front"}, replicas=3)
    k8s.create_deployment(ns, "db", labels={"app": "db", "tier": "back"}, replicas=2)
    hook = ChaosKubernetesHook(kubernetes_conn_id="k8s_emulator")
    assert hook.namespace_exists(ns) and not hook.namespace_exists("no-such-namespace")
    assert [p.name for p in hook.pods(ns, "app=web")] == ["web-rs-0", "web-rs-1", "web-rs-2"]
    assert [p.name for p in hook.pods(ns, "tier in (back),app!=web")] == ["db-rs-0", "db-rs-1"]
    assert hook.pods(ns, "app=nothing") == []
    # A server (or proxy) that drops ?labelSelector= answers with every pod: the hook still filters.
    k8s.emulator.honour_selectors = False
    assert len(k8s.pods(ns, "app=web")) == 5
    assert [p.name for p in hook.pods(ns, "app=web")] == ["web-rs-0", "web-rs-1", "web-rs-2"]
    p = hook.pods(ns, "app=db")[0]
    assert p.ready and p.phase == "Running" and not p.deleting and p.owner_kind == "ReplicaSet"
    assert p.owner_name == "db-rs" and p.uid and p.created_at.tzinfo is not None and p.node_name == "node-a"
    assert hook.desired_replicas(ns, "ReplicaSet", "db-rs") == 2  # through its Deployment
    k8s.patch(f"/apis/apps/v1/namespaces/{ns}/deployments/db", {"spec": {"replicas": 4}})
    assert hook.desired_replicas(ns, "ReplicaSet", "db-rs") == 4  # the Deployment's, not the ReplicaSet's


def test_the_workload_behind_a_pod_and_its_replicas(k8s, k8s_namespace):
    from drdrill.core.errors import DrillError
    from drdrill.hooks.kubernetes import ChaosKubernetesHook

    ns = k8s_namespace
    made = k8s.create_deployment(ns, "web", labels={"app": "web"}, replicas=3)
    dep = made["deployment"]["metadata"]
    owner = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": dep["uid"], "controller": True}]
    spec = {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {}}
    k8s.post(f"/apis/apps/v1/namespaces/{ns}/replicasets",  # a rollout's second ReplicaSet
             {"kind": "ReplicaSet", "metadata": {"name": "web-rs2", "ownerReferences": owner}, "spec": spec})
    k8s.post(f"/apis/apps/v1/namespaces/{ns}/replicasets", {"kind": "ReplicaSet", "metadata": {"name": "bare"},
                                                            "spec": {**spec, "replicas": 2}})
    k8s.post(f"/apis/apps/v1/namespaces/{ns}/statefulsets", {"kind": "StatefulSet", "metadata": {"name": "pg"},
                                                             "spec": {**spec, "replicas": 5}})
    hook = ChaosKubernetesHook(kubernetes_conn_id="k8s_emulator")
    assert hook.workload(ns, "ReplicaSet", "web-rs") == ("Deployment", "web", 3)
    assert hook.workload(ns, "ReplicaSet", "web-rs2") == ("Deployment", "web", 3)
    assert hook.workload(ns, "ReplicaSet", "bare") == ("ReplicaSet", "bare", 2)
    assert hook.workload(ns, "StatefulSet", "pg") == ("StatefulSet", "pg", 5)
    with pytest.raises(DrillError, match="owned by a Job .* no replica count"):
        hook.workload(ns, "Job", "backup")
    with pytest.raises(DrillError, match="reading StatefulSet 'gone'.* 404"):
        hook.workload(ns, "StatefulSet", "gone")


def test_blocking_pdbs_are_those_selecting_the_pod_with_no_disruption_allowed(k8s, k8s_namespace):
    from drdrill.hooks.kubernetes import ChaosKubernetesHook

    ns = k8s_namespace
    k8s.create_pdb(ns, "web-zero", match_labels={"app": "web"}, disruptions_allowed=0)
    k8s.create_pdb(ns, "web-one", match_labels={"app": "web"}, disruptions_allowed=1)
    k8s.create_pdb(ns, "db-zero", match_labels={"app": "db"}, disruptions_allowed=0)
    k8s.create_pdb(ns, "front-zero", match_expressions=[{"key": "tier", "operator": "In", "values": ["front"]}],
                   disruptions_allowed=0)
    hook = ChaosKubernetesHook(kubernetes_conn_id="k8s_emulator")
    assert hook.blocking_pdbs(ns, {"app": "web", "tier": "front"}) == [("front-zero", 0), ("web-zero", 0)]
    assert hook.blocking_pdbs(ns, {"app": "api"}) == []


def test_the_heal_status_needs_each_replacement_itself_ready(k8s, k8s_namespace):
    from drdrill.hooks.kubernetes import AsyncChaosKubernetesHook, ChaosKubernetesHook

    ns = k8s_namespace
    made = k8s.create_deployment(ns, "web", labels={"app": "web"}, replicas=2)
    sync = ChaosKubernetesHook(kubernetes_conn_id="k8s_emulator")
    victim = sync.pods(ns, "app=web")[0]
    killed_at = datetime.now(UTC).isoformat()
    hook = AsyncChaosKubernetesHook(kubernetes_conn_id="k8s_emulator")
    with k8s.paused():  # the test re-creates the pod itself, not Ready
        assert sync.delete_pod(ns, victim.name, 0) and not sync.delete_pod(ns, victim.name, 0)
        st = asyncio.run(hook.heal_status(ns, "app=web", [victim.uid], killed_at, 2))
        assert not st["healed"] and st["replacements"] == []
        assert st["missing"] == ["1 of 1 victim(s) not replaced yet (no new pod)", "1/2 pods Ready"]
        k8s.create_pod(ns, "web-new", labels={"app": "web"}, owner=made["replicaset"], ready=False)
        st = asyncio.run(hook.heal_status(ns, "app=web", [victim.uid], killed_at, 2))
        assert not st["healed"] and st["victims"][0]["gone"] and st["ready_count"] == 1
        [repl] = st["replacements"]
        assert repl["name"] != victim.name and not repl["ready"]
        assert st["missing"] == [f"replacement {repl['name']} not Ready", "1/2 pods Ready"]
        k8s.set_pod_ready(ns, repl["name"], True)
        st = asyncio.run(hook.heal_status(ns, "app=web", [victim.uid], killed_at, 2))
        assert st["healed"] and st["ready_replacements"] == [repl["name"]] and st["missing"] == []


def test_the_trigger_fires_healed_with_its_times_and_error_when_the_api_fails(k8s, k8s_namespace, monkeypatch):
    from drdrill.hooks.kubernetes import ChaosKubernetesHook
    from drdrill.triggers.kubernetes import PodHealedTrigger

    ns = k8s_namespace
    k8s.create_deployment(ns, "web", labels={"app": "web"}, replicas=2)
    hook = ChaosKubernetesHook(kubernetes_conn_id="k8s_emulator")
    victim = hook.pods(ns, "app=web")[1]
    killed_at = datetime.now(UTC).isoformat()
    hook.delete_pod(ns, victim.name, 0)
    kw = {"conn_id": "k8s_emulator", "namespace": ns, "selector": "app=web", "victim_uids": [victim.uid],
          "killed_at": killed_at, "desired": 2, "timeout_seconds": 10, "poll_interval": 0.1, "payload": {"k": 1}}
    trig = PodHealedTrigger(**kw)
    path, args = trig.serialize()
    assert path == "drdrill.triggers.kubernetes.PodHealedTrigger" and args == kw

    async def first(t):
        return (await anext(t.run())).payload

    ev = asyncio.run(first(PodHealedTrigger(**args)))
    assert ev["status"] == "healed" and ev["payload"] == {"k": 1} and ev["missing"] == []
    assert 0 < ev["detect_seconds"] <= ev["recover_seconds"] and ev["ready_count"] == 2
    assert ev["replacements"] and victim.name not in ev["replacements"]
    # The cluster unreachable while waiting: an error event naming it, never a heal.
    dead = {**k8s.kubeconfig(), "clusters": [{"name": "emulator", "cluster": {"server": "http://127.0.0.1:9"}}]}
    monkeypatch.setenv("AIRFLOW_CONN_K8S_DEAD", json.dumps({"conn_type": "kubernetes",
                                                            "extra": {"kube_config": json.dumps(dead)}}))
    ev = asyncio.run(first(PodHealedTrigger(**{**kw, "conn_id": "k8s_dead"})))
    assert ev["status"] == "error" and "checking pods 'app=web'" in ev["message"], ev


# -- the operator, through dag.test() (the trigger runs inline) -----------------------------------

def test_a_killed_pod_heals_and_the_times_are_measured(kill_dag, k8s, k8s_namespace):
    ns = k8s_namespace
    made = k8s.create_deployment(ns, "web", labels={"app": "web"}, replicas=3)
    others = k8s.create_deployment(ns, "db", labels={"app": "db"}, replicas=2)
    k8s.controller.ready_after = 0.5
    before = len(k8s.deleted_pods())
    ti, out, step = _run(kill_dag, namespace=ns, selector="app=web", seed=7)
    assert str(ti.state) == "success", step
    assert step["status"] == "success"
    [victim] = out["victims"]
    assert victim["name"] in {p["metadata"]["name"] for p in made["pods"]} and out["seed"] == 7
    assert out["healed"] and out["desired"] == 3
    assert 0 < out["detect_seconds"] <= out["recover_seconds"]
    assert out["recover_seconds"] >= 0.5  # the kubelet's delay was really waited for
    # What the cluster holds: only the victim was deleted; its replacement is itself Ready.
    assert [p["metadata"]["uid"] for p in k8s.deleted_pods()[before:]] == [victim["uid"]]
    pods = {p["metadata"]["name"]: p for p in k8s.pods(ns, "app=web")}
    [repl] = out["replacements"]
    assert victim["name"] not in pods and repl in pods
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in pods[repl]["status"]["conditions"])
    assert _uids(k8s.pods(ns, "app=db")) == _uids(others["pods"])  # the other workload untouched


def test_a_graceful_kill_heals_while_the_victim_is_still_terminating(kill_dag, k8s, k8s_namespace):
    ns = k8s_namespace
    k8s.create_deployment(ns, "web", labels={"app": "web"}, replicas=2)
    k8s.emulator.pod_termination_seconds = 120  # the victim's containers take long to stop
    ti, out, step = _run(kill_dag, namespace=ns, selector="app=web", grace_period_seconds=45)
    assert str(ti.state) == "success", step
    [victim] = out["victims"]
    terminating = {p["metadata"]["name"]: p for p in k8s.pods(ns, "app=web")}[victim["name"]]
    assert terminating["metadata"]["deletionTimestamp"] and terminating["metadata"]["deletionGracePeriodSeconds"] == 45
    assert out["healed"] and len(out["replacements"]) == 1


def test_a_replacement_that_never_gets_ready_fails_although_readyreplicas_says_all_ready(kill_dag, k8s,
                                                                                         k8s_namespace):
    ns = k8s_namespace
    k8s.create_deployment(ns, "web", labels={"app": "web"}, replicas=3)
    k8s.controller.set(ready_after=None, stale_status=True)  # re-created, never Ready; status frozen
    ti, _, step = _run(kill_dag, namespace=ns, selector="app=web", heal_timeout_seconds=3)
    assert str(ti.state) == "failed"
    assert step["status"] == "failed" and "not healed within 3 s" in step["error"], step
    assert "not Ready" in step["error"] and "2/3 pods Ready" in step["error"], step
    rs = k8s.get(f"/apis/apps/v1/namespaces/{ns}/replicasets/web-rs")
    assert rs["status"]["readyReplicas"] == 3  # the stale count the drill did not trust


def test_a_pod_nothing_recreates_fails_naming_what_is_missing(kill_dag, k8s, k8s_namespace):
    ns = k8s_namespace
    k8s.create_deployment(ns, "web", labels={"app": "web"}, replicas=2)
    k8s.controller.set(recreate=False)
    ti, _, step = _run(kill_dag, namespace=ns, selector="app=web", heal_timeout_seconds=2)
    assert str(ti.state) == "failed"
    assert "not healed within 2 s" in step["error"] and "not replaced yet" in step["error"], step


def test_the_same_seed_picks_the_same_victim(kill_dag, k8s, k8s_namespace):
    ns = k8s_namespace
    k8s.create_deployment(ns, "web", labels={"app": "web"}, replicas=5)

    def victim(seed):
        return _run(kill_dag, namespace=ns, selector="app=web", seed=seed, dry_run=True)[1]["victims"][0]["name"]

    first = victim(1)
    assert victim(1) == first  # replayed from the journalled seed
    assert victim(2) != first  # (seeds 1 and 2 pick web-rs-1 and web-rs-0 among the five)


def test_dry_run_deletes_nothing(kill_dag, k8s, k8s_namespace):
    ns = k8s_namespace
    made = k8s.create_deployment(ns, "web", labels={"app": "web"}, replicas=3)
    bare = k8s.create_pod(ns, "web-debug", labels={"app": "web"}, age_seconds=3600)  # no controller
    before = len(k8s.deleted_pods())
    ti, out, step = _run(kill_dag, namespace=ns, selector="app=web", max_victims=2, dry_run=True)
    assert str(ti.state) == "success" and step["status"] == "success"
    assert out["dry_run"] and len(out["victims"]) == 2 and isinstance(out["seed"], int)
    assert out["candidates"] == ["web-rs-0", "web-rs-1", "web-rs-2"]  # the bare pod would never come back
    assert out["desired"] == 3 and out["workloads"] == ["Deployment/web"]
    assert len(k8s.deleted_pods()) == before
    assert _uids(k8s.pods(ns, "app=web")) == _uids([*made["pods"], bare])


def test_pods_younger_than_the_minimum_age_are_not_killed(kill_dag, k8s, k8s_namespace):
    ns = k8s_namespace
    made = k8s.create_deployment(ns, "web", labels={"app": "web"}, replicas=2, age_seconds=None)  # just born
    ti, _, step = _run(kill_dag, namespace=ns, selector="app=web", min_pod_age_seconds=600, dry_run=True)
    assert str(ti.state) == "failed"
    assert "younger than the minimum age 600 s" in step["error"] and "web-rs-0" in step["error"], step
    # One old pod beside young ones: it is the only candidate, whatever the seed.
    old = k8s.create_pod(ns, "web-old", labels={"app": "web"}, owner=made["replicaset"], age_seconds=3600)
    for seed in (1, 2, 3):
        ti, out, _ = _run(kill_dag, namespace=ns, selector="app=web", min_pod_age_seconds=600, seed=seed,
                          dry_run=True)
        assert out["candidates"] == ["web-old"] and out["victims"][0]["uid"] == old["metadata"]["uid"]


def test_a_workload_with_no_ready_pod_is_not_hit(kill_dag, k8s, k8s_namespace):
    k8s.create_deployment(k8s_namespace, "api", labels={"app": "api"}, replicas=2, ready=False)
    ti, _, step = _run(kill_dag, namespace=k8s_namespace, selector="app=api")
    assert str(ti.state) == "failed"
    assert "api-rs-0: phase Pending, not Running" in step["error"] and "never hits a workload" in step["error"], step
    assert not [p for p in k8s.deleted_pods() if p["metadata"]["namespace"] == k8s_namespace]


def test_a_pdb_allowing_no_disruption_skips_and_names_the_pdb(kill_dag, k8s, k8s_namespace):
    ns = k8s_namespace
    made = k8s.create_deployment(ns, "web", labels={"app": "web"}, replicas=3)
    k8s.create_pdb(ns, "web-budget", match_labels={"app": "web"}, disruptions_allowed=0)
    before = len(k8s.deleted_pods())
    ti, _, step = _run(kill_dag, namespace=ns, selector="app=web")
    assert str(ti.state) == "skipped"
    assert step["status"] == "skipped" and "PodDisruptionBudget web-budget" in step["reason"], step
    assert len(k8s.deleted_pods()) == before and _uids(k8s.pods(ns, "app=web")) == _uids(made["pods"])


def test_a_selector_matching_nothing_is_refused_naming_it(kill_dag, k8s, k8s_namespace):
    k8s.create_deployment(k8s_namespace, "web", labels={"app": "web"}, replicas=1)
    ti, _, step = _run(kill_dag, namespace=k8s_namespace, selector="app=wbe")
    assert str(ti.state) == "failed"
    assert "selector 'app=wbe' matches no pod" in step["error"] and "fix the selector" in step["error"], step


def test_a_malformed_or_empty_selector_is_refused(kill_dag, k8s, k8s_namespace):
    ti, _, step = _run(kill_dag, namespace=k8s_namespace, selector="app==(web")
    assert str(ti.state) == "failed" and "selector" in step["error"] and "does not parse" in step["error"], step
    ti, _, step = _run(kill_dag, namespace=k8s_namespace, selector=" ")
    assert str(ti.state) == "failed" and "selector is empty" in step["error"], step
    ti, _, step = _run(kill_dag, namespace=k8s_namespace, selector="app=web", max_victims=0)
    assert str(ti.state) == "failed" and "max_victims must be at least 1, got 0" in step["error"], step


def test_rbac_a_role_confined_to_its_namespace_works_and_a_missing_grant_is_named(kill_dag, k8s, k8s_namespace):
    ns = k8s_namespace
    made = k8s.create_deployment(ns, "web", labels={"app": "web"}, replicas=2)
    k8s.emulator.forbidden.add(("GET", r"/api/v1/namespaces/[^/]+"))  # no ClusterRole to read namespaces
    ti, out, step = _run(kill_dag, namespace=ns, selector="app=web", dry_run=True)
    assert str(ti.state) == "success" and out["victims"], step
    k8s.emulator.forbidden.add(("GET", rf"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets"))
    ti, _, step = _run(kill_dag, namespace=ns, selector="app=web")
    assert str(ti.state) == "failed"
    assert "listing PodDisruptionBudgets" in step["error"] and "403" in step["error"], step
    assert "connection 'k8s_emulator'" in step["error"] and "poddisruptionbudgets" in step["error"], step
    assert _uids(k8s.pods(ns, "app=web")) == _uids(made["pods"])  # nothing killed without the PDB check
    k8s.emulator.forbidden = {("DELETE", rf"/api/v1/namespaces/{ns}/pods/.*")}
    ti, _, step = _run(kill_dag, namespace=ns, selector="app=web")
    assert str(ti.state) == "failed"
    assert "deleting pod 'web-rs-" in step["error"] and "403" in step["error"] and "delete on pods" in step["error"]
    assert _uids(k8s.pods(ns, "app=web")) == _uids(made["pods"])


def test_an_unknown_namespace_is_refused(kill_dag, k8s):
    ti, _, step = _run(kill_dag, namespace="no-such-namespace", selector="app=web")
    assert str(ti.state) == "failed"
    assert "namespace 'no-such-namespace' does not exist" in step["error"], step
