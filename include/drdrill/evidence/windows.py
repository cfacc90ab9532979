"""The windows calendar: per scheduled drill, one entry per period it was due in, and what happened.

A drill's cadence comes from its schedule (`drdrill.core.schedules`): ``every day`` / ``business
days`` -> daily (one window per due day), a weekday (``wed``) -> weekly (Monday to Sunday), an nth
weekday or business day -> monthly (the calendar month), or quarterly when its months are the
quarterly ones (the quarter starting in the listed month). A drill whose schedule is disabled is
``manual``: no windows (so is the incident runbook, ``dr_postgres_primary_failover``).

A window is ``passed`` when a run inside it passed, ``failed`` when it has only failed runs; a dry
run or a skipped run does not satisfy it: a past window with only those is ``skipped``, one with no
run at all ``missed``. The current window without a counting run is ``open``. Windows that ended
before the estate's first journal are ``not_due`` (drdrill was not running yet). Dates are local
dates in ``schedules.timezone``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from drdrill.core.schedules import QUARTERLY, DayRule, DrillSchedule, Holidays

CADENCE_DAYS = {"daily": 1, "weekly": 7, "monthly": 31, "quarterly": 92}


@dataclass
class Window:
    start: dt.date
    end: dt.date  # exclusive
    status: str = "open"
    run_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "status": self.status,
                "run_ids": self.run_ids}


def cadence(schedule: DrillSchedule | None) -> str:
    if schedule is None or not schedule.enabled:
        return "manual"
    rule = DayRule.parse(schedule.day)
    if rule.kind in ("every_day", "business_days"):
        return "daily"
    if rule.kind == "weekday":
        return "weekly"
    return "quarterly" if schedule.month_list == QUARTERLY else "monthly"


def _months(first: dt.date, last: dt.date) -> list[tuple[int, int]]:
    out = []
    y, m = first.year, first.month
    while (y, m) <= (last.year, last.month):
        out.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def _add_months(d: dt.date, n: int) -> dt.date:
    m = d.month - 1 + n
    return dt.date(d.year + m // 12, m % 12 + 1, 1)


def periods(schedule: DrillSchedule | None, holidays: Sequence[str], first: dt.date,
            last: dt.date) -> list[tuple[dt.date, dt.date]]:
    """The due periods [start, end) that overlap [first, last], oldest first."""
    kind = cadence(schedule)
    if kind == "manual" or schedule is None:
        return []
    rule, hol, months = DayRule.parse(schedule.day), Holidays(holidays), set(schedule.month_list)
    # Months before `first` too: a quarter (or week) that began earlier still overlaps.
    span = _months(_add_months(first.replace(day=1), -3), last)
    due = [d for (y, m) in span if m in months for d in rule.days(y, m, hol)]
    out: set[tuple[dt.date, dt.date]] = set()
    for d in due:
        if kind == "daily":
            p = (d, d + dt.timedelta(days=1))
        elif kind == "weekly":
            start = d - dt.timedelta(days=d.weekday())
            p = (start, start + dt.timedelta(days=7))
        elif kind == "monthly":
            p = (d.replace(day=1), _add_months(d, 1))
        else:
            p = (d.replace(day=1), _add_months(d, 3))
        if p[0] <= last and p[1] > first:
            out.add(p)
    return sorted(out)


def calendar(schedule: DrillSchedule | None, holidays: Sequence[str], runs: Sequence[Any], *, first: dt.date,
             today: dt.date, evidence_start: dt.date | None, local_date: Any,
             last: dt.date | None = None) -> list[Window]:
    """The windows of one (drill, cluster) overlapping ``first`` to ``last`` (default ``today``), each with its
    status; a window not over on ``today`` is ``open`` until a run passes or fails in it.

    ``runs`` are that pair's runs (`drdrill.evidence.journals.Run`); ``local_date(run)`` is the run's
    date in the schedules' timezone.
    """
    windows = [Window(s, e) for s, e in periods(schedule, holidays, first, last or today)]
    if not windows:
        return []
    dated = sorted(((local_date(r), r) for r in runs), key=lambda x: x[0])
    i = 0
    for w in windows:
        while i < len(dated) and dated[i][0] < w.start:
            i += 1
        j = i
        inside = []
        while j < len(dated) and dated[j][0] < w.end:
            inside.append(dated[j][1])
            j += 1
        w.run_ids = [r.run_id for r in inside]
        counting = [r for r in inside if r.counts]
        if any(r.status == "passed" for r in counting):
            w.status = "passed"
        elif counting:
            w.status = "failed"
        elif w.end > today:
            w.status = "open"
        elif evidence_start is None or w.end <= evidence_start:
            w.status = "not_due"
        else:
            w.status = "skipped" if inside else "missed"
    return windows
