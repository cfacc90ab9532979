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


# ------------------------------------------------------------------ DrillTimetable: rules cron cannot say
BERLIN = "Europe/Berlin"


def _quarterly(tz=BERLIN, holidays=("01-01", "12-25")):
    from drdrill.timetables import DrillTimetable

    return DrillTimetable("first tue", at="10:00", months=(1, 4, 7, 10), timezone=tz, holidays=holidays)


def _runs(tt, after, n):
    out, t = [], after
    for _ in range(n):
        t = tt._get_next(t)
        out.append(t)
    return out


def test_standard_cron_cannot_say_first_tuesday_of_the_quarter():
    # Day-of-month and day-of-week are ORed in cron: every 1st-7th AND every Tuesday of the month.
    tt = CronTriggerTimetable("0 10 1-7 1,4,7,10 2", timezone=BERLIN)
    first = tt._get_next(pendulum.datetime(2026, 12, 31, tz="UTC")).in_tz(BERLIN)
    assert (first.day, first.day_of_week) == (1, pendulum.FRIDAY)  # 1 January 2027, a Friday


def test_first_tuesday_of_the_quarter_at_ten_local_across_years_and_dst():
    runs = _runs(_quarterly(), pendulum.datetime(2026, 11, 20, tz="UTC"), 8)
    local = [r.in_tz(BERLIN) for r in runs]
    assert [r.format("YYYY-MM-DD HH:mm ddd") for r in local] == [
        "2027-01-05 10:00 Tue", "2027-04-06 10:00 Tue", "2027-07-06 10:00 Tue", "2027-10-05 10:00 Tue",
        "2028-01-04 10:00 Tue", "2028-04-04 10:00 Tue", "2028-07-04 10:00 Tue", "2028-10-03 10:00 Tue"]
    # 10:00 local is 09:00 UTC in winter (CET) and 08:00 UTC in summer (CEST).
    assert [r.hour for r in runs[:4]] == [9, 8, 8, 8]


def test_a_holiday_is_never_the_drill_day_and_is_not_counted():
    # 1 January 2030 is a Tuesday: the quarter's first Tuesday that is a business day is the 8th.
    runs = _runs(_quarterly(), pendulum.datetime(2029, 12, 1, tz="UTC"), 1)
    assert runs[0].in_tz(BERLIN).format("YYYY-MM-DD HH:mm") == "2030-01-08 10:00"
    no_holidays = _runs(_quarterly(holidays=()), pendulum.datetime(2029, 12, 1, tz="UTC"), 1)
    assert no_holidays[0].in_tz(BERLIN).format("YYYY-MM-DD") == "2030-01-01"


def test_first_business_day_skips_weekends_and_new_year():
    from drdrill.timetables import DrillTimetable

    tt = DrillTimetable("first business day", at="06:30", timezone="America/New_York", holidays=["01-01"])
    runs = [r.in_tz("America/New_York") for r in _runs(tt, pendulum.datetime(2026, 12, 15, tz="UTC"), 5)]
    # 1 Jan 2027 Friday (holiday) -> Mon 4 Jan; 1 May 2027 is a Saturday -> Mon 3 May (checked below).
    assert [r.format("YYYY-MM-DD ddd HH:mm") for r in runs] == [
        "2027-01-04 Mon 06:30", "2027-02-01 Mon 06:30", "2027-03-01 Mon 06:30", "2027-04-01 Thu 06:30",
        "2027-05-03 Mon 06:30"]
    assert all(r.day_of_week not in (pendulum.SATURDAY, pendulum.SUNDAY) for r in runs)


def test_second_wednesday_and_last_friday():
    from drdrill.timetables import DrillTimetable

    wed = DrillTimetable("second wed", at="14:00", timezone=BERLIN)
    assert [r.in_tz(BERLIN).format("MM-DD ddd") for r in _runs(wed, pendulum.datetime(2026, 12, 31, tz="UTC"), 3)] \
        == ["01-13 Wed", "02-10 Wed", "03-10 Wed"]
    fri = DrillTimetable("last fri", at="09:00", months=[12], timezone=BERLIN, holidays=["12-25"])
    # Christmas 2026 is the last Friday of December and a holiday: the 18th.
    assert fri._get_next(pendulum.datetime(2026, 12, 1, tz="UTC")).in_tz(BERLIN).format("YYYY-MM-DD") \
        == "2026-12-18"


def test_every_business_day_and_a_weekly_day():
    from drdrill.timetables import DrillTimetable

    bd = DrillTimetable("business days", at="07:00", timezone=BERLIN)
    days = [r.in_tz(BERLIN).format("MM-DD ddd") for r in _runs(bd, pendulum.datetime(2027, 1, 1, 12, tz="UTC"), 3)]
    assert days == ["01-04 Mon", "01-05 Tue", "01-06 Wed"]
    tue = DrillTimetable("tue", at="07:00", timezone=BERLIN)
    assert [r.in_tz(BERLIN).day for r in _runs(tue, pendulum.datetime(2027, 1, 1, tz="UTC"), 2)] == [5, 12]


def test_a_local_time_inside_the_spring_forward_gap_moves_forward():
    from drdrill.timetables import DrillTimetable

    # 29 March 2026 (last Sunday of March): 02:00-03:00 does not exist in Berlin.
    tt = DrillTimetable("last sun", at="02:30", months=[3], timezone=BERLIN)
    run = tt._get_next(pendulum.datetime(2026, 3, 1, tz="UTC"))
    assert run == pendulum.datetime(2026, 3, 29, 1, 30, tz="UTC")  # 03:30 CEST
    # On the autumn day 02:30 happens twice: the drill runs once, at the second (CET, 01:30 UTC).
    oct_ = DrillTimetable("last sun", at="02:30", months=[10], timezone=BERLIN)
    run = oct_._get_next(pendulum.datetime(2026, 10, 1, tz="UTC"))
    assert run == pendulum.datetime(2026, 10, 25, 1, 30, tz="UTC")
    assert oct_._get_next(run) == pendulum.datetime(2027, 10, 31, 1, 30, tz="UTC")


def test_unpausing_never_runs_a_past_point_and_a_late_scheduler_still_runs_its_point():
    tt = _quarterly()
    # Unpaused on 20 Nov 2026: the October point is past; the next is January.
    assert _next(tt, pendulum.datetime(2026, 11, 20, 9, tz="UTC")) == pendulum.datetime(2027, 1, 5, 9, tz="UTC")
    # A scheduler five minutes behind still runs the point it just reached.
    assert _next(tt, pendulum.datetime(2027, 1, 5, 9, 5, tz="UTC")) == pendulum.datetime(2027, 1, 5, 9, tz="UTC")
    last = DataInterval(pendulum.datetime(2027, 1, 5, 9, tz="UTC"), pendulum.datetime(2027, 1, 5, 9, tz="UTC"))
    assert _next(tt, pendulum.datetime(2027, 1, 5, 9, 0, 3, tz="UTC"), last) == pendulum.datetime(2027, 4, 6, 8,
                                                                                                   tz="UTC")


def test_drill_timetable_survives_serialization_and_reads_well():
    from drdrill.timetables import DrillTimetable

    tt = _quarterly()
    back = DrillTimetable.deserialize(tt.serialize())
    assert back == tt and back.grace == tt.grace
    assert tt.summary == "first tue, quarterly (Jan, Apr, Jul, Oct), 10:00 Europe/Berlin"
    assert "never a past run on unpause" in tt.description


@pytest.mark.parametrize("kwargs, error", [
    ({"day": "1st tuesday"}, "unknown day rule"),
    ({"day": "first tue", "at": "25:00"}, "HH:MM"),
    ({"day": "first tue", "timezone": "Mars/Olympus"}, "unknown timezone"),
])
def test_bad_rules_are_refused_naming_the_fix(kwargs, error):
    from drdrill.timetables import DrillTimetable

    day = kwargs.pop("day")
    with pytest.raises(ValueError, match=error):
        DrillTimetable(day, **kwargs)


def test_the_scheduler_reads_the_drill_timetable_back_through_the_plugin():
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.timetables.base import TimeRestriction as TR  # noqa: F401 - the scheduler's own type

    from drdrill.plugin import DrdrillPlugin
    from drdrill.timetables import DrillTimetable

    assert DrillTimetable in DrdrillPlugin.timetables
    from airflow.sdk import DAG

    with DAG("tt_probe", schedule=_quarterly(), start_date=START, catchup=False) as dag:
        pass
    back = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    assert back.timetable.summary == _quarterly().summary
