"""PagerDuty Events API v2 through the provider's hook, with the API's base URL from the connection.

``apache-airflow-providers-pagerduty``'s ``PagerdutyEventsHook`` always posts to
``https://events.pagerduty.com`` (its ``send_event`` builds ``pagerduty.EventsApiV2Client`` without a
``base_url``) and the client retries a 5xx for up to 9 s and a refused connection for up to 21 s.
This subclass reads the base URL from the connection's ``host`` (the EU service region is
``https://events.eu.pagerduty.com``; the client accepts only ``https://``), passed to the client's own
``base_url`` parameter, and bounds the retries: a page that cannot be delivered is reported in a
few seconds, never holds the drill's journal task for long.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.pagerduty.hooks.pagerduty_events import PagerdutyEventsHook, prepare_event_data

DEFAULT_EVENTS_URL = "https://events.pagerduty.com"
# One retry of a 5xx or a network error, after SLEEP_SECONDS * 2 (the client doubles its timer).
RETRIES = 1
SLEEP_SECONDS = 0.5
TIMEOUT_SECONDS = 10.0


class PagerDutyEventsHook(PagerdutyEventsHook):
    """The provider's Events hook; the connection's ``host`` (an ``https://`` URL) is the API's base URL."""

    def __init__(self, pagerduty_events_conn_id: str | None = None, integration_key: str | None = None) -> None:
        super().__init__(integration_key=integration_key, pagerduty_events_conn_id=pagerduty_events_conn_id)
        self.events_url = DEFAULT_EVENTS_URL
        if pagerduty_events_conn_id:
            host = (self.get_connection(pagerduty_events_conn_id).host or "").strip()
            if host:
                self.events_url = host if "://" in host else f"https://{host}"

    def client(self) -> Any:
        import pagerduty

        c = pagerduty.EventsApiV2Client(self.integration_key, base_url=self.events_url.rstrip("/"))
        c.retry = {500: RETRIES, 502: RETRIES, 503: RETRIES, 504: RETRIES}
        c.max_network_attempts = RETRIES
        c.max_http_attempts = RETRIES + 1
        c.sleep_timer = SLEEP_SECONDS
        c.stagger_cooldown = 0
        c.timeout = TIMEOUT_SECONDS
        return c

    def send_event(self, summary: str, severity: str, source: str = "airflow", action: str = "trigger",
                   dedup_key: str | None = None, custom_details: Any | None = None, group: str | None = None,
                   component: str | None = None, class_type: str | None = None, images: list[Any] | None = None,
                   links: list[Any] | None = None) -> str:
        """As the provider's, through `client`; returns the dedup key PagerDuty answered with."""
        data = prepare_event_data(summary=summary, severity=severity, source=source, custom_details=custom_details,
                                  component=component, group=group, class_type=class_type, action=action,
                                  dedup_key=dedup_key, images=images, links=links)
        return self.client().send_event(**data)
