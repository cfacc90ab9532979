"""A destructive drill starts on its schedule or by an explicit trigger, never because its DAG was unpaused."""

from __future__ import annotations

import datetime

import pendulum
import pytest
from airflow.timetables.base import DataInterval, TimeRestriction
from airflow.timetables.trigger import CronTriggerTimetable

from drdrill.timetables import DrillCronTimetable

QUARTERLY = "0 5 1 1,4,7,10 *"
START = pendulum.datetime(2026, 1, 1, tz="UTC")
NO_CATCHUP = TimeRestriction(earliest=START, latest=None, catchup=False)


def _next(tt, now, last=None, restriction=NO_CATCHUP):
    """The timetable's answer at ``now`` (pendulum's clock for drdrill's, Airflow's utcnow for Airflow's)."""
    import airflow.timetables.trigger as trigger

    from drdrill import timetables

    real = trigger.utcnow, timetables.now
    trigger.utcnow = timetables.now = lambda: pendulum.instance(now).in_tz("UTC")
    try:
        info = tt.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
    finally:
        trigger.utcnow, timetables.now = real
    return info.run_after if info else None


def test_airflows_own_cron_timetable_starts_the_past_point_on_unpause():
    # Why this exists: unpausing in November starts the 1 October failover at once.
    now = pendulum.datetime(2026, 11, 20, 9, tz="UTC")
    for run_immediately in (True, False):
        tt = CronTriggerTimetable(QUARTERLY, timezone="UTC", run_immediately=run_immediately)
        assert _next(tt, now) == pendulum.datetime(2026, 10, 1, 5, tz="UTC")


def test_unpausing_schedules_the_next_point_not_the_past_one():
    now = pendulum.datetime(2026, 11, 20, 9, tz="UTC")
    assert _next(DrillCronTimetable(QUARTERLY), now) == pendulum.datetime(2027, 1, 1, 5, tz="UTC")


def test_unpausing_after_a_long_pause_does_not_run_the_missed_points():
    last = DataInterval(pendulum.datetime(2026, 1, 1, 5, tz="UTC"), pendulum.datetime(2026, 1, 1, 5, tz="UTC"))
    now = pendulum.datetime(2026, 11, 20, 9, tz="UTC")
    assert _next(DrillCronTimetable(QUARTERLY), now, last) == pendulum.datetime(2027, 1, 1, 5, tz="UTC")


def test_a_scheduler_a_few_minutes_late_still_runs_the_point_it_reached():
    now = pendulum.datetime(2026, 10, 1, 5, 4, tz="UTC")
    assert _next(DrillCronTimetable(QUARTERLY), now) == pendulum.datetime(2026, 10, 1, 5, tz="UTC")
    later = pendulum.datetime(2026, 10, 1, 5, 11, tz="UTC")
    assert _next(DrillCronTimetable(QUARTERLY), later) == pendulum.datetime(2027, 1, 1, 5, tz="UTC")


def test_the_next_run_follows_the_last_one():
    last = DataInterval(pendulum.datetime(2026, 10, 1, 5, tz="UTC"), pendulum.datetime(2026, 10, 1, 5, tz="UTC"))
    now = pendulum.datetime(2026, 10, 1, 5, 0, 2, tz="UTC")
    assert _next(DrillCronTimetable(QUARTERLY), now, last) == pendulum.datetime(2027, 1, 1, 5, tz="UTC")


def test_local_time_and_grace_survive_serialization():
    tt = DrillCronTimetable("0 10 * * 2", timezone="Europe/Berlin", grace=datetime.timedelta(minutes=3))
    back = DrillCronTimetable.deserialize(tt.serialize())
    assert back.grace == datetime.timedelta(minutes=3) and back.serialize() == tt.serialize()
    now = pendulum.datetime(2026, 12, 7, 12, tz="UTC")  # a Monday
    assert _next(back, now) == pendulum.datetime(2026, 12, 8, 10, tz="Europe/Berlin")


@pytest.mark.parametrize("catchup", [True])
def test_with_catchup_it_is_airflows_cron_timetable(catchup):
    r = TimeRestriction(earliest=START, latest=None, catchup=catchup)
    now = pendulum.datetime(2026, 11, 20, 9, tz="UTC")
    assert _next(DrillCronTimetable(QUARTERLY), now, restriction=r) == _next(
        CronTriggerTimetable(QUARTERLY, timezone="UTC"), now, restriction=r)
