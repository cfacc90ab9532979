"""A Kubernetes API for tests: kmock's `KubernetesEmulator` over real HTTP, plus a test-side controller.

No kube-apiserver can run here (SANDBOX-FACTS.md, "Kubernetes"). kmock 0.8's emulator stores objects
and serves them over HTTP, but it ignores label selectors, fails on ``/api/v1/namespaces``, gives
objects no uid / resourceVersion / creationTimestamp and answers a create with 200. `ClusterEmulator`
fixes what drdrill's Kubernetes hook, trigger and operator rely on; `KubernetesCluster` serves it on
127.0.0.1 from a thread with its own event loop (the sync client deadlocks when the server shares the
caller's loop) and plays the ReplicaSet controller and the kubelet, which kmock has not:

- a ReplicaSet whose pods fall below ``spec.replicas`` gets new pods (``recreate``);
- a new pod turns Running and Ready after ``ready_after`` seconds (``None``: never);
- the ReplicaSet's and Deployment's status follow the pods, unless ``stale_status`` freezes them
  (``readyReplicas`` keeps saying "all Ready": what a drill must not trust).

Usage::

    with KubernetesCluster() as k8s:
        k8s.create_namespace("shop")
        k8s.create_deployment("shop", "web", labels={"app": "web"}, replicas=3)
        k8s.create_pdb("shop", "web-pdb", match_labels={"app": "web"}, disruptions_allowed=0)
        k8s.controller.ready_after = 0.5
        os.environ.update(k8s.airflow_env("k8s_test"))   # an Airflow kubernetes connection
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp.web
import kmock
import pytest

CORE = "v1"
NAMESPACES = kmock.resource("", "v1", "namespaces")
PODS = kmock.resource("", "v1", "pods")


def iso(t: datetime) -> str:
    """Kubernetes' timestamp format: whole seconds, UTC, ``Z``."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> str:
    return iso(datetime.now(UTC))


def _requirement_matches(req: str, labels: dict[str, str]) -> bool:
    req = req.strip()
    if m := re.fullmatch(r"([^\s!=]+)\s+(in|notin)\s+\((.*)\)", req):
        key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
        return (labels.get(key) in values) if op == "in" else (labels.get(key) not in values)
    if m := re.fullmatch(r"([^\s!=]+)\s*(==|=|!=)\s*(\S*)", req):
        key, op, value = m.groups()
        return labels.get(key) == value if op != "!=" else labels.get(key) != value
    if req.startswith("!"):
        return req[1:].strip() not in labels
    return req in labels


def label_selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """The API server's own filtering of ``?labelSelector=`` (equality and set-based requirements).

    Written apart from drdrill's matcher on purpose: the test server must not share the code under test.
    """
    parts, depth, cur = [], 0, ""
    for ch in selector:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return all(_requirement_matches(p, labels) for p in parts if p.strip())


def field_selector_matches(selector: str, obj: dict[str, Any]) -> bool:
    for req in filter(None, (s.strip() for s in selector.split(","))):
        m = re.fullmatch(r"([^!=]+)(==|=|!=)(.*)", req)
        if not m:
            return False
        value: Any = obj
        for part in m.group(1).split("."):
            value = value.get(part) if isinstance(value, dict) else None
        value = "" if value is None else str(value)
        if (value == m.group(3)) != (m.group(2) != "!="):
            return False
    return True


class ClusterEmulator(kmock.KubernetesEmulator):
    """kmock's emulator with the API server behaviour drdrill's Kubernetes code relies on.

    - ``labelSelector`` and ``fieldSelector`` filter lists (kmock ignores both);
    - ``/api/v1/namespaces`` and ``/api/v1/namespaces/{name}`` list, read, create and delete namespaces
      (kmock's path parser takes ``namespaces`` for a namespace prefix and fails); deleting one deletes
      every object in it;
    - a created object gets ``uid``, ``resourceVersion`` and ``creationTimestamp`` (a ``creationTimestamp``
      given by the test is kept: the harness backdates pods that way; a real API server would not);
    - every write bumps ``resourceVersion``; a create answers 201;
    - ``forbidden`` holds ``(method, path regex)`` pairs answered 403, as RBAC would;
    - ``honour_selectors = False`` brings kmock's own behaviour back (labelSelector ignored), to show
      that a server ignoring the selector cannot widen a drill's blast radius;
    - a pod is deleted at once; with ``pod_termination_seconds`` > 0 a delete with a grace period
      leaves it Terminating (``deletionTimestamp`` set, not Ready) for ``min(grace, that)`` seconds first,
      as a kubelet stopping its containers would (grace 0 deletes at once, a Terminating pod too).
    """

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.resources.load_bundled()
        self._rv = 1000
        self.deleted_pods: list[dict[str, Any]] = []  # every pod deleted through the API, in order
        self.honour_selectors = True  # False: ignore labelSelector as kmock does (a careless server/proxy)
        self.pod_termination_seconds = 0.0  # > 0: a graceful delete leaves the pod Terminating this long
        self.forbidden: set[tuple[str, str]] = set()  # (method or "*", path regex): answered 403 (RBAC)
        self.deleted_namespaces: list[str] = []  # every namespace deleted through the API, in order

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        for method, pattern in list(self.forbidden):
            if method in ("*", raw_request.method) and re.fullmatch(pattern, raw_request.path):
                return _status(403, "Forbidden", f'{raw_request.method} {raw_request.path} is forbidden: '
                                                 f'User "tester" cannot do this (the test said so)')
        m = re.fullmatch(r"/api/v1/namespaces(?:/([^/]+))?/?", raw_request.path)
        if m and raw_request.method in ("GET", "POST"):
            return await self._namespaces(raw_request, m.group(1))
        if m and m.group(1) and raw_request.method == "DELETE":
            return await self._delete_namespace(m.group(1))
        return await super().__call__(raw_request)

    async def _namespaces(self, raw: aiohttp.web.BaseRequest, name: str | None) -> aiohttp.web.StreamResponse:
        async with self._lock:
            if raw.method == "POST":
                body = await raw.json()
                meta = body.setdefault("metadata", {})
                key = (NAMESPACES, None, meta["name"])
                if key in self.objects and not self.objects[key].deleted:
                    return _status(409, "AlreadyExists", f'namespaces "{meta["name"]}" already exists')
                body.setdefault("kind", "Namespace")
                body.setdefault("apiVersion", "v1")
                self._stamp(body)
                body["status"] = {"phase": "Active"}
                self.objects[key] = body
                return aiohttp.web.json_response(self.objects[key].raw, status=201)
            items = [obj.raw for (res, _, n), obj in self.objects.items()
                     if res == NAMESPACES and not obj.deleted and (name is None or n == name)]
        if name is None:
            selector = raw.query.get("labelSelector", "")
            items = [i for i in items if label_selector_matches(selector, i["metadata"].get("labels") or {})]
            return aiohttp.web.json_response({"kind": "NamespaceList", "apiVersion": "v1",
                                              "metadata": {"resourceVersion": str(self._rv)}, "items": items})
        if not items:
            return _status(404, "NotFound", f'namespaces "{name}" not found')
        return aiohttp.web.json_response(items[0])

    async def _delete_namespace(self, name: str) -> aiohttp.web.StreamResponse:
        """Delete a namespace and every object in it (a real API server finalizes it a while later;
        here it is gone at once)."""
        async with self._lock:
            key = (NAMESPACES, None, name)
            if key not in self.objects or self.objects[key].deleted:
                return _status(404, "NotFound", f'namespaces "{name}" not found')
            raw = self.objects[key].raw
            for (_, ns, _), obj in list(self.objects.items()):
                if ns == name and not obj.deleted:
                    obj.delete()
            self.objects[key].delete()
            self.deleted_namespaces.append(name)
        return aiohttp.web.json_response({**raw, "status": {"phase": "Terminating"}})

    def _stamp(self, body: dict[str, Any]) -> None:
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        meta["uid"] = str(uuid.uuid4())
        meta["resourceVersion"] = self._next_rv()
        meta.setdefault("creationTimestamp", _now())

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            self._stamp(request.data)
            if request.namespace:
                request.data["metadata"].setdefault("namespace", request.namespace)
        elif request.action == kmock.action.UPDATE and isinstance(request.data, dict):
            request.data.setdefault("metadata", {})["resourceVersion"] = self._next_rv()
        elif request.action == kmock.action.DELETE and request.resource == PODS and request.name:
            key = (PODS, request.namespace, request.name)
            if key in self.objects and not self.objects[key].deleted:
                grace = _grace_seconds(request)
                terminating = bool(self.objects[key].get("metadata", {}).get("deletionTimestamp"))
                if not terminating:
                    self.deleted_pods.append(self.objects[key].raw)
                if self.pod_termination_seconds > 0 and grace > 0:
                    return await self._terminate(key, grace, terminating)
                # grace 0 (or no termination emulated): gone at once, a Terminating pod too (kmock drops
                # an object without finalizers once it carries a deletionTimestamp)
        response = await super()._handle(request)
        if request.action == kmock.action.CREATE and response.status == 200 and not response.prepared:
            response.set_status(201)
        return response

    async def _terminate(self, key: tuple[Any, str | None, str], grace: float,
                         terminating: bool) -> aiohttp.web.StreamResponse:
        """A graceful pod delete: Terminating (deletionTimestamp set, not Ready) now, gone after
        ``min(grace, pod_termination_seconds)`` (the kubelet stopping the containers)."""
        async with self._lock:
            obj = self.objects[key]
            if not terminating:
                uid = obj["metadata"]["uid"]
                obj.patch({"metadata": {"deletionTimestamp": _now(), "deletionGracePeriodSeconds": int(grace),
                                        "resourceVersion": self._next_rv()},
                           "status": {"conditions": [{"type": "Ready", "status": "False",
                                                      "lastTransitionTime": _now()}]}})
                delay = min(grace, self.pod_termination_seconds)
                loop = asyncio.get_running_loop()
                loop.call_later(delay, lambda: loop.create_task(self._finalize(key, uid)))
            raw = obj.raw
        return aiohttp.web.json_response(raw)

    async def _finalize(self, key: tuple[Any, str | None, str], uid: str) -> None:
        async with self._lock:
            obj = self.objects[key] if key in self.objects else None
            if obj is not None and not obj.deleted and obj["metadata"]["uid"] == uid:
                raw = obj.raw
                obj.delete()
                await self._buses[PODS].put({"type": "DELETED", "object": raw})

    async def _serve_list(self, request: kmock.Request) -> Any:
        out = await super()._serve_list(request)
        labels = request.params.get("labelSelector", "") if self.honour_selectors else ""
        fields = request.params.get("fieldSelector", "")
        out["items"] = [i for i in out["items"]
                        if label_selector_matches(labels, (i.get("metadata") or {}).get("labels") or {})
                        and field_selector_matches(fields, i)]
        out["metadata"]["resourceVersion"] = str(self._rv)
        return out


def _grace_seconds(request: kmock.Request) -> float:
    """A delete's grace period: the body's (DeleteOptions) or the query's, else the pod default 30 s."""
    body = request.data if isinstance(request.data, dict) else {}
    value = body.get("gracePeriodSeconds", request.params.get("gracePeriodSeconds"))
    return 30.0 if value is None else float(value)


def _status(code: int, reason: str, message: str) -> aiohttp.web.Response:
    return aiohttp.web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                      "reason": reason, "message": message, "code": code}, status=code)


class Controller:
    """The ReplicaSet controller and the kubelet, for the ReplicaSets the harness created.

    :ivar recreate: replace pods that are gone (off: nothing re-creates a killed pod)
    :ivar ready_after: seconds from a pod's creation to Running + Ready (``None``: never Ready)
    :ivar stale_status: stop updating ReplicaSet/Deployment status (``readyReplicas`` keeps its last value)
    :ivar interval: seconds between reconcile passes
    """

    def __init__(self, cluster: KubernetesCluster) -> None:
        self.cluster = cluster
        self.recreate = True
        self.ready_after: float | None = 0.3
        self.stale_status = False
        self.interval = 0.1
        self.created: list[dict[str, Any]] = []  # pods this controller created (name, uid, created_at)
        self._born: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._errors: list[BaseException] = []

    def set(self, *, recreate: bool | None = None, ready_after: float | None | type[...] = ...,
            stale_status: bool | None = None) -> Controller:
        """Change several settings at once; return self."""
        if recreate is not None:
            self.recreate = recreate
        if ready_after is not ...:
            self.ready_after = ready_after  # type: ignore[assignment]
        if stale_status is not None:
            self.stale_status = stale_status
        return self

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="k8s-test-controller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        self._thread = None
        if self._errors:
            raise RuntimeError(f"the test controller failed: {self._errors[0]!r}") from self._errors[0]

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.reconcile()
            except Exception as e:  # noqa: BLE001 - reported by stop(); the loop keeps going
                if not self._errors:
                    self._errors.append(e)

    def reconcile(self) -> None:
        c = self.cluster
        for ns, rs_name in list(c.replicasets):
            rs = c.get(f"/apis/apps/v1/namespaces/{ns}/replicasets/{rs_name}")
            if rs is None:
                continue
            selector = ",".join(f"{k}={v}" for k, v in rs["spec"]["selector"]["matchLabels"].items())
            pods = c.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=selector)["items"]
            owned = [p for p in pods if any(o.get("uid") == rs["metadata"]["uid"]
                                            for o in p["metadata"].get("ownerReferences") or [])]
            active = [p for p in owned if not p["metadata"].get("deletionTimestamp")]
            if self.recreate:
                for _ in range(int(rs["spec"]["replicas"]) - len(active)):
                    pod = c.create_pod(ns, f"{rs_name}-{secrets.token_hex(3)[:5]}", labels=rs["spec"]["template"]
                                       ["metadata"]["labels"], owner=rs, ready=False)
                    self._born[pod["metadata"]["uid"]] = time.monotonic()
                    self.created.append({"name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"],
                                         "created_at": time.time()})
                    active.append(pod)
            for pod in active:  # the kubelet
                uid = pod["metadata"]["uid"]
                if not _ready(pod) and uid in self._born and self.ready_after is not None \
                        and time.monotonic() - self._born[uid] >= self.ready_after:
                    c.set_pod_ready(ns, pod["metadata"]["name"], True, missing_ok=True)
                    pod = c.get(f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}") or pod
            if not self.stale_status:
                ready = sum(1 for p in active if _ready(p))
                status = {"replicas": len(active), "readyReplicas": ready, "availableReplicas": ready}
                # missing_ok: the namespace may have been deleted since the read (a restore test's teardown)
                c.patch(f"/apis/apps/v1/namespaces/{ns}/replicasets/{rs_name}/status", {"status": status},
                        missing_ok=True)
                for o in rs["metadata"].get("ownerReferences") or []:
                    if o["kind"] == "Deployment":
                        c.patch(f"/apis/apps/v1/namespaces/{ns}/deployments/{o['name']}/status",
                                {"status": {**status, "updatedReplicas": len(active)}}, missing_ok=True)


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


class KubernetesCluster:
    """The emulator served on 127.0.0.1 (own thread and loop), a client of it, and the test controller.

    The harness writes through the same HTTP API as the code under test (never into kmock's store from
    another thread). ``start``/``stop`` or use it as a context manager.
    """

    def __init__(self) -> None:
        self.emulator: ClusterEmulator | None = None
        self.url = ""
        self.controller = Controller(self)
        self.replicasets: list[tuple[str, str]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> KubernetesCluster:
        self._thread = threading.Thread(target=self._serve, name="k8s-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or not self.url:
            raise RuntimeError("the Kubernetes emulator did not start within 10 s")
        self.controller.start()
        return self

    def stop(self) -> None:
        try:
            self.controller.stop()
        finally:
            if self._loop and self._stopped:
                self._loop.call_soon_threadsafe(self._stopped.set)
            if self._thread:
                self._thread.join(timeout=10)

    def __enter__(self) -> KubernetesCluster:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _serve(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopped = asyncio.Event()
            async with ClusterEmulator() as emulator:
                self.emulator = emulator
                runner = aiohttp.web.ServerRunner(aiohttp.web.Server(emulator, access_log=None), handle_signals=False)
                await runner.setup()
                site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                port = runner.addresses[0][1]
                self.url = f"http://127.0.0.1:{port}"
                self._ready.set()
                try:
                    await self._stopped.wait()
                finally:
                    await runner.cleanup()

        try:
            asyncio.run(main())
        finally:
            self._ready.set()

    # -- connection ------------------------------------------------------------------------------
    def kubeconfig(self) -> dict[str, Any]:
        """A kubeconfig for the plain-HTTP server with a dummy bearer token."""
        return {"apiVersion": "v1", "kind": "Config", "current-context": "emulator",
                "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
                "users": [{"name": "tester", "user": {"token": "test-token"}}],
                "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "tester"}}]}

    def airflow_env(self, conn_id: str = "k8s_emulator") -> dict[str, str]:
        """``AIRFLOW_CONN_<ID>``: an Airflow ``kubernetes`` connection whose extra holds the kubeconfig."""
        conn = {"conn_type": "kubernetes", "extra": {"kube_config": json.dumps(self.kubeconfig())}}
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Hold the controller (no re-creation, no Ready) inside the block."""
        recreate, ready_after = self.controller.recreate, self.controller.ready_after
        self.controller.set(recreate=False, ready_after=None)
        try:
            yield
        finally:
            self.controller.set(recreate=recreate, ready_after=ready_after)

    # -- plain API calls -------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: Any = None, ok: Callable[[int], bool] = lambda s: s < 300,
              **params: Any) -> tuple[int, Any]:
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        headers = {"Authorization": "Bearer test-token", "Accept": "application/json",
                   "Content-Type": "application/merge-patch+json" if method == "PATCH" else "application/json"}
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        if not ok(status):
            raise RuntimeError(f"{method} {path}: {status} {text[:500]}")
        return status, (json.loads(text) if text else None)

    def get(self, path: str, **params: Any) -> dict[str, Any] | None:
        status, out = self._call("GET", path, ok=lambda s: s < 300 or s == 404, **params)
        return None if status == 404 else out

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", path, body)[1]

    def patch(self, path: str, body: dict[str, Any], *, missing_ok: bool = False) -> dict[str, Any] | None:
        """A merge patch; with ``missing_ok`` a 404 (the object deleted meanwhile) returns None."""
        status, out = self._call("PATCH", path, body, ok=lambda s: s < 300 or (missing_ok and s == 404))
        return None if status == 404 else out

    def delete(self, path: str) -> None:
        self._call("DELETE", path, ok=lambda s: s < 300 or s == 404)

    # -- objects ---------------------------------------------------------------------------------
    def create_namespace(self, name: str) -> dict[str, Any]:
        return self.post("/api/v1/namespaces", {"metadata": {"name": name}})

    def create_pod(self, namespace: str, name: str, *, labels: dict[str, str], owner: dict[str, Any] | None = None,
                   ready: bool = True, age_seconds: float | None = None, node: str = "node-a") -> dict[str, Any]:
        """A pod (Running and Ready when ``ready``), owned by ``owner`` (a ReplicaSet/StatefulSet dict);
        ``age_seconds`` backdates its creationTimestamp."""
        meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels)}
        if age_seconds is not None:
            meta["creationTimestamp"] = iso(datetime.now(UTC) - timedelta(seconds=age_seconds))
        if owner is not None:
            meta["ownerReferences"] = [{"apiVersion": owner.get("apiVersion", "apps/v1"), "kind": owner["kind"],
                                        "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                                        "controller": True, "blockOwnerDeletion": True}]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
               "spec": {"nodeName": node, "containers": [{"name": "app", "image": "example/app:1"}]},
               "status": _pod_status(ready, meta.get("creationTimestamp"))}
        return self.post(f"/api/v1/namespaces/{namespace}/pods", pod)

    def set_pod_ready(self, namespace: str, name: str, ready: bool, *,
                      missing_ok: bool = False) -> dict[str, Any] | None:
        return self.patch(f"/api/v1/namespaces/{namespace}/pods/{name}/status", {"status": _pod_status(ready)},
                          missing_ok=missing_ok)

    def create_deployment(self, namespace: str, name: str, *, labels: dict[str, str], replicas: int = 3,
                          age_seconds: float | None = 3600, ready: bool = True) -> dict[str, Any]:
        """A Deployment, its ReplicaSet ``<name>-rs`` and ``replicas`` pods (Ready, ``age_seconds`` old);
        the controller keeps the ReplicaSet at ``replicas``. Returns ``{"deployment", "replicaset", "pods"}``."""
        selector = {"matchLabels": dict(labels)}
        template = {"metadata": {"labels": dict(labels)}, "spec": {"containers": [{"name": "app"}]}}
        status = {"replicas": replicas, "readyReplicas": replicas if ready else 0,
                  "availableReplicas": replicas if ready else 0}
        dep = self.post(f"/apis/apps/v1/namespaces/{namespace}/deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": dict(labels)},
            "spec": {"replicas": replicas, "selector": selector, "template": template}, "status": status})
        rs = self.post(f"/apis/apps/v1/namespaces/{namespace}/replicasets", {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{name}-rs", "labels": dict(labels),
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                              "uid": dep["metadata"]["uid"], "controller": True}]},
            "spec": {"replicas": replicas, "selector": selector, "template": template}, "status": status})
        pods = [self.create_pod(namespace, f"{name}-rs-{i}", labels=labels, owner=rs, ready=ready,
                                age_seconds=age_seconds) for i in range(replicas)]
        self.replicasets.append((namespace, rs["metadata"]["name"]))
        return {"deployment": dep, "replicaset": rs, "pods": pods}

    def create_pdb(self, namespace: str, name: str, *, match_labels: dict[str, str] | None = None,
                   match_expressions: list[dict[str, Any]] | None = None, disruptions_allowed: int = 1,
                   min_available: int | None = 1) -> dict[str, Any]:
        """A policy/v1 PodDisruptionBudget with its status (``disruptionsAllowed`` as given)."""
        selector: dict[str, Any] = {}
        if match_labels is not None:
            selector["matchLabels"] = match_labels
        if match_expressions is not None:
            selector["matchExpressions"] = match_expressions
        return self.post(f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets", {
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
            "spec": {"minAvailable": min_available, "selector": selector},
            "status": {"disruptionsAllowed": disruptions_allowed, "currentHealthy": 0, "desiredHealthy": 0,
                       "expectedPods": 0}})

    def pods(self, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        return self.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector=selector)["items"]

    def deleted_pods(self) -> list[dict[str, Any]]:
        """Every pod deleted through the API since the start, oldest first."""
        assert self.emulator is not None
        return list(self.emulator.deleted_pods)


def _pod_status(ready: bool, since: str | None = None) -> dict[str, Any]:
    at = since or _now()
    return {"phase": "Running" if ready else "Pending",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": at},
                           {"type": "ContainersReady", "status": "True" if ready else "False",
                            "lastTransitionTime": at}],
            "containerStatuses": [{"name": "app", "ready": ready, "restartCount": 0, "image": "example/app:1",
                                   "imageID": "", "started": ready}]}


# --------------------------------------------------------------------------------------------------
# pytest fixtures (tests/conftest.py loads this module as a plugin)

_namespaces = iter(range(1, 1_000_000))


@pytest.fixture(scope="session")
def k8s_cluster() -> Iterator[KubernetesCluster]:
    """One emulator for the session, its Airflow connection ``k8s_emulator`` in the environment."""
    with KubernetesCluster() as cluster:
        env = cluster.airflow_env("k8s_emulator")
        os.environ.update(env)
        try:
            yield cluster
        finally:
            for name in env:
                os.environ.pop(name, None)


@pytest.fixture
def k8s(k8s_cluster: KubernetesCluster) -> Iterator[KubernetesCluster]:
    """The session's emulator with the controller at its defaults; the test's ReplicaSets are forgotten
    afterwards (use a fresh namespace per test: `k8s_namespace`)."""
    k8s_cluster.controller.set(recreate=True, ready_after=0.3, stale_status=False)
    assert k8s_cluster.emulator is not None
    k8s_cluster.emulator.honour_selectors = True
    k8s_cluster.emulator.pod_termination_seconds = 0.0
    k8s_cluster.emulator.forbidden.clear()
    k8s_cluster.emulator.forbidden.clear()
    yield k8s_cluster
    k8s_cluster.replicasets.clear()
    k8s_cluster.emulator.honour_selectors = True
    k8s_cluster.emulator.pod_termination_seconds = 0.0
    k8s_cluster.emulator.forbidden.clear()


@pytest.fixture
def k8s_namespace(k8s: KubernetesCluster) -> str:
    """A fresh, existing namespace for one test."""
    name = f"drill-{next(_namespaces)}"
    k8s.create_namespace(name)
    return name
