"""Who is primary now: the topology state every drill reads on top of the estate file.

The roles in the estate file are the topology the estate was built with. A failover changes
them at run time, so the failover DAGs record the new primary here (``topology.json`` under the
estate's state location, a local directory in the sandbox or ``s3://`` in production), and
`drdrill.core.estate.load_estate` applies it: the next drill and the daily verification act on the
real primary. Every change is appended to the cluster's history, with the run that made it.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from drdrill.core import statestore
from drdrill.core.errors import EstateError

log = logging.getLogger(__name__)

FILE = "topology.json"


def _path(store: Any):
    """A pathlib path for file:// (no Airflow import), an ObjectStoragePath otherwise."""
    return statestore.path(store, FILE)


def read(store: Any) -> dict[str, Any]:
    """The recorded topology: ``{cluster: {"primary": node, "since": ..., "history": [...]}}``."""
    p = statestore.refresh(_path(store))
    try:
        if not p.exists():
            return {}
        with p.open("r") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise EstateError(f"topology state {p} cannot be read ({e}); fix or remove it "
                          f"(the estate file's roles are used when it is absent)") from None


def apply(estate: Any) -> Any:
    """The estate with each cluster's recorded primary (unchanged when nothing is recorded)."""
    state = read(estate.state_store)
    if not state:
        return estate
    clusters = []
    for c in estate.clusters:
        rec = state.get(c.name)
        if rec and rec.get("primary") and rec["primary"] != c.primary.name:
            if rec["primary"] not in {n.name for n in c.members}:
                raise EstateError(f"topology state says {rec['primary']!r} is primary of cluster {c.name!r}, "
                                  f"but the estate {estate.source} has no such node; update the estate or "
                                  f"remove {_path(estate.state_store)}")
            c = c.with_primary(rec["primary"])
        clusters.append(c)
    return estate.model_copy(update={"clusters": clusters})


def record(estate: Any, cluster: str, primary: str, *, run_id: str, drill: str, reason: str) -> dict[str, Any]:
    """Record ``primary`` as the cluster's primary (read-modify-write; failover runs are serialised)."""
    known = {n.name for n in estate.cluster(cluster).members}
    if primary not in known:
        raise EstateError(f"cannot record {primary!r} as primary of {cluster!r}: its nodes are {sorted(known)}")
    store = estate.state_store
    state = read(store)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    rec = state.get(cluster) or {"history": []}
    previous = rec.get("primary")
    rec.update(primary=primary, since=now, run_id=run_id, drill=drill)
    rec["history"] = [*rec.get("history", []), {"at": now, "from": previous, "to": primary, "run_id": run_id,
                                                "drill": drill, "reason": reason}][-50:]
    state[cluster] = rec
    p = _path(store)
    _write_atomically(p, json.dumps(state, indent=2))
    log.info("topology: %s primary is now %s (was %s), recorded in %s", cluster, primary, previous, p)
    return rec


def _write_atomically(p: Any, body: str) -> None:
    """Readers see the old state or the new one, never half of it (a crash mid-write used to leave
    a truncated file)."""
    statestore.write_atomically(p, body)


def reset(store: Any) -> None:
    """Forget the recorded topology (the sandbox rebuilds with the estate file's roles)."""
    p = _path(store)
    if p.exists():
        p.unlink()
