"""CloudWatch alarms the AZ failure watches: did one fire during the experiment?

`AlarmHook` is the amazon provider's `AwsBaseHook` with the ``cloudwatch`` client. `alarm_fired`
reads the alarm's history (every StateUpdate to ALARM in a time window) and its current state:
an experiment's stop-condition alarm must never have fired, whether or not FIS noticed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

from drdrill.core.errors import PreflightError


def alarm_name(alarm: str) -> str:
    """``arn:aws:cloudwatch:<region>:<account>:alarm:<name>`` -> ``<name>`` (a name stays as it is)."""
    return alarm.split(":alarm:", 1)[1] if ":alarm:" in alarm else alarm


@dataclass(frozen=True)
class AlarmFirings:
    """An alarm's transitions to ALARM in a window, and its state now."""

    alarm: str
    state: str
    transitions: list[dict[str, Any]] = field(default_factory=list)  # {"at": iso, "summary": str}

    @property
    def fired(self) -> bool:
        return bool(self.transitions) or self.state == "ALARM"

    def describe(self) -> str:
        when = ", ".join(t["at"] for t in self.transitions) or "before the window"
        return f"alarm {self.alarm} fired ({when}; now {self.state})"


def _dt(t: float | datetime) -> datetime:
    """An aware UTC datetime (a naive one is taken as UTC, as botocore parses CloudWatch's)."""
    if isinstance(t, datetime):
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    return datetime.fromtimestamp(float(t), UTC)


class AlarmHook(AwsBaseHook):
    """CloudWatch alarms through an Airflow AWS connection.

    :param aws_conn_id: Airflow AWS connection
    :param region_name: AWS region (default: the connection's)

    Usage::

        AlarmHook(aws_conn_id="aws_default").alarm_fired("web-5xx", since=t0, until=t1).fired
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "cloudwatch"
        super().__init__(*args, **kwargs)

    def state(self, alarm: str) -> str:
        """``OK``, ``ALARM`` or ``INSUFFICIENT_DATA``; refuses an alarm CloudWatch does not have."""
        name = alarm_name(alarm)
        found = self.conn.describe_alarms(AlarmNames=[name]).get("MetricAlarms", [])
        found += self.conn.describe_alarms(AlarmNames=[name], AlarmTypes=["CompositeAlarm"]).get(
            "CompositeAlarms", []) if not found else []
        if not found:
            raise PreflightError(f"CloudWatch has no alarm {name!r} (connection {self.aws_conn_id!r}, region "
                                 f"{self.region_name}): create it or fix the stop alarm ARN")
        return str(found[0]["StateValue"])

    def alarm_fired(self, alarm: str, since: float | datetime, until: float | datetime | None = None
                    ) -> AlarmFirings:
        """Every transition of ``alarm`` (name or ARN) to ALARM between ``since`` and ``until``
        (default now), from ``DescribeAlarmHistory`` (StateUpdate items), with its current state."""
        name = alarm_name(alarm)
        state = self.state(name)
        start, end = _dt(since), _dt(until) if until is not None else datetime.now(UTC)
        kwargs: dict[str, Any] = {"AlarmName": name, "HistoryItemType": "StateUpdate", "StartDate": start,
                                  "EndDate": end, "ScanBy": "TimestampAscending"}
        transitions = []
        while True:
            page = self.conn.describe_alarm_history(**kwargs)
            for item in page.get("AlarmHistoryItems", []):
                try:
                    new = json.loads(item.get("HistoryData") or "{}").get("newState", {}).get("stateValue")
                except ValueError:
                    new = None
                ts = _dt(item["Timestamp"])
                if new == "ALARM" and start <= ts <= end:  # the window again: not every endpoint applies it
                    transitions.append({"at": ts.isoformat(timespec="seconds"),
                                        "summary": str(item.get("HistorySummary", ""))})
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
        return AlarmFirings(alarm=name, state=state, transitions=transitions)
