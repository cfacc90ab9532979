"""Schedules for drills: a drill starts on its schedule or by an explicit trigger, never because
someone unpaused its DAG, and on the days and local hours the estate's ``schedules:`` section says.

Airflow 3's ``CronTriggerTimetable`` with ``catchup=False`` still runs the most recent past cron
point as soon as the DAG is unpaused (``run_immediately`` only matters for a DAG with no
``start_date``): unpausing the quarterly failover drill in November failed the primary over at
once, for the 1 October run. `DrillCronTimetable` only schedules points that are not older than
``grace`` (a scheduler briefly behind still runs the point it just reached). `DrillTimetable` does
the same for rules cron cannot say ("the first Tuesday of the quarter at 10:00 Europe/Berlin",
"the first business day of the month"), and `schedule_for` builds it for a drill from the estate
file when the DAG file is parsed (``drdrill.core.schedules``: a tolerant read of that section only).

Registered with Airflow by a plugin (``plugins/drdrill_timetables.py`` in a checkout, the
``airflow.plugins`` entry point of the installed package): the scheduler must know the class to
read the DAG back.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction
from airflow.timetables.trigger import CronTriggerTimetable, _TriggerTimetable

log = logging.getLogger(__name__)

GRACE = datetime.timedelta(minutes=10)


def now() -> Any:
    """The scheduler's clock (one place, so tests can set it)."""
    import pendulum

    return pendulum.now("UTC")


class _NoPastRun:
    """``next_dagrun_info`` that never proposes a point older than ``grace`` (without catchup)."""

    grace: datetime.timedelta
    _interval: Any

    def next_dagrun_info(self, *, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction) -> DagRunInfo | None:
        if restriction.catchup:
            return super().next_dagrun_info(  # type: ignore[misc]
                last_automated_data_interval=last_automated_data_interval, restriction=restriction)
        import pendulum

        # The first point not older than the grace: the past point Airflow would start is not a candidate.
        start = self._align_to_next(now() - self.grace)  # type: ignore[attr-defined]
        if last_automated_data_interval is not None:
            start = max(start, self._get_next(last_automated_data_interval.end))  # type: ignore[attr-defined]
        if restriction.earliest is not None:
            start = max(start, self._align_to_next(restriction.earliest))  # type: ignore[attr-defined]
        if restriction.latest is not None and restriction.latest < start:
            return None
        return DagRunInfo.interval(pendulum.instance(start - self._interval), start)


class DrillCronTimetable(_NoPastRun, CronTriggerTimetable):
    """A cron schedule that never starts a run for a moment already past by more than ``grace``.

    :param cron: the cron expression
    :param timezone: its timezone (e.g. ``"Europe/Berlin"``): the drill runs at local time
    :param grace: how late a run may still start (default 10 minutes)

    With ``catchup=True`` it behaves like ``CronTriggerTimetable``.
    """

    def __init__(self, cron: str, *, timezone: str | Any = "UTC", grace: datetime.timedelta = GRACE) -> None:
        super().__init__(cron, timezone=timezone, run_immediately=False)
        self.grace = grace
        self.description = f"{self.description} (never a past run on unpause)"

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> DrillCronTimetable:
        import pendulum

        tz = data["timezone"]  # encoded as a name, or as an offset in seconds
        return cls(data["expression"], timezone=pendulum.FixedTimezone(tz) if isinstance(tz, int) else tz,
                   grace=datetime.timedelta(seconds=float(data.get("grace_seconds", GRACE.total_seconds()))))

    def serialize(self) -> dict[str, Any]:
        from airflow.serialization.encoders import encode_timezone

        return {"expression": self._expression, "timezone": encode_timezone(self._timezone),
                "grace_seconds": self.grace.total_seconds()}


MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SEARCH_MONTHS = 12 * 30  # a rule that picks no day in 30 years is a mistake, not a schedule


class DrillTimetable(_NoPastRun, _TriggerTimetable):
    """Local time on the days a rule picks ("first tue" of the quarter, "first business day" of the month).

    :param day: the day rule (`drdrill.core.schedules.DayRule`): ``every day``, ``business days``,
        ``tue``, ``first tue``, ``second wed``, ``last fri``, ``first business day``...
    :param at: local time ``HH:MM``
    :param months: month numbers the rule applies in (default every month)
    :param timezone: IANA timezone of ``at`` and of the days (DST handled: 10:00 stays 10:00 local;
        a time that does not exist on a spring-forward day moves forward by the gap; one that happens twice
        on the autumn day runs once, at the second)
    :param holidays: ``YYYY-MM-DD`` or ``MM-DD`` (yearly): never a drill day, not counted by the rule
    :param grace: how late a run may still start; an older point never runs (no run on unpause)
    """

    def __init__(self, day: str, *, at: str = "10:00", months: tuple[int, ...] | list[int] = tuple(range(1, 13)),
                 timezone: str = "UTC", holidays: tuple[str, ...] | list[str] = (),
                 grace: datetime.timedelta = GRACE) -> None:
        from drdrill.core.schedules import DayRule, Holidays, check_timezone, parse_hhmm

        self.day = " ".join(day.lower().split())
        self.rule = DayRule.parse(self.day)
        self.at = parse_hhmm(at)
        self.months = tuple(sorted(set(months)))
        self.timezone = check_timezone(timezone)
        self.holidays = Holidays(tuple(holidays))
        self.grace = grace
        self._interval = datetime.timedelta()
        when = ("every month" if self.months == tuple(range(1, 13)) else
                "quarterly (" + ", ".join(MONTH_NAMES[m - 1] for m in self.months) + ")"
                if self.months == (1, 4, 7, 10) else ", ".join(MONTH_NAMES[m - 1] for m in self.months))
        self._summary = f"{self.day}, {when}, {self.at:%H:%M} {self.timezone}"
        self.description = f"{self._summary}; holidays excluded; never a past run on unpause"

    @property
    def summary(self) -> str:
        return self._summary

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> DrillTimetable:
        return cls(data["day"], at=data["at"], months=tuple(data["months"]), timezone=data["timezone"],
                   holidays=tuple(data.get("holidays", ())),
                   grace=datetime.timedelta(seconds=float(data.get("grace_seconds", GRACE.total_seconds()))))

    def serialize(self) -> dict[str, Any]:
        return {"day": self.day, "at": f"{self.at:%H:%M}", "months": list(self.months), "timezone": self.timezone,
                "holidays": list(self.holidays.items), "grace_seconds": self.grace.total_seconds()}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DrillTimetable) and self.serialize() == other.serialize()

    def __hash__(self) -> int:
        return hash(repr(sorted(self.serialize().items())))

    # -------------------------------------------------------------- the points
    def _points(self, year: int, month: int) -> list[Any]:
        import pendulum

        if month not in self.months:
            return []
        # pendulum: a local time inside a DST gap moves forward by the gap; one that happens twice (autumn)
        # is the second (standard time), so the drill runs once.
        return [pendulum.datetime(d.year, d.month, d.day, self.at.hour, self.at.minute, tz=self.timezone)
                .in_tz("UTC") for d in self.rule.days(year, month, self.holidays)]

    def _search(self, current: Any, *, forward: bool, inclusive: bool) -> Any:
        import pendulum

        cur = pendulum.instance(current).in_tz("UTC")
        local = cur.in_tz(self.timezone)
        y, m = local.year, local.month
        for _ in range(_SEARCH_MONTHS):
            points = self._points(y, m)
            for p in (points if forward else reversed(points)):
                if (p > cur if forward else p < cur) or (inclusive and p == cur):
                    return p
            y, m = (y + (m == 12), m % 12 + 1) if forward else (y - (m == 1), (m - 2) % 12 + 1)
        raise ValueError(f"the schedule '{self.summary}' picks no day within {_SEARCH_MONTHS // 12} years of "
                         f"{cur}: check its day rule, months and holidays")

    def _align_to_next(self, current: Any) -> Any:
        return self._search(current, forward=True, inclusive=True)

    def _align_to_prev(self, current: Any) -> Any:
        return self._search(current, forward=False, inclusive=True)

    def _get_next(self, current: Any) -> Any:
        return self._search(current, forward=True, inclusive=False)

    def _get_prev(self, current: Any) -> Any:
        return self._search(current, forward=False, inclusive=False)

    def _calc_first_run(self) -> Any:
        return self._align_to_next(now())


def schedule_for(dag_id: str) -> DrillTimetable | None:
    """The drill's timetable from the estate's ``schedules:`` section, read when the DAG file is parsed.

    Cheap and safe at parse time: only that section is read (cached per file version). A missing
    file, bad YAML or an invalid section logs a warning naming the problem and gives the documented
    default (``drdrill.core.schedules.DEFAULTS``) instead of breaking the DAG import; the drill's
    first task then loads the whole estate strictly and fails naming the field. ``enabled: false``
    gives ``None``: the drill runs only when triggered.
    """
    import os

    from drdrill.core.paths import INSTALLED, estate_path
    from drdrill.core.schedules import Schedules, read_schedules

    if INSTALLED and not os.environ.get("DRDRILL_ESTATE"):
        schedules, problem = Schedules(), "DRDRILL_ESTATE is not set"
    else:
        schedules, problem = read_schedules(estate_path())
    entry = schedules.for_drill(dag_id)
    if problem:
        log.warning("%s: %s; using the default schedule (%s, %s UTC). Fix the estate's schedules section "
                    "(include/estate/README.md, \"Schedules\").", dag_id, problem, entry.day, entry.at)
    if not entry.enabled:
        return None
    return DrillTimetable(entry.day, at=entry.at, months=entry.month_list, timezone=schedules.timezone,
                          holidays=tuple(schedules.holidays))
