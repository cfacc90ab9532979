"""The estate's state store: where state that crosses tasks lives, readable by every worker.

On CeleryExecutor or KubernetesExecutor consecutive tasks of a run can land on different
machines, so nothing a later task reads may live on the local disk of the worker that wrote it.
The state store is the estate's ``state.location`` (default ``<journal.location>/_state``): a
``file://`` directory in the sandbox (or on storage every worker mounts), ``s3://`` in production,
through Airflow's ``ObjectStoragePath`` with the store's connection. It holds who is primary
(`drdrill.core.topology`) and the failover canary's acknowledged writes and stop control
(`drdrill.core.canary`).

Every write replaces an object whole: readers see the old content or the new, never half of it.
A state object that cannot be parsed is an explicit error for its reader, never a silent default.
"""

from __future__ import annotations

import os
from typing import Any


def path(store: Any, *parts: str, conn_id: str | None = None) -> Any:
    """``<store>/<parts...>``: a pathlib path for ``file://`` (no Airflow import: the canary writer
    process stays light), an ``ObjectStoragePath`` with the store's connection otherwise.

    ``store`` is the estate's `State` (``estate.state_store``) or its location as a string.
    """
    loc = store.location if hasattr(store, "location") else str(store)
    conn_id = getattr(store, "conn_id", None) or conn_id
    if loc.startswith("file://"):
        from pathlib import Path

        p = Path(loc.removeprefix("file://"))
    else:
        from airflow.sdk import ObjectStoragePath

        p = ObjectStoragePath(loc, conn_id=conn_id) if conn_id else ObjectStoragePath(loc)
    for part in parts:
        p = p / part
    return p


def refresh(p: Any) -> Any:
    """``p``, with what this process cached about it and its directory forgotten; returns ``p``.

    s3fs caches directory listings per process, and answers ``exists`` from them: without this, a
    task polling for an object another process writes (the canary's next chunk, its ``stopped``,
    the ``stop`` the writer looks for) never sees it.
    """
    if hasattr(p, "fs"):
        p.fs.invalidate_cache(p.path)
        p.fs.invalidate_cache(p.parent.path)
    return p


def write_atomically(p: Any, body: str) -> None:
    """Replace ``p`` whole. Local: a temp file beside it, fsync, then rename; object storage: one PUT,
    which is atomic there (a reader gets the previous object or this one)."""
    p.parent.mkdir(parents=True, exist_ok=True)
    if not hasattr(p, "fs"):  # a local pathlib path
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        with tmp.open("w") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
        return
    p.write_text(body)


def remove_tree(p: Any) -> None:
    """Remove ``p`` and everything under it (nothing when it does not exist)."""
    if not p.exists():
        return
    if not hasattr(p, "fs"):
        import shutil

        shutil.rmtree(p)
        return
    p.fs.rm(p.path, recursive=True)
