"""Sending one message through the Airflow providers' notifiers: the one path every drdrill message takes.

The runbook's communication messages (`drdrill.drills.failover.comms`) and the drills' failure and
recovery notifications (`drdrill.drills.outcome`) both send through here: SMTP with
``apache-airflow-providers-smtp``'s ``SmtpNotifier``, Slack with the slack provider's notifiers
(``SlackWebhookNotifier`` for an incoming webhook, ``SlackNotifier`` for the runbook's API-token
channel), PagerDuty with the pagerduty provider's ``PagerdutyNotifier`` on
`drdrill.hooks.pagerduty.PagerDutyEventsHook`. Every secret stays in the Airflow connection; an error
is reported with every secret of that connection masked (its password, the extra's credentials, and the
token part of a webhook URL), and the same secrets are registered with Airflow's secrets masker
before a provider uses the connection, so a webhook token in a failing URL never reaches a log.
"""

from __future__ import annotations

import html
import logging
from typing import Any

log = logging.getLogger("drdrill.drills.channels")


def smtp(conn_id: str, to: list[str], subject: str, text: str, from_email: str | None = None) -> None:
    """An e-mail through the connection (the text as preformatted HTML)."""
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    mask_connection(conn_id)
    SmtpNotifier(to=to, smtp_conn_id=conn_id, subject=subject, from_email=from_email,
                 html_content=f"<pre>{html.escape(text, quote=False)}</pre>").notify({})


def slack_webhook(conn_id: str, text: str) -> None:
    """A message to a Slack incoming webhook (the provider's ``SlackWebhookNotifier``)."""
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    mask_connection(conn_id)
    SlackWebhookNotifier(slack_webhook_conn_id=conn_id, text=text, timeout=TIMEOUT_SECONDS).notify({})


def slack_api(conn_id: str, channel: str, text: str) -> None:
    """A message to a Slack channel through the Web API (the provider's ``SlackNotifier``)."""
    from airflow.providers.slack.notifications.slack import SlackNotifier

    mask_connection(conn_id)
    SlackNotifier(slack_conn_id=conn_id, channel=channel, text=text).notify({})


def pagerduty(conn_id: str, *, summary: str, action: str, dedup_key: str, severity: str = "critical",
              source: str = "drdrill", custom_details: Any | None = None, links: list[dict] | None = None) -> None:
    """A PagerDuty event: ``trigger`` opens (or adds to) the incident of ``dedup_key``, ``resolve`` closes it."""
    from functools import cached_property

    from airflow.providers.pagerduty.notifications.pagerduty import PagerdutyNotifier

    from drdrill.hooks.pagerduty import PagerDutyEventsHook

    class _Notifier(PagerdutyNotifier):  # the provider's notifier on the hook that honours the connection's host
        @cached_property
        def hook(self) -> PagerDutyEventsHook:
            return PagerDutyEventsHook(pagerduty_events_conn_id=self.pagerduty_events_conn_id)

    mask_connection(conn_id)
    _Notifier(summary=summary[:1024], severity=severity, source=source, action=action, dedup_key=dedup_key,
              custom_details=custom_details, links=links, pagerduty_events_conn_id=conn_id).notify({})


TIMEOUT_SECONDS = 10


def secrets_of(conn_id: str | None) -> list[str]:
    """The connection's password and every extra value that looks like a credential (to mask in errors)."""
    if not conn_id:
        return []
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001 - a connection that cannot be read has no secret to leak
        return []
    found = [conn.password or "", _url_token(conn.password or ""), _url_token(conn.host or "")]
    for key, value in (conn.extra_dejson or {}).items():
        if any(w in key.lower() for w in ("token", "key", "password", "secret", "webhook")):
            found.append(str(value))
            found.append(_url_token(str(value)))
    # A webhook token is also sent URL-quoted in some errors.
    from urllib.parse import quote

    found += [quote(s, safe="") for s in found]
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


def _url_token(url: str) -> str:
    """The token part of a webhook URL: what follows ``/services/``, else nothing. Slack hands out an incoming
    webhook as one URL, which the provider takes whole as the connection's password, and an HTTP error
    quotes only its path (``Max retries exceeded with url: /services/T../B../..``): the whole URL alone
    would not match it."""
    from urllib.parse import urlsplit

    path = urlsplit(url).path if "://" in url else url
    return path.split("/services/", 1)[1].strip("/") if "/services/" in path else ""


def mask_connection(conn_id: str | None) -> None:
    """Register the connection's secrets with Airflow's secrets masker, before a provider uses it: a provider
    that logs its URL or error (into the task's log) has them redacted too, not only drdrill's own messages."""
    from airflow.sdk.log import mask_secret

    for s in secrets_of(conn_id):
        mask_secret(s)


def masked(text: str, conn_id: str | None) -> str:
    """``text`` with every secret of the connection replaced by ``***``."""
    for s in secrets_of(conn_id):
        text = text.replace(s, "***")
    return text


def failed(kind: str, conn_id: str | None, what: str, e: BaseException) -> dict[str, Any]:
    """Log a message that could not be delivered (the channel, the connection, the error masked) and
    return the outcome."""
    error = masked(f"{type(e).__name__}: {e}", conn_id)[:500]
    log.error("could not send %s through %s (connection %s): %s", what, kind, conn_id or "-", error)
    return {"kind": kind, "sent": False, "error": error}
