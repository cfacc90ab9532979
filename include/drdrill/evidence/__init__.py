"""The evidence every view reads: drill runs, windows, trends, the scorecard and the resilience policy.

`build` reads every journal under the estate's journal location (the evidence of record) and
computes what the DR dashboard (the Airflow UI plugin), the compliance report (``python -m drdrill
report``) and its quarterly DAG show; `Evidence.to_dict` is the JSON both read
(``/work/notes/evidence-contract.md``'s shape). Pure Python (no Airflow import unless the journal
location is object storage): the API server's plugin and the CLI import it. It never reads Airflow's
metadata DB: a run that wrote no journal is not here (a window with only such runs is ``missed``);
the DR drills page adds those runs from Airflow's run history (`drdrill.ui.history`).

A journal that cannot be read or parsed is listed in ``unreadable`` with its error, never raised.
Dry runs and skipped runs are listed as runs but never satisfy a window nor count as the policy's
evidence.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from drdrill.core.schedules import SCHEDULED_DRILLS
from drdrill.evidence import policy as _policy
from drdrill.evidence import windows as _windows
from drdrill.evidence.journals import Run, clear_cache, iso, read_all

__all__ = ["Evidence", "Run", "build", "clear_cache", "read_journal"]

INCIDENT = "dr_postgres_primary_failover"
CHAOS = ("dr_weekly_pod_kill", "dr_monthly_az_failure")
TREND_FIGURES = ("rto_seconds", "rpo_seconds", "restore_seconds", "recovery_seconds")
SCORECARD_DIGITS = ("copies", "media", "offsite", "immutable", "errors")


@dataclass
class DrillEntry:
    drill: str
    cluster: str | None
    cadence: str
    runs: list[Run]  # in [since, until]
    last: Run | None
    last_passed: Run | None
    windows: list[_windows.Window]

    def to_dict(self) -> dict[str, Any]:
        return {"drill": self.drill, "cluster": self.cluster, "cadence": self.cadence, "runs": len(self.runs),
                "last": self.last.summary() if self.last else None,
                "last_passed": self.last_passed.summary() if self.last_passed else None,
                "windows": [w.to_dict() for w in self.windows]}


@dataclass
class Evidence:
    """Everything computed from the journals of one estate, for one period."""

    estate: str
    generated_at: datetime
    since: datetime
    until: datetime
    timezone: str
    runs: list[Run]  # in [since, until], oldest first
    drills: list[DrillEntry]
    scorecard: list[dict[str, Any]]
    policy: list[_policy.Row]
    unreadable: list[dict[str, str]] = field(default_factory=list)
    location: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "generated_at": iso(self.generated_at), "estate": self.estate, "since": iso(self.since),
            "until": iso(self.until), "timezone": self.timezone, "journal_location": self.location,
            "unreadable": self.unreadable,
            "runs": [r.to_dict() for r in self.runs],
            "drills": [d.to_dict() for d in self.drills],
            "trends": self.trends(),
            "scorecard": self.scorecard,
            "policy": {"disruptions": [r.to_dict() for r in self.policy], "scores": _policy.scores(self.policy),
                       "formula": _policy.FORMULA},
        }

    def find_run(self, drill: str, run_id: str) -> Run | None:
        """The run of ``drill`` with ``run_id`` in this evidence's period, if any (the per-run view)."""
        return next((r for r in self.runs if r.drill == drill and r.run_id == run_id), None)

    def journal_paths(self) -> set[str]:
        """Every journal this evidence cites (runs, and those the scorecard and the policy cite), and the
        unreadable ones: what a view may serve raw."""
        paths = {r.journal for r in self.runs} | {u["path"] for u in self.unreadable}
        paths |= {s["journal"] for s in self.scorecard} | {r.run.journal for r in self.policy if r.run}
        return paths

    def trends(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {name: [] for name in TREND_FIGURES}
        for r in self.runs:
            if r.dry_run or r.status == "skipped":
                continue
            for f in r.figures:
                if f.name in out:
                    out[f.name].append({"drill": r.drill, "cluster": r.cluster, "at": iso(r.at), "value": f.value,
                                        "target": f.target, "met": f.met, "status": r.status, "run_id": r.run_id,
                                        "dag_run_href": r.dag_run_href, "journal": r.journal})
        return out


def build(estate: Any, *, now: datetime | None = None, since: datetime | None = None,
          until: datetime | None = None) -> Evidence:
    """The evidence of ``estate`` (a `drdrill.core.estate.Estate`) between ``since`` and ``until``.

    Defaults: ``until = now`` (the current time), ``since = until - 365 days``. Runs, trends and windows
    cover [since, until]; "last run", "last passed", the scorecard and the policy read every journal up to
    ``until`` (evidence older than ``since`` still proves something, if only that it expired).
    """
    now = _aware(now) if now else datetime.now(UTC)
    until = _aware(until) if until else now
    since = _aware(since) if since else until - timedelta(days=365)
    if since > until:
        raise ValueError(f"since ({iso(since)}) is after until ({iso(until)})")
    runs, unreadable = read_all(estate.journal.location, estate.journal.conn_id)
    service_cluster = {s.name: s.cluster or (s.postgres.cluster if s.postgres else None) for s in estate.services}
    # A chaos journal names its service only: the run counts for the service's cluster (a copy: the cached
    # Run stays as the journal says).
    runs = [replace(r, cluster=c) if r.cluster is None and (c := _cluster_of(r, service_cluster)) else r
            for r in runs]
    upto = sorted((r for r in runs if r.at <= until), key=lambda r: (r.at, r.run_id))
    by_pair: dict[tuple[str, str | None], list[Run]] = {}
    for r in upto:
        by_pair.setdefault((r.drill, r.cluster), []).append(r)

    schedules = estate.schedules
    tz = ZoneInfo(schedules.timezone)

    def local_date(r: Run) -> dt.date:
        return r.at.astimezone(tz).date()

    def schedule_of(drill: str) -> Any:
        return schedules.for_drill(drill) if drill in SCHEDULED_DRILLS else None

    # A period that reaches past now is not over yet: the calendar and the evidence's age stop at now.
    as_of = min(until, now)
    first, today = since.astimezone(tz).date(), as_of.astimezone(tz).date()
    last = (as_of - timedelta(microseconds=1)).astimezone(tz).date()  # until is exclusive: 1 Oct 00:00 ends 30 Sep
    evidence_start = min((local_date(r) for r in runs), default=None)
    configured = _configured_pairs(estate)
    pairs = sorted(set(configured) | {p for p, rs in by_pair.items() if any(r.at >= since for r in rs)},
                   key=lambda p: (_order(p[0]), p[1] or ""))
    drills = []
    for drill, cluster in pairs:
        all_runs = by_pair.get((drill, cluster), [])
        sched = schedule_of(drill)
        wins = (_windows.calendar(sched, schedules.holidays, [r for r in all_runs if r.at >= since], first=first,
                                  today=today, evidence_start=evidence_start, local_date=local_date, last=last)
                if (drill, cluster) in configured else [])
        drills.append(DrillEntry(
            drill=drill, cluster=cluster, cadence=_windows.cadence(sched), runs=[r for r in all_runs if r.at >= since],
            last=all_runs[-1] if all_runs else None,
            last_passed=next((r for r in reversed(all_runs) if r.status == "passed" and not r.dry_run), None),
            windows=wins))

    objectives = {c.name: estate.resilience.for_cluster(c.name) for c in estate.clusters}
    rows = _policy.evaluate(objectives, lambda d, c: by_pair.get((d, c), []),
                            lambda d: _windows.cadence(schedule_of(d)), as_of)
    return Evidence(estate=estate.name, generated_at=now, since=since, until=until, timezone=schedules.timezone,
                    runs=[r for r in upto if r.at >= since], drills=drills,
                    scorecard=_scorecards(upto), policy=rows,
                    unreadable=sorted(unreadable, key=lambda u: u["path"]), location=estate.journal.location)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _cluster_of(r: Run, service_cluster: dict[str, str | None]) -> str | None:
    """A run's cluster; a chaos run names its service only: the service's cluster (or its database's)."""
    if r.cluster:
        return r.cluster
    return service_cluster.get(r.service or "")


def _order(drill: str) -> int:
    known = (*SCHEDULED_DRILLS, INCIDENT)
    return known.index(drill) if drill in known else len(known)


def _configured_pairs(estate: Any) -> set[tuple[str, str | None]]:
    """(drill, cluster) pairs the estate schedules: a cluster's allowed drills, the services' chaos drills, the
    backup tools' restore tests for the clusters they copy."""
    pairs: set[tuple[str, str | None]] = set()
    for drill in (*SCHEDULED_DRILLS, INCIDENT):
        for c in estate.clusters_for(drill):
            pairs.add((drill, c.name))
    for drill in CHAOS:
        for s in estate.services_for(drill):
            pairs.add((drill, s.cluster or (s.postgres.cluster if s.postgres else None)))
    for drill, kind in (("dr_monthly_aws_backup_restore_test", "aws_backup"),
                        ("dr_monthly_velero_restore_test", "velero")):
        for entry in getattr(estate.backups, kind):
            rt = getattr(entry, "restore_test", None)
            if rt is not None:
                named = getattr(rt, "cluster", None)
                for c in [named] if named else [copy.cluster for copy in entry.copies]:
                    pairs.add((drill, c))
    return pairs


def _scorecards(runs: list[Run]) -> list[dict[str, Any]]:
    """Per cluster, the 3-2-1-1-0 scorecard of the newest daily journal holding scorecard results."""
    newest: dict[str, Run] = {}
    for r in runs:  # oldest first: the newest wins
        if r.drill == "dr_daily_verification" and r.scorecard and not r.dry_run:
            newest[r.cluster or ""] = r
    out = []
    for cluster, r in sorted(newest.items()):
        res = {str(x.get("name")): x for x in r.scorecard or []}
        digits = []
        for d in SCORECARD_DIGITS:
            x = res.get(f"scorecard.{d}")
            if x is not None:
                digits.append({"digit": d, "value": x.get("value"), "target": x.get("threshold"),
                               "status": "pass" if x.get("status") == "pass" else "fail",
                               "evidence": str(x.get("message") or "")})
        total = res.get("scorecard")
        score = str(total.get("value")) if total else "-".join(str(d["value"]) for d in digits)
        target = str(total.get("threshold")) if total else "3-2-1-1-0"
        ok = (total.get("status") == "pass") if total else all(d["status"] == "pass" for d in digits)
        out.append({"cluster": cluster or None, "score": score, "target": target, "status": "pass" if ok else "fail",
                    "digits": digits, "run_id": r.run_id, "at": iso(r.at), "dag_run_href": r.dag_run_href,
                    "journal": r.journal})
    return out


def read_journal(estate: Any, path: str) -> bytes:
    """The bytes of one journal named as the evidence names it (``Run.journal``), read through the estate's
    journal location and connection. Serve only paths `Evidence.journal_paths` lists: this reads any path."""
    from drdrill.evidence.journals import local_dir

    local = local_dir(path)
    if local is not None:
        with open(local, "rb") as f:
            return f.read()
    from drdrill.core import journal

    return journal.storage(path, estate.journal.conn_id).read_bytes()
