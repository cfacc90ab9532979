"""The estate's schedules section and the unattended window: what users write, how it is read at parse
time (tolerant: never a broken DAG) and at run time (strict: the field and the fix), and who approves."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import pendulum
import pytest

from drdrill.core.errors import EstateError
from drdrill.core.estate import parse_estate
from drdrill.core.paths import DEFAULT_ESTATE
from drdrill.core.schedules import (
    Schedules,
    UnattendedWindow,
    approval_decision,
    read_schedules,
    started_by_schedule,
)
from drdrill.timetables import schedule_for

SCHEDULES = """
schedules:
  timezone: Europe/Berlin
  holidays: ["01-01", "12-24", "12-25", "2027-05-14"]
  dr_quarterly_failover_drill: {day: second wed, at: "09:30"}
  dr_monthly_restore_test: {day: first business day, at: "07:00"}
  dr_daily_verification: {enabled: false}
"""


def _estate_file(tmp_path: Path, extra: str = SCHEDULES, edit: tuple[str, str] | None = None) -> Path:
    text = DEFAULT_ESTATE.read_text() + extra
    if edit:
        assert edit[0] in text
        text = text.replace(*edit)
    f = tmp_path / "estate.yaml"
    f.write_text(text)
    return f


def test_defaults_are_business_days_and_hours_never_new_year():
    s = Schedules()
    assert s.timezone == "UTC" and "01-01" in s.holidays
    q = s.for_drill("dr_quarterly_failover_drill")
    assert (q.day, q.at, q.month_list) == ("first tue", "10:00", (1, 4, 7, 10))
    r = s.for_drill("dr_monthly_restore_test")
    assert (r.day, r.at, len(r.month_list)) == ("first business day", "10:00", 12)
    with pytest.raises(KeyError, match="no schedule"):
        s.for_drill("dr_postgres_primary_failover")


def test_a_drill_entry_overrides_its_defaults_field_by_field():
    s = Schedules.model_validate({"dr_quarterly_failover_drill": {"at": "09:00"}})
    q = s.dr_quarterly_failover_drill
    assert (q.day, q.at, q.months) == ("first tue", "09:00", "quarterly")


@pytest.mark.parametrize("section, error", [
    ({"timezone": "Berlin"}, "unknown timezone 'Berlin'"),
    ({"dr_monthly_restore_test": {"day": "first tuesday"}}, "unknown day rule"),
    ({"dr_monthly_restore_test": {"at": "10am"}}, "HH:MM"),
    ({"dr_monthly_restore_test": {"months": [0, 13]}}, "months are 1"),
    ({"holidays": ["25.12."]}, "not a date"),
    ({"dr_postgres_primary_failover": {"day": "tue"}}, "incident runbook"),
    ({"dr_quaterly_failover_drill": {"day": "tue"}}, "Extra inputs"),
])
def test_bad_sections_are_refused_naming_the_fix(section, error):
    with pytest.raises(ValueError, match=error):
        Schedules.model_validate(section)


def test_the_estate_validates_the_section_strictly_at_run_time(tmp_path):
    f = _estate_file(tmp_path, edit=("day: second wed", "day: second wednesday"))
    with pytest.raises(EstateError) as e:
        parse_estate(f.read_text(), f)
    assert "schedules.dr_quarterly_failover_drill.day" in str(e.value) and "unknown day rule" in str(e.value)
    ok = parse_estate(_estate_file(tmp_path).read_text(), f)
    assert ok.schedules.timezone == "Europe/Berlin"


def test_parse_time_read_gives_the_section(tmp_path):
    s, problem = read_schedules(_estate_file(tmp_path))
    assert problem is None
    assert s.dr_quarterly_failover_drill.day == "second wed" and not s.dr_daily_verification.enabled


@pytest.mark.parametrize("content, problem", [
    (None, "cannot read estate file"),
    ("clusters: [unclosed", "not readable YAML"),
    ("schedules:\n  timezone: Nowhere/Land\n", "timezone: unknown timezone"),
    ("schedules:\n  timezone: ${DRDRILL_TEST_UNSET_TZ}\n", "DRDRILL_TEST_UNSET_TZ"),
])
def test_parse_time_read_never_raises_and_names_the_problem(tmp_path, content, problem):
    f = tmp_path / "estate.yaml"
    if content is not None:
        f.write_text(content)
    s, found = read_schedules(f)
    assert s == Schedules() and problem in found


def test_an_estate_without_the_section_uses_the_defaults_quietly(tmp_path):
    s, problem = read_schedules(_estate_file(tmp_path, extra=""))
    assert s == Schedules() and problem is None


def test_schedule_for_a_dag_file(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("DRDRILL_ESTATE", str(_estate_file(tmp_path)))
    q = schedule_for("dr_quarterly_failover_drill")
    assert q.summary == "second wed, quarterly (Jan, Apr, Jul, Oct), 09:30 Europe/Berlin"
    assert schedule_for("dr_daily_verification") is None  # enabled: false -> triggered only
    # A broken section: the DAG still gets a schedule (the default) and the log says why and what to fix.
    monkeypatch.setenv("DRDRILL_ESTATE", str(_estate_file(tmp_path, edit=("Europe/Berlin", "Europe/Berln"))))
    with caplog.at_level(logging.WARNING, logger="drdrill.timetables"):
        q = schedule_for("dr_quarterly_failover_drill")
    assert q.summary == "first tue, quarterly (Jan, Apr, Jul, Oct), 10:00 UTC"
    assert "unknown timezone 'Europe/Berln'" in caplog.text and "using the default schedule" in caplog.text


# ------------------------------------------------------------------ the unattended window
WINDOW = UnattendedWindow(days=["tue", "wed", "thu"], start="10:00", end="16:00")


def _at(local: str, tz: str = "Europe/Berlin") -> datetime:
    return pendulum.parse(local, tz=tz).in_tz("UTC")


@pytest.mark.parametrize("local, inside", [
    ("2027-01-05T10:00", True),   # Tuesday, the first minute
    ("2027-01-07T15:59", True),   # Thursday, the last minute
    ("2027-01-05T09:59", False),  # before it
    ("2027-01-05T16:00", False),  # end is exclusive
    ("2027-01-04T12:00", False),  # Monday
    ("2027-01-09T12:00", False),  # Saturday
    ("2027-07-06T10:30", True),   # summer time: still local 10:30
])
def test_window_both_sides(local, inside):
    assert WINDOW.contains(_at(local), "Europe/Berlin") is inside


def test_window_is_local_time_in_the_estates_timezone():
    # 10:30 in Berlin is 04:30 in New York: outside the same window read in New York time.
    assert WINDOW.contains(_at("2027-01-05T10:30"), "Europe/Berlin")
    assert not WINDOW.contains(_at("2027-01-05T10:30"), "America/New_York")


@pytest.mark.parametrize("window, error", [
    ({"days": ["tue"], "start": "16:00", "end": "10:00"}, "later than start"),
    ({"days": [], "start": "10:00", "end": "16:00"}, "at least 1"),
    ({"days": ["tuesday"], "start": "10:00", "end": "16:00"}, "'mon', 'tue'"),
    ({"days": ["tue"], "start": "10", "end": "16:00"}, "HH:MM"),
])
def test_bad_windows_are_refused(window, error):
    with pytest.raises(ValueError, match=error):
        UnattendedWindow.model_validate(window)


def test_the_window_in_an_estate_file(tmp_path):
    f = _estate_file(tmp_path, edit=("    unattended: true          # sandbox only: no human approval gates\n",
                                     "    unattended: false\n    unattended_window: {days: [tue, wed], start: "
                                     "\"10:00\", end: \"16:00\"}\n"))
    c = parse_estate(f.read_text(), f).cluster("main")
    assert c.unattended_window == UnattendedWindow(days=["tue", "wed"], start="10:00", end="16:00")


INSIDE, OUTSIDE = _at("2027-01-05T10:05"), _at("2027-01-05T17:00")


@pytest.mark.parametrize("unattended, window, scheduled, at, needed, why", [
    (False, WINDOW, True, INSIDE, False, "inside the unattended window tue, wed, thu 10:00-16:00 Europe/Berlin"),
    (False, WINDOW, True, OUTSIDE, True, "scheduled run at Tue 2027-01-05 17:00 is outside the unattended window"),
    (False, WINDOW, False, INSIDE, True, "a triggered run (the unattended window"),
    (False, None, True, INSIDE, True, "has no unattended_window"),
    (True, None, False, OUTSIDE, False, "unattended: true"),
    (True, WINDOW, True, OUTSIDE, False, "unattended: true"),
])
def test_who_must_approve(unattended, window, scheduled, at, needed, why):
    got, reason = approval_decision(unattended=unattended, window=window, timezone="Europe/Berlin",
                                    scheduled=scheduled, at=at)
    assert got is needed and why in reason


def test_only_a_run_the_scheduler_started_counts_as_scheduled():
    from airflow.sdk.api.datamodels._generated import DagRunType

    class Run:
        def __init__(self, run_type):
            self.run_type = run_type

    assert started_by_schedule(Run(DagRunType.SCHEDULED)) and started_by_schedule(Run("scheduled"))
    for t in (DagRunType.MANUAL, DagRunType.BACKFILL, DagRunType.ASSET_TRIGGERED, DagRunType.OPERATOR_TRIGGERED,
              None):
        assert not started_by_schedule(Run(t))


def test_the_documented_example_has_schedules_and_a_window():
    readme = (DEFAULT_ESTATE.parent / "README.md").read_text()
    block = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    e = parse_estate(block, Path("include/estate/README.md"))
    assert e.schedules.timezone == "Europe/Berlin" and "12-24" in e.schedules.holidays
    assert e.schedules.dr_monthly_restore_test.day == "second wed"
    assert e.cluster("main").unattended_window.describe(e.schedules.timezone) == (
        "tue, wed, thu 10:00-16:00 Europe/Berlin")
