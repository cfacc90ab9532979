"""When drills run and when they may run without a human: the estate's ``schedules:`` section and each
cluster's ``unattended_window``.

Both are local time in one timezone (``schedules.timezone``, an IANA name such as
``Europe/Berlin``). A drill's day is a rule (``first tue``, ``second wed``, ``last fri``,
``first business day``, ``business days``, ``every day``, ``tue``) in the months it lists
(``quarterly``: January, April, July, October); "first Tuesday of the quarter" cannot be said in
standard cron, whose day-of-month and day-of-week fields are ORed. Business days are Monday to
Friday except ``holidays``; holidays are never a drill's day and are not counted ("first tue" in a
January whose 1st is a Tuesday and a holiday is the 8th).

Parse time and run time read the same models: the DAG files take their timetables from
`read_schedules` (tolerant: a missing or broken file gives the documented defaults and a warning,
never a broken DAG import), while `drdrill.core.estate.load_estate` validates the section strictly,
so a broken section fails the drill's first task naming the field before anything is touched.
Pure Python (pydantic, pendulum): safe to import while a DAG file is parsed.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

log = logging.getLogger(__name__)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
QUARTERLY = (1, 4, 7, 10)
MONTHLY = tuple(range(1, 13))
RULES_HELP = ("'every day', 'business days', a weekday ('tue': every Tuesday), '<nth> <weekday>' ('first tue', "
              "'second wed', 'last fri') or '<nth> business day' ('first business day', 'last business day'); "
              "nth is first, second, third, fourth or last")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
# The drills that run on a schedule. The incident runbook (dr_postgres_primary_failover) is manual only.
SCHEDULED_DRILLS = ("dr_daily_verification", "dr_monthly_restore_test", "dr_quarterly_failover_drill",
                    "dr_weekly_pod_kill", "dr_monthly_az_failure", "dr_monthly_aws_backup_restore_test",
                    "dr_monthly_velero_restore_test")
# Scheduled DAGs that are not drills: no windows, no policy; their timetable comes from the same section.
SCHEDULED_REPORTS = ("dr_quarterly_compliance_report",)


@dataclass(frozen=True)
class DayRule:
    """Which days of a month a drill runs on."""

    kind: Literal["every_day", "business_days", "weekday", "nth_weekday", "nth_business_day"]
    weekday: int | None = None  # 0 = Monday
    nth: int | None = None  # 1..4, or -1 for the last

    @classmethod
    def parse(cls, text: str) -> DayRule:
        words = str(text).strip().lower().split()
        if words == ["every", "day"]:
            return cls("every_day")
        if words == ["business", "days"]:
            return cls("business_days")
        if len(words) == 1 and words[0] in WEEKDAYS:
            return cls("weekday", weekday=WEEKDAYS.index(words[0]))
        if len(words) == 2 and words[0] in ORDINALS and words[1] in WEEKDAYS:
            return cls("nth_weekday", weekday=WEEKDAYS.index(words[1]), nth=ORDINALS[words[0]])
        if len(words) == 3 and words[0] in ORDINALS and words[1:] == ["business", "day"]:
            return cls("nth_business_day", nth=ORDINALS[words[0]])
        raise ValueError(f"unknown day rule {text!r}: use {RULES_HELP}")

    def days(self, year: int, month: int, holiday: Holidays) -> list[dt.date]:
        """The days of ``year``-``month`` this rule picks, in order."""
        all_days = [dt.date(year, month, d) for d in range(1, calendar.monthrange(year, month)[1] + 1)]
        if self.kind == "every_day":
            return all_days
        business = [d for d in all_days if d.weekday() < 5 and not holiday(d)]
        if self.kind == "business_days":
            return business
        if self.kind == "nth_business_day":
            return self._nth(business)
        same = [d for d in all_days if d.weekday() == self.weekday and not holiday(d)]
        return same if self.kind == "weekday" else self._nth(same)

    def _nth(self, days: list[dt.date]) -> list[dt.date]:
        assert self.nth is not None
        if self.nth == -1:
            return days[-1:]
        return days[self.nth - 1:self.nth] if len(days) >= self.nth else []


class Holidays:
    """Days no drill runs on: ``YYYY-MM-DD`` once, or ``MM-DD`` every year."""

    def __init__(self, items: list[str] | tuple[str, ...] = ()) -> None:
        self.items = tuple(items)
        self.dates = {dt.date.fromisoformat(i) for i in self.items if len(i) == 10}
        self.yearly = {(int(i[:2]), int(i[3:])) for i in self.items if len(i) == 5}

    def __call__(self, d: dt.date) -> bool:
        return d in self.dates or (d.month, d.day) in self.yearly


def parse_hhmm(v: str) -> dt.time:
    m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", str(v).strip())
    if not m:
        raise ValueError(f"time must be HH:MM in 24-hour local time (e.g. \"10:00\"), got {v!r}")
    return dt.time(int(m.group(1)), int(m.group(2)))


def check_timezone(v: str) -> str:
    import pendulum

    try:
        pendulum.timezone(v)
    except Exception:  # noqa: BLE001 - pendulum raises its own InvalidTimezone / ZoneInfo errors
        raise ValueError(f"unknown timezone {v!r}: use an IANA name such as Europe/Berlin, America/New_York "
                         f"or UTC") from None
    return v


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DrillSchedule(_Model):
    """When one drill runs: a day rule in some months, at a local time."""

    day: str = Field(description=RULES_HELP)
    at: str = Field("10:00", description="local time HH:MM in schedules.timezone")
    months: list[int] | Literal["quarterly", "monthly"] = Field(
        "monthly", description="month numbers (1-12), or quarterly (1, 4, 7, 10) or monthly")
    enabled: bool = Field(True, description="false: no schedule, the drill runs only when triggered")

    @field_validator("day")
    @classmethod
    def _day(cls, v: str) -> str:
        DayRule.parse(v)
        return " ".join(v.strip().lower().split())

    @field_validator("at")
    @classmethod
    def _at(cls, v: str) -> str:
        return parse_hhmm(v).strftime("%H:%M")

    @field_validator("months")
    @classmethod
    def _months(cls, v: Any) -> Any:
        if isinstance(v, list):
            bad = [m for m in v if not 1 <= m <= 12]
            if bad or not v:
                raise ValueError(f"months are 1 (January) to 12 (December), got {v}")
        return v

    @property
    def month_list(self) -> tuple[int, ...]:
        if self.months == "quarterly":
            return QUARTERLY
        if self.months == "monthly":
            return MONTHLY
        return tuple(sorted(set(self.months)))


# The documented defaults: business days and hours, never 1 January, never a weekend.
DEFAULTS: dict[str, dict[str, Any]] = {
    "dr_daily_verification": {"day": "every day", "at": "06:00"},
    "dr_monthly_restore_test": {"day": "first business day", "at": "10:00"},
    "dr_quarterly_failover_drill": {"day": "first tue", "months": "quarterly", "at": "10:00"},
    # The seed's chaos schedule: a pod kill every week, an AZ failure every month (business hours,
    # when people are there to watch; each service's window decides whether a run may act).
    "dr_weekly_pod_kill": {"day": "wed", "at": "11:00"},
    "dr_monthly_az_failure": {"day": "second wed", "at": "14:00"},
    # AWS Backup's restore test: the day of the pgBackRest restore test, after it (restores take an hour or more).
    "dr_monthly_aws_backup_restore_test": {"day": "first business day", "at": "11:00"},
    # Velero's restore test the same day, after both.
    "dr_monthly_velero_restore_test": {"day": "first business day", "at": "13:00"},
    # The compliance report of the quarter that just closed, before the quarter's first drills.
    "dr_quarterly_compliance_report": {"day": "first business day", "months": "quarterly", "at": "07:00"},
}
DEFAULT_HOLIDAYS = ["01-01", "12-25"]


class Schedules(_Model):
    """The estate's ``schedules:`` section."""

    timezone: str = Field("UTC", description="IANA timezone of every schedule and unattended window")
    holidays: list[str] = Field(default_factory=lambda: list(DEFAULT_HOLIDAYS),
                                description="YYYY-MM-DD (once) or MM-DD (every year): no drill runs then")
    dr_daily_verification: DrillSchedule = DrillSchedule(**DEFAULTS["dr_daily_verification"])
    dr_monthly_restore_test: DrillSchedule = DrillSchedule(**DEFAULTS["dr_monthly_restore_test"])
    dr_quarterly_failover_drill: DrillSchedule = DrillSchedule(**DEFAULTS["dr_quarterly_failover_drill"])
    dr_weekly_pod_kill: DrillSchedule = DrillSchedule(**DEFAULTS["dr_weekly_pod_kill"])
    dr_monthly_az_failure: DrillSchedule = DrillSchedule(**DEFAULTS["dr_monthly_az_failure"])
    dr_monthly_aws_backup_restore_test: DrillSchedule = DrillSchedule(
        **DEFAULTS["dr_monthly_aws_backup_restore_test"])
    dr_monthly_velero_restore_test: DrillSchedule = DrillSchedule(**DEFAULTS["dr_monthly_velero_restore_test"])
    dr_quarterly_compliance_report: DrillSchedule = DrillSchedule(**DEFAULTS["dr_quarterly_compliance_report"])

    @model_validator(mode="before")
    @classmethod
    def _drill_defaults(cls, data: Any) -> Any:
        # A drill's entry overrides its defaults field by field: {at: "09:00"} keeps "first tue, quarterly".
        if isinstance(data, dict):
            if "dr_postgres_primary_failover" in data:
                raise ValueError("dr_postgres_primary_failover is the incident runbook: it runs only when "
                                 "triggered and takes no schedule; remove it from schedules")
            data = {**data, **{d: {**DEFAULTS[d], **data[d]} for d in DEFAULTS if isinstance(data.get(d), dict)}}
        return data

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return check_timezone(v)

    @field_validator("holidays")
    @classmethod
    def _holidays(cls, v: list[str]) -> list[str]:
        for item in v:
            try:
                if len(item) == 10:
                    dt.date.fromisoformat(item)
                elif len(item) == 5:
                    dt.date(2024, int(item[:2]), int(item[3:]))  # a leap year: 02-29 is a day
                else:
                    raise ValueError
            except ValueError:
                raise ValueError(f"holiday {item!r} is not a date: use YYYY-MM-DD (once) or MM-DD (every "
                                 f"year)") from None
        return v

    def for_drill(self, dag_id: str) -> DrillSchedule:
        if dag_id not in SCHEDULED_DRILLS + SCHEDULED_REPORTS:
            raise KeyError(f"{dag_id} has no schedule; scheduled DAGs are {list(SCHEDULED_DRILLS + SCHEDULED_REPORTS)}")
        return getattr(self, dag_id)


class UnattendedWindow(_Model):
    """When a scheduled failover drill needs no human approval (local time, estate's timezone)."""

    days: list[Weekday] = Field(min_length=1, description="weekdays, e.g. [tue, wed, thu]")
    start: str = Field(description="HH:MM local, inclusive")
    end: str = Field(description="HH:MM local, exclusive; later than start (no window across midnight)")

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        return parse_hhmm(v).strftime("%H:%M")

    @model_validator(mode="after")
    def _order(self) -> UnattendedWindow:
        if parse_hhmm(self.end) <= parse_hhmm(self.start):
            raise ValueError(f"end {self.end} must be later than start {self.start} (a window does not cross "
                             f"midnight)")
        return self

    def contains(self, at: dt.datetime, timezone: str) -> bool:
        import pendulum

        local = pendulum.instance(at).in_tz(timezone)
        return (WEEKDAYS[local.weekday()] in self.days
                and parse_hhmm(self.start) <= local.time().replace(tzinfo=None) < parse_hhmm(self.end))

    def describe(self, timezone: str) -> str:
        return f"{', '.join(self.days)} {self.start}-{self.end} {timezone}"


def started_by_schedule(dag_run: Any) -> bool:
    """Whether Airflow's scheduler started this run from the DAG's timetable: only such a run may skip
    approval inside the unattended window; a manual trigger, a backfill, a run triggered by another
    DAG or by an asset never does."""
    run_type = getattr(dag_run, "run_type", None)
    return getattr(run_type, "value", run_type) == "scheduled"


def approval_decision(*, unattended: bool, window: UnattendedWindow | None, timezone: str, scheduled: bool,
                      at: dt.datetime) -> tuple[bool, str]:
    """Whether a failover run needs a human's approval, and why (the journal keeps the reason).

    ``unattended: true`` never asks. Otherwise only a scheduled run inside the cluster's unattended
    window goes ahead without one; a manual trigger, a run outside the window, or a cluster without
    a window waits for a human.
    """
    if unattended:
        return False, "the cluster is unattended (unattended: true): no approval"
    if window is None:
        return True, "approval required: the cluster has no unattended_window"
    where = window.describe(timezone)
    if not scheduled:
        return True, f"approval required: a triggered run (the unattended window {where} is for scheduled runs)"
    import pendulum

    local = pendulum.instance(at).in_tz(timezone).format("ddd YYYY-MM-DD HH:mm")
    if window.contains(at, timezone):
        return False, f"scheduled run at {local}, inside the unattended window {where}: no approval"
    return True, f"approval required: scheduled run at {local} is outside the unattended window {where}"


# ------------------------------------------------------------------ the parse-time read
_cache: dict[tuple[str, int], tuple[Schedules, str | None]] = {}


def read_schedules(path: Path) -> tuple[Schedules, str | None]:
    """The ``schedules:`` section of the estate file at ``path``, for a DAG file being parsed.

    Never raises: on a missing file, bad YAML or an invalid section it returns the defaults and the
    problem (the caller logs it). Only this section is read; the rest of the file is not validated
    here (tasks do that). Cached per file version.
    """
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as e:
        return Schedules(), f"cannot read estate file {path} ({e.strerror or e})"
    key = (str(path), mtime)
    if key not in _cache:
        _cache.clear()
        _cache[key] = _read(path)
    return _cache[key]


def _read(path: Path) -> tuple[Schedules, str | None]:
    import yaml

    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        return Schedules(), f"{path} is not readable YAML ({type(e).__name__})"
    section = raw.get("schedules") if isinstance(raw, dict) else None
    if section is None:
        return Schedules(), None
    try:
        from drdrill.core.estate import expand_vars

        return Schedules.model_validate(expand_vars(section, path)), None
    except (ValidationError, ValueError, TypeError) as e:
        return Schedules(), f"{path}: schedules section is invalid: {_short(e)}"
    except Exception as e:  # noqa: BLE001 - e.g. ${VAR} unset: parsing must go on with the defaults
        return Schedules(), f"{path}: schedules section unusable: {e}"


def _short(e: Exception) -> str:
    if isinstance(e, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '(section)'}: "
                         f"{err['msg'].removeprefix('Value error, ')}" for err in e.errors())
    return str(e)
