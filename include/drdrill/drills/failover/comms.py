"""The runbook's communication template, rendered with real values and sent through notifiers.

The seed runbook's template::

    [STATUS] Database failover in progress. We are promoting our standby database.
    Impact: [describe]. ETA to resolution: 20 minutes.
    Next update: [time].

Every phase renders it with what is known at that moment (phase, impact seen by the canary and
the service, ETA from the RTO target and the time already spent) and sends it to every channel
of the cluster's ``failover.notify`` list: ``log`` always, ``smtp`` and ``slack`` through the
Airflow providers' notifiers when configured. The same messages go into the run's timeline.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseNotifier

from drdrill.core.errors import PreflightError

log = logging.getLogger("drdrill.drills.failover.comms")

TEMPLATE = ("[{status}] {headline}\n"
            "Impact: {impact}. ETA to resolution: {eta}.\n"
            "Next update: {next_update}.")

HEADLINES = {
    "assess": "Database primary failure suspected on {cluster}. We are assessing the standby before failing over.",
    "failover": "Database failover in progress on {cluster}. We are promoting our standby database ({standby}).",
    "verify": "Database failover complete on {cluster}: {standby} is the primary. Monitoring for stability.",
    "stabilize": "Database failover on {cluster} stabilized: archiving checked, new standby provisioned.",
    "rollback": "Database failover on {cluster} is being ROLLED BACK: {reason}. Escalating to the DBA lead.",
    "failback": "Planned switchover on {cluster}: returning the primary role to {standby}.",
    "resolved": "Database incident on {cluster} resolved. RTO {rto}, RPO {rpo}.",
    "failed": "Database failover on {cluster} did NOT complete: {reason}. Escalating to the DBA lead.",
}


def render(phase: str, *, cluster: str, standby: str = "", impact: str = "", started_at: float | None = None,
           rto_target_minutes: float = 30, status: str | None = None, reason: str = "", rto: str = "-",
           rpo: str = "-", drill: bool = False, next_update_minutes: float = 10,
           now: datetime | None = None) -> str:
    """The template for ``phase`` with real values (a drill says so on the first line)."""
    now = now or datetime.now(UTC)
    elapsed = (now.timestamp() - started_at) / 60 if started_at else 0.0
    remaining = max(0.0, rto_target_minutes - elapsed)
    eta = ("now" if phase in ("resolved", "stabilize")
           else f"{remaining:.0f} minutes (RTO target {rto_target_minutes:g})")
    headline = HEADLINES[phase].format(cluster=cluster, standby=standby, reason=reason, rto=rto, rpo=rpo)
    text = TEMPLATE.format(status=status or phase.upper(), headline=headline,
                           impact=impact or "none measured yet", eta=eta,
                           next_update=(now + timedelta(minutes=next_update_minutes)).strftime("%H:%M UTC"))
    return ("[DRILL] " if drill else "") + text


class RunbookNotifier(BaseNotifier):
    """Sends one runbook message to the configured channels (log, smtp, slack).

    ``channels`` are the estate's ``failover.notify`` entries as dicts. A channel that fails
    to send is logged and reported, never allowed to stop the failover itself.
    """

    template_fields = ("message", "subject")

    def __init__(self, *, message: str, subject: str, channels: list[dict[str, Any]]) -> None:
        super().__init__()
        self.message = message
        self.subject = subject
        self.channels = channels

    def notify(self, context: Any) -> None:
        self.sent = send(self.subject, self.message, self.channels)

    async def async_notify(self, context: Any) -> None:
        import asyncio

        self.sent = await asyncio.to_thread(send, self.subject, self.message, self.channels)


def check_channels(channels: list[dict[str, Any]]) -> None:
    """Refuse, before anything is touched, a channel whose provider is not installed."""
    for ch in channels:
        if ch["kind"] == "smtp":
            try:
                import airflow.providers.smtp.notifications.smtp  # noqa: F401
            except ImportError:
                raise PreflightError("notify kind 'smtp' needs apache-airflow-providers-smtp") from None
        if ch["kind"] == "slack":
            try:
                import airflow.providers.slack.notifications.slack  # noqa: F401
            except ImportError:
                raise PreflightError("notify kind 'slack' needs apache-airflow-providers-slack: "
                                     "pip install it on the workers and triggerer") from None


def send(subject: str, message: str, to: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send to every channel of ``to`` through `drdrill.drills.channels`; returns one outcome per channel (also for
    the journal)."""
    from drdrill.drills import channels

    out = []
    for ch in to:
        kind = ch["kind"]
        try:
            if kind == "log":
                log.warning("%s\n%s", subject, message)
            elif kind == "smtp":
                channels.smtp(ch["conn_id"], ch["to"], subject, message)
            elif kind == "slack":
                channels.slack_api(ch["conn_id"], ch.get("channel") or "#incidents", f"*{subject}*\n```{message}```")
            out.append({"kind": kind, "sent": True})
        except Exception as e:  # noqa: BLE001 - a failed page must not stop the failover
            out.append(channels.failed(kind, ch.get("conn_id"), repr(subject), e))
    return out


def rto_deadline_missed(details: dict[str, Any]) -> dict[str, Any]:
    """`RecoveryDeadlineOperator`'s ``on_missed`` for the runbook: the RTO target has passed since
    the fault and the service is not verified yet. Sent while the recovery is still running to the
    run's cluster's channels (always also logged); returns the message and the outcome per channel
    for the journal.
    """
    from drdrill.core.estate import load_estate

    minutes, run = details.get("minutes") or 0, details.get("run_id") or "unknown run"
    since = datetime.fromtimestamp(float(details.get("since") or 0), UTC).strftime("%H:%M:%S UTC")
    cluster = details.get("cluster") or "?"
    drill = "[DRILL] " if details.get("dag_id") == "dr_quarterly_failover_drill" else ""
    subject = f"{drill}RTO target of {minutes:g} min missed on {cluster}: failover run {run} is not verified yet"
    headline = (f"The database failover on {cluster} has not restored service {minutes:g} minutes after the "
                f"failure ({since}); run {run}.")
    if details.get("recovered_at"):  # seen only after the fact (the watch started or looked late)
        at = datetime.fromtimestamp(float(details["recovered_at"]), UTC).strftime("%H:%M:%S UTC")
        late = float(details["recovered_at"]) - float(details.get("deadline_at") or 0)
        subject = subject.replace("is not verified yet", f"was verified {late:.0f} s after the target")
        headline = (f"The database failover on {cluster} restored service at {at}, {late:.0f} s after the RTO "
                    f"target of {minutes:g} minutes from the failure ({since}); run {run}.")
    message = drill + TEMPLATE.format(status="ESCALATION", headline=headline, impact="the RTO target is missed",
                                      eta="unknown: the DBA lead and the engineering manager are paged",
                                      next_update=(datetime.now(UTC) + timedelta(minutes=10)).strftime("%H:%M UTC"))
    channels: list[dict[str, Any]] = [{"kind": "log"}]
    try:
        c = load_estate().cluster(str(cluster))
        channels += [ch.model_dump() for ch in (c.failover.notify if c.failover else []) if ch.kind != "log"]
    except Exception as e:  # noqa: BLE001 - the alert itself must still go out
        log.error("estate unreadable for the RTO alert (%s): logging only", e)
    # The shape of the runbook's other messages (`announce`): the journal lists it with them.
    return {"phase": "rto_missed", "at": time.time(), "subject": subject, "message": message,
            "sent": send(subject, message, channels)}
