"""Schedules for destructive drills: a drill starts on its schedule or by an explicit trigger,
never because someone unpaused its DAG.

Airflow 3's ``CronTriggerTimetable`` with ``catchup=False`` still runs the most recent past cron
point as soon as the DAG is unpaused (``run_immediately`` only matters for a DAG with no
``start_date``): unpausing the quarterly failover drill in November failed the primary over at
once, for the 1 October run. `DrillCronTimetable` only schedules points that are not older than
``grace`` (a scheduler briefly behind still runs the point it just reached).

Registered with Airflow by a plugin (``plugins/drdrill_timetables.py`` in a checkout, the
``airflow.plugins`` entry point of the installed package): the scheduler must know the class to
read the DAG back.
"""

from __future__ import annotations

import datetime
from typing import Any

from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction
from airflow.timetables.trigger import CronTriggerTimetable

GRACE = datetime.timedelta(minutes=10)


def now() -> Any:
    """The scheduler's clock (one place, so tests can set it)."""
    import pendulum

    return pendulum.now("UTC")


class DrillCronTimetable(CronTriggerTimetable):
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

    def next_dagrun_info(self, *, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction) -> DagRunInfo | None:
        if restriction.catchup:
            return super().next_dagrun_info(last_automated_data_interval=last_automated_data_interval,
                                            restriction=restriction)
        import pendulum

        # The first point not older than the grace: the past point Airflow would start is not a candidate.
        start = self._align_to_next(now() - self.grace)
        if last_automated_data_interval is not None:
            start = max(start, self._get_next(last_automated_data_interval.end))
        if restriction.earliest is not None:
            start = max(start, self._align_to_next(restriction.earliest))
        if restriction.latest is not None and restriction.latest < start:
            return None
        return DagRunInfo.interval(pendulum.instance(start - self._interval), start)
