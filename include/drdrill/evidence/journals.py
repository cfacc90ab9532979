"""Reading the journals: one `Run` per journal, its figures against their targets, its SHA-256.

Journals are written once and never edited (`drdrill.core.journal.write`), so what is extracted
from one is cached per process, keyed by its path (and, for a local file, its size and mtime: a
test that replaces a file in place is still read again). A local location (``file://`` or a
plain path) is read with the standard library; any other (``s3://``...) through
`drdrill.core.journal`'s Airflow ObjectStoragePath, imported only then.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from drdrill.core import journal

_CONN_IN_URL = re.compile(r"^([a-z0-9]+://)[^/@]+@")
# Directories under the journal location that hold no drill's journals.
NOT_DRILLS = ("reports",)

LABELS = {"rto_seconds": "RTO", "rpo_seconds": "RPO", "restore_seconds": "restore time",
          "recovery_seconds": "chaos recovery time", "detect_seconds": "chaos detection time",
          "lost_writes": "lost writes", "dr_restore_seconds": "DR node restore time",
          "wal_bytes_lost": "WAL bytes lost"}


@dataclass
class Figure:
    """One measured figure of a run, against its target (``met`` is None without a target)."""

    name: str
    value: float
    target: float | None
    unit: str = "s"
    label: str = ""

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.value <= self.target

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label or LABELS.get(self.name, self.name), "value": self.value,
                "target": self.target, "unit": self.unit, "met": self.met}


@dataclass
class Run:
    """What the evidence needs of one journal."""

    drill: str
    cluster: str | None
    run_id: str
    run_type: str
    status: str
    at: datetime
    written_at: str
    journal: str
    sha256: str
    figures: list[Figure] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    dry_run: bool = False
    scope: str | None = None  # failover drills: node | region
    service: str | None = None  # chaos drills: the service acted on
    scorecard: list[dict[str, Any]] | None = None  # the daily's scorecard.* results

    @property
    def counts(self) -> bool:
        """Whether this run can satisfy a window: it ran for real and reached a verdict."""
        return not self.dry_run and self.status in ("passed", "failed")

    @property
    def dag_run_href(self) -> str:
        return dag_run_href(self.drill, self.run_id)

    def figure(self, name: str) -> Figure | None:
        return next((f for f in self.figures if f.name == name), None)

    def summary(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "status": self.status, "at": iso(self.at), "dag_run_href": self.dag_run_href,
                "journal": self.journal, "dry_run": self.dry_run}

    def to_dict(self) -> dict[str, Any]:
        return {"drill": self.drill, "cluster": self.cluster, "run_id": self.run_id, "run_type": self.run_type,
                "status": self.status, "at": iso(self.at), "written_at": self.written_at, "journal": self.journal,
                "sha256": self.sha256, "dag_run_href": self.dag_run_href,
                "figures": [f.to_dict() for f in self.figures], "failures": self.failures, "dry_run": self.dry_run,
                "scope": self.scope, "service": self.service}


def iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


def dag_run_href(drill: str, run_id: str) -> str:
    """The run's page, relative to the Airflow UI root."""
    return f"dags/{quote(drill, safe='')}/runs/{quote(run_id, safe='')}"


# ------------------------------------------------------------------ listing and reading
_CACHE: dict[str, tuple[Any, Run | str]] = {}
READ_THREADS = 16


def clear_cache() -> None:
    _CACHE.clear()


def local_dir(location: str) -> str | None:
    """The directory of a local journal location, None for object storage."""
    if location.startswith("file://"):
        return location[len("file://"):] or "/"
    if "://" not in location:
        return location
    return None


def read_all(location: str, conn_id: str | None) -> tuple[list[Run], list[dict[str, str]]]:
    """Every journal under ``location``: the runs, and the journals that could not be read (path, error)."""
    entries = list(_journals(location, conn_id))
    misses = [e for e in entries if (hit := _CACHE.get(e[0])) is None or hit[0] != e[1]]
    if len(misses) > 1 and local_dir(location.rstrip("/")) is None:
        # Object storage: one request per journal, so several at once (a new API server's first page).
        with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
            loaded = list(pool.map(_load, misses))
    else:
        loaded = [_load(e) for e in misses]
    for (path, _, _), hit in zip(misses, loaded, strict=True):
        _CACHE[path] = hit
    runs: list[Run] = []
    unreadable: list[dict[str, str]] = []
    for path, _, _ in entries:
        value = _CACHE[path][1]
        if isinstance(value, Run):
            runs.append(value)
        else:
            unreadable.append({"path": path, "error": value})
    return runs, unreadable


def _load(entry: tuple[str, Any, Any]) -> tuple[Any, Run | str]:
    path, key, get = entry
    try:
        return key, parse(get(), path)
    except Exception as e:  # noqa: BLE001 - one bad journal must never hide the others
        return key, f"{type(e).__name__}: {e}"[:500]


def _journals(location: str, conn_id: str | None) -> Iterator[tuple[str, Any, Any]]:
    """(path as the journal module names it, cache key, a function returning the bytes) per journal."""
    base = location.rstrip("/")
    local = local_dir(base)
    if local is not None:
        try:
            drills = sorted(e.name for e in os.scandir(local) if e.is_dir() and _is_drill_dir(e.name))
        except FileNotFoundError:
            return
        for d in drills:
            with os.scandir(os.path.join(local, d)) as it:
                entries = sorted((e for e in it if journal.is_journal_name(e.name)),
                                 key=lambda e: e.name)
            for e in entries:
                st = e.stat()
                yield f"{base}/{d}/{e.name}", (st.st_size, st.st_mtime_ns), _reader(e.path)
        return
    root = journal.storage(base, conn_id)
    if not root.exists():
        return
    for d in sorted(p.name for p in root.iterdir() if p.is_dir() and _is_drill_dir(p.name)):
        for path in sorted(journal.listed(base, conn_id, d)):
            # ObjectStoragePath names the connection in the URL (s3://conn@bucket/key); the evidence names the
            # object as `aws s3 cp` does, and reads it with the location's connection.
            yield _CONN_IN_URL.sub(r"\1", path), None, _object_reader(path, conn_id)


def _is_drill_dir(name: str) -> bool:
    return not name.startswith((".", "_")) and name not in NOT_DRILLS


def _reader(path: str) -> Any:
    def get() -> bytes:
        with open(path, "rb") as f:
            return f.read()
    return get


def _object_reader(path: str, conn_id: str | None) -> Any:
    def get() -> bytes:
        return journal.storage(path, conn_id).read_bytes()
    return get


# ------------------------------------------------------------------ extraction
def parse(data: bytes, path: str) -> Run:
    """The `Run` of one journal's bytes; ValueError when it is not a journal."""
    doc = json.loads(data)
    if not isinstance(doc, dict) or not doc.get("drill") or not doc.get("run_id"):
        raise ValueError("not a drdrill journal (no drill / run_id)")
    status = str(doc.get("status") or "")
    if status not in ("passed", "failed", "skipped"):
        raise ValueError(f"unknown status {status!r}")
    written = str(doc.get("written_at") or "")
    at = _when(doc.get("run_after")) or _when(written)
    if at is None:
        raise ValueError("neither run_after nor written_at is a date")
    params = doc.get("params") if isinstance(doc.get("params"), dict) else {}
    m = doc.get("measurements") if isinstance(doc.get("measurements"), dict) else {}
    chaos = doc.get("chaos") if isinstance(doc.get("chaos"), dict) else {}
    results = [r for r in doc.get("results") or [] if isinstance(r, dict)]
    dry = bool(params.get("dry_run") or m.get("dry_run") or chaos.get("dry_run"))
    scope = params.get("scope") or ("region" if isinstance(m.get("region"), dict) else None)
    if scope is None and ("rto_seconds" in m or doc["drill"] == "dr_quarterly_failover_drill"):
        scope = "node"  # before the region failover existed, every failover was a node failover
    scorecard = [r for r in results if str(r.get("name", "")).startswith("scorecard")] or None
    return Run(drill=str(doc["drill"]), cluster=doc.get("cluster") or None, run_id=str(doc["run_id"]),
               run_type=_run_type(doc.get("run_type")), status=status, at=at, written_at=written, journal=path,
               sha256=hashlib.sha256(data).hexdigest(), figures=_figures(doc, m, chaos, results),
               failures=[str(f) for f in doc.get("failures") or []], dry_run=dry,
               scope=str(scope) if scope else None, service=chaos.get("service"), scorecard=scorecard)


def _run_type(v: Any) -> str:
    text = str(v or "").lower()
    return text.removeprefix("dagruntype.") or "unknown"


def _when(v: Any) -> datetime | None:
    if not v:
        return None
    try:
        t = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _figures(doc: dict[str, Any], m: dict[str, Any], chaos: dict[str, Any],
             results: list[dict[str, Any]]) -> list[Figure]:
    out: list[Figure] = []

    def add(name: str, value: Any, target: Any, unit: str = "s", label: str = "") -> None:
        v = _num(value)
        if v is not None:
            out.append(Figure(name, v, _num(target), unit, label))

    # The restore test: restore + replay/promote + checks against max_restore_minutes.
    if "total_seconds" in m:
        bound = _num(m.get("max_restore_minutes"))
        add("restore_seconds", m.get("total_seconds"), bound * 60 if bound is not None else None)
    # The failover drills and the incident runbook (node and region scope alike).
    if "rto_seconds" in m or "rpo_seconds" in m:
        add("rto_seconds", m.get("rto_seconds"), m.get("rto_target_seconds"))
        add("rpo_seconds", m.get("rpo_seconds"), m.get("rpo_target_seconds"))
        add("lost_writes", m.get("lost_writes"), None, unit="writes")
        region = m.get("region") if isinstance(m.get("region"), dict) else {}
        restore = region.get("restore") if isinstance(region.get("restore"), dict) else {}
        if not restore.get("skipped"):  # cold: the DR node restored from the DR repo (warm: it was running)
            add("dr_restore_seconds", restore.get("seconds"), None)
        add("wal_bytes_lost", region.get("wal_bytes_lost"), None, unit="bytes")
    # The chaos drills: healed within the service's bound (the recovery check's threshold).
    if chaos:
        rec = next((r for r in results if r.get("name") == "recovery"), None)
        add("recovery_seconds", chaos.get("recover_seconds"), rec.get("threshold") if rec else None)
        add("detect_seconds", chaos.get("detect_seconds"), None)
    # AWS Backup's restore test: the restore job's duration against restore_test.timeout_seconds.
    wait = doc.get("wait")
    if isinstance(wait, dict) and str(wait.get("status")) == "COMPLETED":
        plan = doc.get("plan") if isinstance(doc.get("plan"), dict) else {}
        add("restore_seconds", wait.get("seconds"), plan.get("timeout_seconds"), label="AWS Backup restore time")
    # Velero's restore test: restored workloads Ready within ready_timeout_seconds.
    ready = next((r for r in results if r.get("name") == "velero_restore_ready"), None)
    if ready is not None:
        add("restore_seconds", ready.get("value"), ready.get("threshold"), label="Velero restore time")
    return out
