"""The estate's ``notifications:`` section: who hears about a drill's failure and its recovery.

Every drill's journal task notifies (`drdrill.notifiers.DrillOutcomeNotifier`) when the run failed,
and when it passed right after a failure of the same drill on the same cluster ("recovered").
Each channel goes through its Airflow provider's notifier and an Airflow connection, which holds
every secret (the SMTP password, the Slack webhook token, the PagerDuty routing key); the estate
only names the connection:

- ``smtp``: ``apache-airflow-providers-smtp``'s ``SmtpNotifier`` (the runbook's SMTP path);
- ``slack``: ``apache-airflow-providers-slack``'s ``SlackWebhookNotifier`` (an incoming webhook);
- ``pagerduty``: ``apache-airflow-providers-pagerduty``'s ``PagerdutyNotifier`` (Events API v2): a
  failure triggers an incident, the recovery resolves it (one dedup key per drill and cluster).

Each channel says which events it gets (``failure``, ``recovery``) and, optionally, for which drills.
Validated with the rest of the estate (`drdrill.core.estate`); errors name the field and the fix.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Event = Literal["failure", "recovery"]
EVENTS: tuple[str, ...] = ("failure", "recovery")
# Every drill DAG (dags/dr_*.py); a channel's ``drills`` must name some of them.
NOTIFYING_DRILLS = (
    "dr_daily_verification",
    "dr_monthly_restore_test",
    "dr_monthly_aws_backup_restore_test",
    "dr_monthly_velero_restore_test",
    "dr_quarterly_failover_drill",
    "dr_postgres_primary_failover",
    "dr_weekly_pod_kill",
    "dr_monthly_az_failure",
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Channel(_Model):
    conn_id: str = Field(min_length=1, description="the Airflow connection that holds the channel's secret")
    events: list[Event] = Field(default_factory=lambda: ["failure", "recovery"], min_length=1,
                                description="which outcomes this channel hears: failure (a run failed), recovery "
                                            "(the first run that passed after a failure)")
    drills: list[str] | None = Field(None, description="only these drills (DAG ids); default: every drill")

    @field_validator("drills")
    @classmethod
    def _known(cls, v: list[str] | None) -> list[str] | None:
        unknown = sorted(set(v or []) - set(NOTIFYING_DRILLS))
        if unknown:
            raise ValueError(f"unknown drill(s) {unknown}; the drills are {list(NOTIFYING_DRILLS)}")
        return v

    def wants(self, drill: str, event: str) -> bool:
        return event in self.events and (self.drills is None or drill in self.drills)


class SmtpChannel(_Channel):
    """E-mail through an Airflow SMTP connection (host, port, login, password, TLS in its extra)."""

    to: list[str] = Field(min_length=1, description="recipients")
    from_email: str | None = Field(None, description="sender (default: the connection's from_email extra)")


class SlackChannel(_Channel):
    """A Slack incoming webhook: a ``slackwebhook`` connection whose password is the webhook token
    (``T000/B000/XXX``) or the whole webhook URL."""


class PagerDutyChannel(_Channel):
    """PagerDuty Events API v2: a ``pagerduty_events`` connection whose password is the integration's
    routing key. Its ``host`` may name another Events API base URL (the EU service region:
    ``https://events.eu.pagerduty.com``); default ``https://events.pagerduty.com``."""

    severity: Literal["critical", "error", "warning", "info"] = Field(
        "critical", description="severity of the incident a failure triggers")


class Notifications(_Model):
    """Where drill outcomes go. Empty (the default): every outcome is logged, nothing is sent."""

    smtp: SmtpChannel | None = None
    slack: SlackChannel | None = None
    pagerduty: PagerDutyChannel | None = None

    def channels(self, drill: str, event: str) -> list[tuple[str, _Channel]]:
        """The channels (kind, settings) that get ``event`` of ``drill``."""
        out = []
        for kind in ("smtp", "slack", "pagerduty"):
            ch = getattr(self, kind)
            if ch is not None and ch.wants(drill, event):
                out.append((kind, ch))
        return out
