"""Airflow's run history beside the journals: the drill runs that wrote no journal.

The evidence of record is the journals (`drdrill.evidence`, Airflow-free: the CLI report reads it
too). A drill run that never wrote one (a worker killed, a run still queued or running, a run
failed before its last task, a journal task that never ran) is only in Airflow's metadata DB.
The page's app (inside the API server, where the metadata DB is read through the request's
session) reads the DagRuns of the drill DAGs in the evidence's period with `read_runs` (one
query on ``dag_id`` and ``run_after``, both indexed, bounded by ``MAX_RUNS``), and `merge` adds
to the evidence JSON:

- ``airflow_runs``: every such DagRun with no journal (matched on DAG id + run id; a run whose
  journal exists but cannot be parsed has one: it is listed in ``unreadable``), newest first;
- per drill entry ``no_journal`` (how many) and ``no_journal_run_ids``, and per window
  ``no_journal_run_ids`` when it had such runs: a past window with one and no journal is
  ``no_journal`` ("ran, no journal"), never ``missed`` (nor ``not_due``);
- ``airflow_history``: how many DagRuns were read, whether the bound cut them, or the error.

A run belongs to the cluster its conf names (``cluster``, as the drills' params); a run whose conf
names none (a scheduled run: the DAG's default) shows on every cluster's row of its drill.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from drdrill.core.schedules import SCHEDULED_DRILLS
from drdrill.core.scratch import run_tag
from drdrill.evidence import INCIDENT
from drdrill.evidence.journals import dag_run_href, iso

MAX_RUNS = 10_000
"""At most this many DagRuns per request, the newest (a year of ~10 drill DAGs is a few thousand)."""

# Windows that say "nothing ran" from the journals alone: a run without journal in one makes it ``no_journal``.
NOTHING_RAN = ("missed", "not_due")


@dataclass(frozen=True)
class AirflowRun:
    """One DagRun of a drill DAG, as the metadata DB has it."""

    drill: str
    run_id: str
    state: str
    run_type: str
    run_after: datetime
    start_date: datetime | None = None
    end_date: datetime | None = None
    cluster: str | None = None  # from the run's conf; None: the DAG's default

    def to_dict(self) -> dict[str, Any]:
        def t(v: datetime | None) -> str | None:
            return iso(_aware(v)) if v else None

        return {"drill": self.drill, "cluster": self.cluster, "run_id": self.run_id, "state": self.state,
                "run_type": self.run_type, "run_after": t(self.run_after), "start_date": t(self.start_date),
                "end_date": t(self.end_date), "dag_run_href": dag_run_href(self.drill, self.run_id)}


def drill_dags(evidence: dict[str, Any]) -> list[str]:
    """The DAGs whose runs the evidence is about: its drills', the scheduled drills and the incident runbook."""
    named = {d["drill"] for d in evidence.get("drills") or [] if d.get("drill")}
    named |= {r["drill"] for r in evidence.get("runs") or [] if r.get("drill")}
    return sorted(named | set(SCHEDULED_DRILLS) | {INCIDENT})


def read_runs(session: Any, dag_ids: Iterable[str], since: datetime, until: datetime, *,
              limit: int = MAX_RUNS) -> tuple[list[AirflowRun], bool]:
    """The DagRuns of ``dag_ids`` with ``since <= run_after <= until`` (the journals' ``at``), newest first,
    and whether there were more than ``limit`` (then only the newest ``limit``). ``session`` is a SQLAlchemy
    session on Airflow's metadata DB (the API server's request session)."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    ids = sorted(set(dag_ids))
    if not ids:
        return [], False
    q = (select(DagRun.dag_id, DagRun.run_id, DagRun._state, DagRun.run_type, DagRun.run_after,
                DagRun.start_date, DagRun.end_date, DagRun.conf)
         .where(DagRun.dag_id.in_(ids), DagRun.run_after >= since, DagRun.run_after <= until)
         .order_by(DagRun.run_after.desc(), DagRun.run_id.desc())
         .limit(limit + 1))
    rows = session.execute(q).all()
    return [_run(r) for r in rows[:limit]], len(rows) > limit


def _run(r: Any) -> AirflowRun:
    """An `AirflowRun` of a row (dag_id, run_id, state, run_type, run_after, start_date, end_date, conf)."""
    return AirflowRun(drill=r[0], run_id=r[1], state=str(r[2] or "queued"), run_type=str(r[3] or "unknown"),
                      run_after=_aware(r[4]), start_date=r[5], end_date=r[6], cluster=_cluster(r[7]))


def find_run(session: Any, dag_id: str, run_id: str) -> AirflowRun | None:
    """The DagRun ``run_id`` of ``dag_id`` (the per-run view of a run that has no journal), if Airflow has it."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    r = session.execute(select(DagRun.dag_id, DagRun.run_id, DagRun._state, DagRun.run_type, DagRun.run_after,
                               DagRun.start_date, DagRun.end_date, DagRun.conf)
                        .where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).first()
    return _run(r) if r else None


def merge(evidence: dict[str, Any], runs: Iterable[AirflowRun], *, truncated: bool = False,
          error: str | None = None) -> dict[str, Any]:
    """The evidence with Airflow's runs that have no journal (see the module's docstring). A new dict:
    ``evidence`` (possibly the cached one) is not changed."""
    journaled = {(r["drill"], run_tag(r["run_id"])) for r in evidence.get("runs") or []}
    for u in evidence.get("unreadable") or []:  # <location>/<dag_id>/<run tag>.json
        parts = str(u.get("path") or "").rsplit("/", 2)
        if len(parts) == 3 and parts[2].endswith(".json"):
            journaled.add((parts[1], parts[2].removesuffix(".json")))
    all_runs = list(runs)
    missing = [r for r in all_runs if (r.drill, run_tag(r.run_id)) not in journaled]
    tz = ZoneInfo(evidence.get("timezone") or "UTC")
    out = dict(evidence)
    out["airflow_runs"] = [r.to_dict() for r in missing]
    out["airflow_history"] = {"read": len(all_runs), "truncated": truncated, "limit": MAX_RUNS, "error": error}
    drills = []
    for d in evidence.get("drills") or []:
        mine = [r for r in missing
                if r.drill == d.get("drill") and (r.cluster is None or r.cluster == d.get("cluster"))]
        entry = dict(d)
        entry["no_journal"] = len(mine)
        entry["no_journal_run_ids"] = [r.run_id for r in mine]
        if mine:
            dated = sorted((r.run_after.astimezone(tz).date(), r.run_after, r.run_id) for r in mine)
            entry["windows"] = [_window(w, dated) for w in d.get("windows") or []]
        drills.append(entry)
    out["drills"] = drills
    return out


def _window(w: dict[str, Any], dated: list[tuple[dt.date, datetime, str]]) -> dict[str, Any]:
    """The window ``w`` with the runs without journal inside it (``dated``: (local date, run_after, run id),
    sorted)."""
    start, end = dt.date.fromisoformat(w["start"]), dt.date.fromisoformat(w["end"])
    lo = bisect.bisect_left(dated, (start,))
    hi = bisect.bisect_left(dated, (end,), lo)
    inside = [run_id for _, _, run_id in reversed(dated[lo:hi])]  # newest first, as airflow_runs
    if not inside:
        return w
    out = dict(w, no_journal_run_ids=inside)
    if w.get("status") in NOTHING_RAN:
        out["status"] = "no_journal"
    return out


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _cluster(conf: Any) -> str | None:
    c = conf.get("cluster") if isinstance(conf, dict) else None
    return c if isinstance(c, str) and c else None
