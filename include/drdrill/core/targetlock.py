"""Target locks: a lease on the targets a drill run acts on, so two drills never confound each other.

A drill run that acts on a target (``cluster:main``, ``service:web``, ``namespace:prod/web``)
holds a lease on its key while it acts: a failover drill from before its canary until its failback
is done, a restore test around its restore, a chaos drill around its kill. Another drill finding
the key taken waits (bounded by ``wait_seconds``) or gives up with `TargetBusy`, which names the
holder; it never acts.

Where: one Airflow Variable per key in the metadata database, read and written through the Task SDK
(`airflow.sdk.Variable` to write, `drdrill.core.variables.read_strict` to read: no cache, and an API
error raises `drdrill.core.variables.VariableUnreadable` instead of reading as "free"), so it holds
across Celery workers and needs no database access on them::

    drdrill_lock:cluster:main = {"dag_id", "run_id", "task_id", "action", "since", "expires", "ttl_seconds"}

(the prefix can be changed with the environment variable ``DRDRILL_LOCK_PREFIX``). ``airflow
variables list`` shows who holds what; ``airflow variables delete drdrill_lock:cluster:main``
frees a key by hand.

Use (a chaos drill; the failover drill and the restore test do the same)::

    from drdrill.core import killswitch, targetlock

    # a task in the pool dr_destructive, before the first action:
    lease = targetlock.acquire(["cluster:main", "service:web"], holder=targetlock.Holder.current("kill one pod"),
                               ttl_seconds=heal_bound + 120, wait_seconds=30)   # TargetBusy names the holder
    return lease.to_dict()                                                      # to XCom
    # right before each action (the same task or a later one):
    killswitch.check_kill_switch("kill pod web-7f9")                            # KillSwitchEngaged: nothing done
    targetlock.ensure_held(lease, "kill pod web-7f9")                           # TargetBusy if it was taken over
    # a teardown of the acquiring task, so it runs whatever failed:
    targetlock.release(lease)

A drill that would rather skip than fail turns `TargetBusy` into ``AirflowSkipException(str(e))``: the
message says who holds the target and that nothing was done.

Rules:

- All keys or none: a run never holds half of what it needs.
- Re-entrant for the same DAG run (``dag_id`` + ``run_id``): acquiring again refreshes the lease
  (new task, action and expiry; ``since`` kept). A run holds a key once: its first `release` frees it.
- A lease can be taken over when it has expired (``ttl_seconds`` from the caller: the drill's bound,
  e.g. its heal or RTO bound plus a margin) or when its DAG run is no longer queued or running,
  asked through the Task SDK (``RuntimeTaskInstance.get_dr_count``: a run killed with SIGKILL or
  marked failed frees its targets at once). When that question cannot be asked (outside a task), only
  the TTL frees a lease. What was taken over is recorded in the new lease (``taken_over``).
- ``force=True`` takes every key whatever holds it (the incident runbook: a real incident never waits
  behind a drill; it takes the cluster so that chaos never hits it mid-incident, and the drill that
  held it finds its lease gone at its next `ensure_held`).
- `release` deletes only the run's own keys, and is idempotent.

Race-freedom: Airflow Variables have no compare-and-set. Under a real scheduler the drills run the
acquiring step in the 1-slot pool ``dr_destructive`` (`drdrill.core.limits.DESTRUCTIVE_POOL`), so two
acquisitions never run at the same time; and `acquire` reads every key back after writing and gives
up (removing what it wrote) when another run's lease is there, so a writer outside the pool (a forced
incident, a user's DAG) is noticed. Drills also call `ensure_held` right before each action. A task
waiting for a key (``wait_seconds``) inside that pool holds its only slot while it waits: keep the
wait short there, or wait outside the pool first (`holders` reads without taking).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from drdrill.core.errors import DrillError

log = logging.getLogger(__name__)

LOCK_PREFIX = os.environ.get("DRDRILL_LOCK_PREFIX") or "drdrill_lock:"
_KEY = re.compile(r"^[a-z][a-z0-9_-]*:[A-Za-z0-9_.:/-]+$")
_MAX_VARIABLE_KEY = 250  # Airflow's Variable key column
FORCED_WRITES = 3  # a forced acquisition writes again when another writer came between, this many times at most


class TargetBusy(DrillError):
    """A target is held by another drill run (or its lease is unreadable): nothing was done."""

    def __init__(self, message: str, *, holders: dict[str, dict[str, Any]]) -> None:
        super().__init__(message)
        self.holders = holders  # key -> the lease found there


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: a DAG run, and what it is doing."""

    dag_id: str
    run_id: str
    task_id: str = ""
    action: str = ""

    @classmethod
    def current(cls, action: str) -> Holder:
        """The running task's DAG run (from the Airflow context)."""
        from airflow.sdk import get_current_context

        ti = get_current_context()["ti"]
        return cls(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, action=action)

    def same_run(self, lease: dict[str, Any]) -> bool:
        return lease.get("dag_id") == self.dag_id and lease.get("run_id") == self.run_id


@dataclass
class Lease:
    """What `acquire` took: the keys, the holder, when, until when, and what it waited for or took over."""

    keys: list[str]
    holder: Holder
    since: str
    expires: str
    ttl_seconds: float
    waited_seconds: float = 0.0
    taken_over: list[dict[str, Any]] = field(default_factory=list)  # {"key", "lease", "why"}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Lease:
        return cls(**{**d, "holder": Holder(**d["holder"])})


def variable_name(key: str) -> str:
    return f"{LOCK_PREFIX}{key}"


def validate_keys(keys: Iterable[str]) -> list[str]:
    """Sorted, unique, well-formed keys (``kind:name``); a clear error naming the bad one otherwise."""
    out = sorted(set(keys))
    if not out:
        raise ValueError("acquire needs at least one target key, e.g. 'cluster:main'")
    for k in out:
        if not isinstance(k, str) or not _KEY.match(k):
            raise ValueError(f"target key {k!r} is not 'kind:name' (lower-case kind, then the target's name without "
                             f"spaces), e.g. 'cluster:main' or 'service:web'")
        if len(variable_name(k)) > _MAX_VARIABLE_KEY:
            raise ValueError(f"target key {k!r} is too long for an Airflow Variable key ({_MAX_VARIABLE_KEY} "
                             f"characters with the prefix {LOCK_PREFIX!r})")
    return out


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


# Reads and writes through the Task SDK (the metadata database via the execution API).

def _read(key: str) -> dict[str, Any] | None:
    """The lease stored under ``key``, None when free. An unreadable value is returned as
    ``{"unreadable": <raw>}`` (treated as held: a human must look at it)."""
    from drdrill.core.variables import read_strict

    # Never cached, and an API error raises (VariableUnreadable) instead of reading as "free".
    raw = read_strict(variable_name(key))
    if raw in (None, ""):
        return None
    try:
        d = json.loads(raw)
        if not isinstance(d, dict) or not d.get("dag_id") or not d.get("run_id"):
            raise ValueError("not a lease")
        return d
    except ValueError:
        return {"unreadable": str(raw)[:300]}


def _write(key: str, lease: dict[str, Any]) -> None:
    from airflow.sdk import Variable

    Variable.set(variable_name(key), json.dumps(lease, sort_keys=True),
                 description=f"drdrill target lock on {key} (drdrill.core.targetlock); delete it to free the "
                             f"target by hand")


def _delete(key: str) -> None:
    from airflow.sdk import Variable

    Variable.delete(variable_name(key))


def holders(keys: Iterable[str]) -> dict[str, dict[str, Any] | None]:
    """Who holds each key now (None: free). Read only: it takes nothing."""
    return {k: _read(k) for k in validate_keys(keys)}


def _run_active(dag_id: str, run_id: str) -> bool | None:
    """Is the holder's DAG run queued or running? None when the Task SDK cannot tell (outside a task)."""
    try:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        return RuntimeTaskInstance.get_dr_count(dag_id=dag_id, run_ids=[run_id], states=["queued", "running"]) > 0
    except Exception as e:  # noqa: BLE001 - the TTL still frees the lease
        log.info("could not ask Airflow whether %s/%s is still running (%s); only its TTL frees its lease",
                 dag_id, run_id, e)
        return None


def stale_reason(lease: dict[str, Any], now: float | None = None) -> str | None:
    """Why a lease may be taken over (expired, or its run has ended), or None while it is live."""
    if "unreadable" in lease:
        return None
    now = time.time() if now is None else now
    try:
        expires = _epoch(lease["expires"])
    except (KeyError, TypeError, ValueError):
        expires = 0.0
    if expires <= now:
        return f"expired at {lease.get('expires')}"
    if _run_active(lease["dag_id"], lease["run_id"]) is False:
        return f"its run {lease['dag_id']} / {lease['run_id']} is no longer queued or running"
    return None


def describe_holder(key: str, lease: dict[str, Any]) -> str:
    if "unreadable" in lease:
        return (f"{key}: Variable {variable_name(key)} holds something that is not a lease ({lease['unreadable']!r}); "
                f"if no drill is acting on it, delete it with `airflow variables delete {variable_name(key)}`")
    return (f"{key} is held by {lease.get('dag_id')} run {lease.get('run_id')} (task {lease.get('task_id') or '?'}, "
            f"action {lease.get('action') or '?'}) since {lease.get('since')}, lease until {lease.get('expires')}")


def _busy_error(busy: dict[str, dict[str, Any]], holder: Holder, waited: float) -> TargetBusy:
    lines = "; ".join(describe_holder(k, v) for k, v in busy.items())
    return TargetBusy(
        f"target(s) busy, so {holder.action or 'the action'} of {holder.dag_id} run {holder.run_id} was NOT done "
        f"(waited {waited:.0f}s): {lines}. Two drills never act on the same target at once: let that run finish "
        f"(its lease ends when its run ends), then run this drill again. If that run is gone and its lease "
        f"remains, delete the lease Variable by hand.", holders=busy)


def acquire(keys: Sequence[str] | str, *, holder: Holder, ttl_seconds: float, wait_seconds: float = 0,
            poll_seconds: float = 5, force: bool = False) -> Lease:
    """Take a lease on every key, or none; raises `TargetBusy` naming the holder(s) when another live run
    holds one of them for longer than ``wait_seconds``. See the module's docstring for the rules."""
    keys = validate_keys([keys] if isinstance(keys, str) else keys)
    if ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds must be > 0 (the longest the run may act, plus a margin), got {ttl_seconds}")
    t0 = time.monotonic()
    forced_writes = 0
    while True:
        busy: dict[str, dict[str, Any]] = {}
        taken: list[dict[str, Any]] = []
        since: str | None = None
        ours_before: set[str] = set()  # re-entrant: keys this run held already (kept if we lose a race)
        for k in keys:
            cur = _read(k)
            if cur is None:
                continue
            if holder.same_run(cur):
                since = since or cur.get("since")
                ours_before.add(k)
                continue
            why = "forced (incident)" if force else stale_reason(cur)
            if why:
                taken.append({"key": k, "lease": cur, "why": why})
            else:
                busy[k] = cur
        waited = time.monotonic() - t0
        if not busy:
            now = time.time()
            lease = Lease(keys=keys, holder=holder, since=since or _iso(now), expires=_iso(now + ttl_seconds),
                          ttl_seconds=float(ttl_seconds), waited_seconds=round(waited, 3), taken_over=taken)
            record = {**asdict(holder), "since": lease.since, "expires": lease.expires,
                      "ttl_seconds": lease.ttl_seconds}
            for k in keys:
                _write(k, record)
            # No compare-and-set on Variables: read back; another writer's lease there means we lost.
            lost = {k: cur for k in keys if (cur := _read(k)) is not None and not holder.same_run(cur)}
            if not lost:
                for t in taken:
                    log.warning("took over %s", describe_holder(t["key"], t["lease"]) + f": {t['why']}")
                log.info("lease on %s taken by %s run %s until %s", ", ".join(keys), holder.dag_id, holder.run_id,
                         lease.expires)
                return lease
            forced_writes += 1
            if force and forced_writes < FORCED_WRITES:  # an incident: write again; a drill finds it at ensure_held
                continue
            for k in keys:
                if k not in lost and k not in ours_before:
                    _delete(k)
            busy = lost
        if waited >= wait_seconds:
            raise _busy_error(busy, holder, waited)
        log.info("waiting for %s (%.0fs of %.0fs)", "; ".join(describe_holder(k, v) for k, v in busy.items()),
                 waited, wait_seconds)
        time.sleep(max(0.0, min(poll_seconds, wait_seconds - waited)))


def ensure_held(lease: Lease | dict[str, Any], action: str = "") -> dict[str, Any]:
    """Call right before an action: raises `TargetBusy` when another run holds one of the lease's keys now
    (taken over after expiry, or by an incident). Returns ``{key: "held"}`` for the journal."""
    lease = Lease.from_dict(lease) if isinstance(lease, dict) else lease
    lost: dict[str, dict[str, Any]] = {}
    for k in lease.keys:
        cur = _read(k)
        if cur is not None and not lease.holder.same_run(cur):
            lost[k] = cur
    if lost:
        h = Holder(lease.holder.dag_id, lease.holder.run_id, lease.holder.task_id, action or lease.holder.action)
        raise _busy_error(lost, h, 0.0)
    return {k: "held" for k in lease.keys}


def release(lease: Lease | dict[str, Any] | None) -> list[str]:
    """Delete the keys this run still holds; keys another run holds now are left alone. Idempotent.
    Returns the keys released."""
    if not lease:
        return []
    lease = Lease.from_dict(lease) if isinstance(lease, dict) else lease
    released = []
    for k in lease.keys:
        cur = _read(k)
        if cur is not None and lease.holder.same_run(cur):
            _delete(k)
            released.append(k)
        elif cur is not None:
            log.warning("not releasing %s", describe_holder(k, cur) + ": it is not ours any more")
    if released:
        log.info("released %s", ", ".join(released))
    return released
