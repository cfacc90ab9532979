"""Pods of a Kubernetes workload for chaos drills: list by selector, pick victims, delete, watch the heal.

Built on the cncf-kubernetes provider: `ChaosKubernetesHook` is its `KubernetesHook` (an Airflow
``kubernetes`` connection: kubeconfig, in-cluster or a kubeconfig path) and `AsyncChaosKubernetesHook`
its `AsyncKubernetesHook` (the triggerer's half). Nothing here reads the estate: every call takes the
namespace, selector and workload explicitly.

A label selector is matched twice: by the API server (``labelSelector=``) and again here, by
`selector_matches`, so a server or proxy that ignores the parameter can never widen the blast radius
to every pod of the namespace.
"""

from __future__ import annotations

import random
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook, KubernetesHook

from drdrill.core.errors import DrillError, PreflightError

# --------------------------------------------------------------------------------------------------
# Label selectors (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/)

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_KEY = re.compile(rf"({_NAME}(\.{_NAME})*/)?{_NAME}")
_VALUE = re.compile(rf"({_NAME})?")


@dataclass(frozen=True)
class Requirement:
    """One requirement of a label selector: ``op`` is ``=``, ``!=``, ``in``, ``notin``, ``exists`` or ``!``."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        match self.op:
            case "=":
                return present and labels[self.key] == self.values[0]
            case "!=":
                return not present or labels[self.key] != self.values[0]
            case "in":
                return present and labels[self.key] in self.values
            case "notin":
                return not present or labels[self.key] not in self.values
            case "exists":
                return present
            case "!":
                return not present
        raise ValueError(f"unknown selector operator {self.op!r}")


def _split(selector: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in selector:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [*parts, cur]


def _bad(selector: str, part: str, why: str) -> ValueError:
    return ValueError(f"label selector {selector!r}: {part.strip()!r} {why}; write requirements like "
                      f"'app=web', 'tier!=db', 'env in (prod,staging)', 'release' or '!canary', comma-separated")


def parse_selector(selector: str) -> list[Requirement]:
    """Parse a label selector string (equality- and set-based, as kubectl takes it); ``""`` matches all.

    Raises ValueError naming the requirement that does not parse.
    """
    reqs: list[Requirement] = []
    for part in _split(selector or ""):
        p = part.strip()
        if not p:
            if (selector or "").strip():
                raise _bad(selector, part, "is empty (a stray comma?)")
            continue
        if m := re.fullmatch(r"(\S+)\s+(in|notin)\s*\((.*)\)", p):
            key, op, values = m.group(1), m.group(2), tuple(v.strip() for v in m.group(3).split(","))
            if not values or any(not v for v in values):
                raise _bad(selector, part, "needs a non-empty value list")
        elif m := re.fullmatch(r"([^\s!=()]+)\s*(==|=|!=)\s*([^\s!=(),]*)", p):
            key, op, values = m.group(1), "!=" if m.group(2) == "!=" else "=", (m.group(3),)
        elif m := re.fullmatch(r"!\s*([^\s!=()]+)", p):
            key, op, values = m.group(1), "!", ()
        elif re.fullmatch(r"[^\s!=(),]+", p):
            key, op, values = p, "exists", ()
        else:
            raise _bad(selector, part, "does not parse")
        if not _KEY.fullmatch(key) or len(key.rsplit("/", 1)[-1]) > 63:
            raise _bad(selector, part, f"has an invalid label key {key!r}")
        for v in values:
            if not _VALUE.fullmatch(v) or len(v) > 63:
                raise _bad(selector, part, f"has an invalid label value {v!r}")
        reqs.append(Requirement(key, op, values))
    return reqs


def selector_from_spec(spec: Mapping[str, Any] | None) -> list[Requirement] | None:
    """A `LabelSelector` object (``matchLabels`` / ``matchExpressions``) as requirements.

    ``None`` (no selector) matches nothing; ``{}`` matches everything (policy/v1 PDB semantics).
    """
    if spec is None:
        return None
    reqs = [Requirement(k, "=", (str(v),)) for k, v in (spec.get("matchLabels") or spec.get("match_labels")
                                                         or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for e in spec.get("matchExpressions") or spec.get("match_expressions") or []:
        if e["operator"] not in ops:
            raise ValueError(f"selector operator {e['operator']!r} is not one of {sorted(ops)}")
        reqs.append(Requirement(e["key"], ops[e["operator"]], tuple(e.get("values") or ())))
    return reqs


def selector_matches(selector: str | Sequence[Requirement] | None, labels: Mapping[str, str] | None) -> bool:
    """Whether ``labels`` satisfy every requirement (a string is parsed; ``None`` matches nothing)."""
    if selector is None:
        return False
    reqs = parse_selector(selector) if isinstance(selector, str) else selector
    return all(r.matches(labels or {}) for r in reqs)


# --------------------------------------------------------------------------------------------------
# Pods


@dataclass(frozen=True)
class PodInfo:
    """What a chaos drill needs to know of one pod (from the sync or the async client's ``V1Pod``)."""

    name: str
    namespace: str
    uid: str
    created_at: datetime  # aware, UTC (the API server's whole seconds)
    ready: bool  # its own condition Ready == "True"
    phase: str
    deleting: bool  # metadata.deletionTimestamp is set
    labels: dict[str, str] = field(default_factory=dict)
    owner_kind: str | None = None  # the controller owner: ReplicaSet, StatefulSet, ...
    owner_name: str | None = None
    node_name: str | None = None
    ready_since: datetime | None = None  # the Ready condition's lastTransitionTime

    @classmethod
    def from_pod(cls, pod: Any) -> PodInfo:
        meta, status = pod.metadata, pod.status
        conds = (status.conditions if status else None) or []
        ready = next((c for c in conds if c.type == "Ready"), None)
        owners = meta.owner_references or []
        owner = next((o for o in owners if o.controller), owners[0] if owners else None)
        # No creationTimestamp (never from a real API server): taken as new, so never old enough to kill.
        created = _utc(meta.creation_timestamp) if meta.creation_timestamp else datetime.now(UTC)
        return cls(name=meta.name, namespace=meta.namespace, uid=meta.uid, created_at=created,
                   ready=bool(ready and ready.status == "True"), phase=(status.phase if status else None) or "Unknown",
                   deleting=meta.deletion_timestamp is not None, labels=dict(meta.labels or {}),
                   owner_kind=owner.kind if owner else None, owner_name=owner.name if owner else None,
                   node_name=pod.spec.node_name if pod.spec else None,
                   ready_since=_utc(ready.last_transition_time) if ready and ready.last_transition_time else None)

    def age_seconds(self, now: datetime) -> float:
        return (now - self.created_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """Primitives only (XCom, trigger events, journal)."""
        d = asdict(self)
        d["created_at"] = self.created_at.isoformat()
        d["ready_since"] = self.ready_since.isoformat() if self.ready_since else None
        return d


def _utc(t: datetime | str) -> datetime:
    if isinstance(t, str):
        t = datetime.fromisoformat(t.replace("Z", "+00:00"))
    return t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)


def ineligibility(pod: PodInfo, min_age_seconds: float, now: datetime) -> str | None:
    """Why ``pod`` may not be killed (``None``: it may): deleting, not Running, not Ready, too young,
    or no controller that would re-create it."""
    if pod.deleting:
        return "already being deleted"
    if pod.phase != "Running":
        return f"phase {pod.phase}, not Running"
    if not pod.ready:
        return "not Ready"
    if pod.age_seconds(now) < min_age_seconds:
        return f"{pod.age_seconds(now):.0f} s old, younger than the minimum age {min_age_seconds:g} s"
    if not pod.owner_kind:
        return "owned by no controller (nothing would re-create it)"
    return None


def eligible_pods(pods: Iterable[PodInfo], min_age_seconds: float, now: datetime | None = None) -> list[PodInfo]:
    """The pods a drill may kill: Running, Ready, not deleting, at least ``min_age_seconds`` old and owned
    by a controller (a bare pod would never come back)."""
    at = now or datetime.now(UTC)
    return [p for p in pods if ineligibility(p, float(min_age_seconds), at) is None]


def pick_victims(pods: Iterable[PodInfo], n: int, seed: int | str) -> list[PodInfo]:
    """``n`` pods (at most all of them) chosen by ``random.Random(seed)`` among ``pods`` sorted by name:
    the same pods and seed always give the same victims, so a journalled seed replays a run's choice."""
    candidates = sorted(pods, key=lambda p: (p.name, p.uid))
    return random.Random(seed).sample(candidates, min(max(int(n), 0), len(candidates)))


# --------------------------------------------------------------------------------------------------
# The heal: where the workload stands after the kill


def assess_heal(pods: Iterable[PodInfo], *, victim_uids: Sequence[str], killed_at: datetime | str,
                desired: int) -> dict[str, Any]:
    """Where the workload stands after the kill, from one listing of its pods (pure).

    A replacement is a pod that is not a victim and was created at or after ``killed_at`` (compared at
    the API server's whole-second resolution). The workload is ``healed`` when every victim is gone
    (or deleting), at least ``desired`` pods are Ready and not deleting, and there are at least as many
    Ready replacements as victims: each replacement's own Ready condition counts, never a workload's
    ``readyReplicas`` (which can be stale).

    Returns ``{"healed", "victims": [{"uid", "name", "gone", "deleting"}], "replacements": [PodInfo dicts],
    "ready_replacements", "ready_count", "desired", "missing": [what is not there yet]}``.
    """
    pods = list(pods)
    since = _utc(killed_at).replace(microsecond=0)
    by_uid = {p.uid: p for p in pods}
    victims = []
    for uid in victim_uids:
        p = by_uid.get(uid)
        victims.append({"uid": uid, "name": p.name if p else None, "gone": p is None or p.deleting,
                        "deleting": bool(p and p.deleting)})
    replacements = sorted((p for p in pods if p.uid not in set(victim_uids) and p.created_at >= since),
                          key=lambda p: p.created_at)
    ready_repl = [p for p in replacements if p.ready and not p.deleting]
    ready_count = sum(1 for p in pods if p.ready and not p.deleting)
    missing = [f"victim {v['name']} still running (not deleted)" for v in victims if not v["gone"]]
    if len(replacements) < len(victim_uids):
        missing.append(f"{len(victim_uids) - len(replacements)} of {len(victim_uids)} victim(s) not replaced yet "
                       f"(no new pod)")
    missing += [f"replacement {p.name} not Ready" for p in replacements if not p.ready or p.deleting]
    if ready_count < desired:
        missing.append(f"{ready_count}/{desired} pods Ready")
    healed = (all(v["gone"] for v in victims) and ready_count >= desired and len(ready_repl) >= len(victim_uids))
    return {"healed": healed, "victims": victims, "replacements": [p.to_dict() for p in replacements],
            "ready_replacements": [p.name for p in ready_repl], "ready_count": ready_count, "desired": int(desired),
            "missing": [] if healed else missing}


# --------------------------------------------------------------------------------------------------
# Hooks


def _api_error(e: Exception, what: str, conn_id: str | None) -> DrillError:
    status = getattr(e, "status", None)
    if status in (401, 403):
        return DrillError(f"{what}: the Kubernetes API answered {status} ({getattr(e, 'reason', '')}): the "
                          f"credentials of connection {conn_id!r} may not do this; grant the role list/get on pods, "
                          f"replicasets, deployments, statefulsets, poddisruptionbudgets and delete on pods")
    return DrillError(f"{what}: the Kubernetes API answered {status} {getattr(e, 'reason', '')}: "
                      f"{str(getattr(e, 'body', '') or e)[:300]}")


class ChaosKubernetesHook(KubernetesHook):
    """The provider's `KubernetesHook` with the calls a pod-kill drill makes (sync, in the worker).

    :param kubernetes_conn_id: Airflow ``kubernetes`` connection (kubeconfig, kube_config_path or in-cluster)
    """

    def __init__(self, kubernetes_conn_id: str | None = KubernetesHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(kubernetes_conn_id=kubernetes_conn_id, **kwargs)

    def namespace_exists(self, namespace: str) -> bool:
        """Whether the namespace exists. A role confined to its namespace may not read Namespace objects
        (cluster-scoped): a 403 is logged and taken as "exists", and the pod listing decides."""
        from kubernetes.client import ApiException

        try:
            self.core_v1_client.read_namespace(namespace)
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            if e.status == 403:
                self.log.warning("connection %s may not read namespace %s (403): cannot tell whether it exists; "
                                 "the pod listing decides", self.conn_id, namespace)
                return True
            raise _api_error(e, f"reading namespace {namespace!r}", self.conn_id) from e

    def pods(self, namespace: str, selector: str) -> list[PodInfo]:
        """Pods of ``namespace`` matching ``selector`` (by the server, then again here), sorted by name."""
        from kubernetes.client import ApiException

        reqs = parse_selector(selector)
        try:
            items = self.core_v1_client.list_namespaced_pod(namespace, label_selector=selector or None).items
        except ApiException as e:
            raise _api_error(e, f"listing pods {selector!r} in {namespace!r}", self.conn_id) from e
        return sorted((PodInfo.from_pod(p) for p in items if selector_matches(reqs, p.metadata.labels)),
                      key=lambda p: p.name)

    def workload(self, namespace: str, owner_kind: str, owner_name: str) -> tuple[str, str, int]:
        """The workload behind a pod's owner and its ``spec.replicas``: ``(kind, name, replicas)``. A
        ReplicaSet owned by a Deployment gives the Deployment (so the old and new ReplicaSets of a rollout
        are one workload); a bare ReplicaSet or a StatefulSet gives itself. Raises DrillError for another
        kind of owner (a Job, a DaemonSet...): it has no replica count to heal back to."""
        from kubernetes.client import ApiException

        apps = self.apps_v1_client
        try:
            if owner_kind == "ReplicaSet":
                rs = apps.read_namespaced_replica_set(owner_name, namespace)
                dep = next((o for o in rs.metadata.owner_references or [] if o.kind == "Deployment"), None)
                if dep is not None:
                    replicas = apps.read_namespaced_deployment(dep.name, namespace).spec.replicas
                    return "Deployment", dep.name, int(replicas or 0)
                return "ReplicaSet", owner_name, int(rs.spec.replicas or 0)
            if owner_kind == "StatefulSet":
                sts = apps.read_namespaced_stateful_set(owner_name, namespace)
                return "StatefulSet", owner_name, int(sts.spec.replicas or 0)
        except ApiException as e:
            raise _api_error(e, f"reading {owner_kind} {owner_name!r} in {namespace!r}", self.conn_id) from e
        raise DrillError(f"pods owned by a {owner_kind} ({owner_name}) have no replica count to heal back to: "
                         f"target pods of a Deployment, ReplicaSet or StatefulSet")

    def desired_replicas(self, namespace: str, owner_kind: str, owner_name: str) -> int:
        """``spec.replicas`` of the workload behind a pod's owner (see `workload`)."""
        return self.workload(namespace, owner_kind, owner_name)[2]

    def blocking_pdbs(self, namespace: str, labels: Mapping[str, str]) -> list[tuple[str, int]]:
        """PodDisruptionBudgets of ``namespace`` that select a pod with ``labels`` and allow no disruption
        (``status.disruptionsAllowed`` 0, or no status yet): ``[(name, disruptions_allowed)]``."""
        from kubernetes.client import ApiException, PolicyV1Api

        try:
            pdbs = PolicyV1Api(self.api_client).list_namespaced_pod_disruption_budget(namespace).items
        except ApiException as e:
            raise _api_error(e, f"listing PodDisruptionBudgets in {namespace!r}", self.conn_id) from e
        out = []
        for pdb in pdbs:
            sel = pdb.spec.selector if pdb.spec else None
            spec = None if sel is None else {
                "matchLabels": sel.match_labels or {},
                "matchExpressions": [{"key": e.key, "operator": e.operator, "values": e.values}
                                     for e in sel.match_expressions or []]}
            allowed = int(pdb.status.disruptions_allowed or 0) if pdb.status else 0
            if allowed <= 0 and selector_matches(selector_from_spec(spec), labels):
                out.append((pdb.metadata.name, allowed))
        return sorted(out)

    def delete_pod(self, namespace: str, name: str, grace_period_seconds: int | None = None) -> bool:
        """Delete one pod (``grace_period_seconds``: the pod's own default when ``None``); False when it
        was already gone."""
        from kubernetes.client import ApiException, V1DeleteOptions

        try:
            self.core_v1_client.delete_namespaced_pod(
                name, namespace, body=V1DeleteOptions(grace_period_seconds=grace_period_seconds))
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            raise _api_error(e, f"deleting pod {name!r} in {namespace!r}", self.conn_id) from e


class AsyncChaosKubernetesHook(AsyncKubernetesHook):
    """The provider's `AsyncKubernetesHook` with the heal check (in the triggerer).

    :param kubernetes_conn_id: Airflow ``kubernetes`` connection
    """

    def __init__(self, kubernetes_conn_id: str | None = KubernetesHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(kubernetes_conn_id=kubernetes_conn_id, **kwargs)

    async def pods(self, namespace: str, selector: str) -> list[PodInfo]:
        """As `ChaosKubernetesHook.pods`, through the async client."""
        from kubernetes_asyncio import client as async_client

        reqs = parse_selector(selector)
        async with self.get_conn() as api:
            try:
                items = (await async_client.CoreV1Api(api).list_namespaced_pod(
                    namespace, label_selector=selector or None)).items
            except async_client.ApiException as e:
                raise _api_error(e, f"listing pods {selector!r} in {namespace!r}", self.conn_id) from e
        return sorted((PodInfo.from_pod(p) for p in items if selector_matches(reqs, p.metadata.labels)),
                      key=lambda p: p.name)

    async def heal_status(self, namespace: str, selector: str, victim_uids: Sequence[str],
                          killed_at: datetime | str, desired: int) -> dict[str, Any]:
        """`assess_heal` on a fresh listing of the workload's pods, with ``observed_at`` (ISO, UTC)."""
        pods = await self.pods(namespace, selector)
        out = assess_heal(pods, victim_uids=victim_uids, killed_at=killed_at, desired=desired)
        out["observed_at"] = datetime.now(UTC).isoformat()
        return out


# --------------------------------------------------------------------------------------------------
# The plan of one pod kill: every check before anything is deleted


@dataclass(frozen=True)
class PodKillPlan:
    """What a pod kill would do, and whether a PodDisruptionBudget stands in its way (`plan_pod_kill`)."""

    namespace: str
    selector: str
    seed: int | str
    pods: list[PodInfo]  # every pod the selector matches
    eligible: list[PodInfo]  # those that may be killed
    victims: list[PodInfo]  # the seeded choice among them
    desired: int  # Ready pods to get back to: spec.replicas summed over `workloads`
    workloads: dict[str, int]  # "Deployment/web" -> replicas
    blocking_pdbs: list[tuple[str, int, str]]  # (pdb, disruptionsAllowed, victim) allowing no disruption

    def pdb_message(self) -> str:
        """Why the kill must be skipped (empty when no budget blocks it)."""
        if not self.blocking_pdbs:
            return ""
        names = ", ".join(f"{pdb} (disruptionsAllowed={allowed}, selects {pod})"
                          for pdb, allowed, pod in self.blocking_pdbs)
        return (f"PodDisruptionBudget {names} in namespace {self.namespace!r} allows no disruption: skipped, "
                f"nothing deleted (the budget protects the workload right now; the next run tries again)")

    def to_dict(self) -> dict[str, Any]:
        """Primitives only (XCom, journal)."""
        return {"namespace": self.namespace, "selector": self.selector, "seed": self.seed,
                "victims": [v.to_dict() for v in self.victims], "candidates": [p.name for p in self.eligible],
                "desired": self.desired, "workloads": sorted(self.workloads),
                "blocking_pdbs": [list(b) for b in self.blocking_pdbs]}


def plan_pod_kill(hook: ChaosKubernetesHook, *, namespace: str, selector: str, max_victims: int = 1,
                  min_pod_age_seconds: float = 0, seed: int | str | None = None,
                  now: datetime | None = None) -> PodKillPlan:
    """Check everything a pod kill needs and choose its victims; delete nothing.

    Raises PreflightError, naming the field and the fix, when the namespace is empty or does not
    exist, the selector is empty, malformed or matches no pod, ``max_victims`` < 1, or no matching
    pod is eligible (each pod's reason listed). A PodDisruptionBudget allowing no disruption of a
    victim is not an error: it is in ``blocking_pdbs`` (the caller skips). ``seed`` ``None`` draws one;
    the plan holds it, so the same seed over the same pods replays the choice. Call it again right
    before the kill: the cluster may have changed since preflight.
    """
    ns, sel = str(namespace or "").strip(), str(selector or "").strip()
    conn = hook.conn_id
    if not ns:
        raise PreflightError("namespace is empty: give the namespace of the workload to disrupt")
    if not sel:
        raise PreflightError(f"selector is empty: it would match every pod of namespace {ns!r}; give the "
                             f"workload's label selector, e.g. 'app=web'")
    try:
        parse_selector(sel)
    except ValueError as e:
        raise PreflightError(f"selector: {e}") from None
    if int(max_victims) < 1:
        raise PreflightError(f"max_victims must be at least 1, got {max_victims}")
    if not hook.namespace_exists(ns):
        raise PreflightError(f"namespace {ns!r} does not exist in the cluster of connection {conn!r}: fix the "
                             f"namespace (kubectl get namespaces lists them)")
    pods = hook.pods(ns, sel)
    if not pods:
        raise PreflightError(f"selector {sel!r} matches no pod in namespace {ns!r}: fix the selector "
                             f"(kubectl get pods -n {ns} --show-labels shows the pods' labels)")
    at = now or datetime.now(UTC)
    why = {p.name: ineligibility(p, float(min_pod_age_seconds), at) for p in pods}
    eligible = [p for p in pods if why[p.name] is None]
    if not eligible:
        reasons = "; ".join(f"{name}: {r}" for name, r in why.items())
        raise PreflightError(f"no pod matching {sel!r} in namespace {ns!r} may be killed ({reasons}): a drill "
                             f"never hits a workload that is not healthy; lower min_pod_age_seconds only if young "
                             f"pods are safe to kill")
    if seed is None or str(seed).strip() in ("", "None"):
        seed = secrets.randbelow(2**32)
    elif str(seed).strip().lstrip("-").isdigit():
        seed = int(str(seed).strip())
    victims = pick_victims(eligible, int(max_victims), seed)
    blocking = [(pdb, allowed, v.name) for v in victims for pdb, allowed in hook.blocking_pdbs(ns, v.labels)]
    # Ready pods to get back to: the replicas of every workload behind the matching pods (the old and
    # new ReplicaSets of a rollout count once, as their Deployment).
    owners = sorted({(p.owner_kind, p.owner_name) for p in pods if not p.deleting and p.owner_kind})
    workloads = {f"{kind}/{name}": n for kind, name, n in (hook.workload(ns, k, o) for k, o in owners)}
    return PodKillPlan(namespace=ns, selector=sel, seed=seed, pods=pods, eligible=eligible, victims=victims,
                       desired=sum(workloads.values()), workloads=workloads, blocking_pdbs=blocking)
