"""A drill's failure and its recovery reach people through the providers' notifiers (drdrill.drills.outcome).

Real servers on loopback (tests/notify_servers.py): aiosmtpd requiring the connection's login, and an HTTP(S)
endpoint standing in for the Slack incoming webhook and PagerDuty's Events API v2; the Airflow connections
point at them. Journals are real files written by drdrill.core.journal; the outcome is decided from them.
The wiring (every drill's journal task carries the notifier: tests/unit/test_outcome_wiring.py) runs end to end in
tests/integration/test_daily_verification.py (a failed daily run under dag.test() reaches all three channels).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from notify_servers import (  # noqa: F401 - fixtures
    ROUTING_KEY,
    SLACK_TOKEN,
    SMTP_PASSWORD,
    connections,
    endpoints,
    estate_with_notifications,
    free_port,
    notify_endpoints,
    smtp_inbox,
)

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
DAG = "dr_daily_verification"
FAILURES = ["FAIL verify [main/repo1]: pgbackrest verify found 1 invalid file(s) in backup 20261206-101010F",
            "FAIL scorecard [main/scorecard]: 3-2-1-1-0 scorecard of main: 3-2-1-1-1 (required 3-2-1-1-0)"]
SECRETS = (SLACK_TOKEN, ROUTING_KEY, SMTP_PASSWORD)


@pytest.fixture
def wired(tmp_path, monkeypatch, smtp_inbox, endpoints):  # noqa: F811 - fixtures
    """An estate whose three channels point at the loopback servers, with a journal location of its own."""
    slack, pd = endpoints
    connections(monkeypatch, smtp_port=smtp_inbox[0], slack_url=slack.url, pagerduty_url=pd.url)
    estate_with_notifications(tmp_path, monkeypatch, journal=tmp_path / "journal")
    return SimpleNamespace(journal=tmp_path / "journal", inbox=smtp_inbox[1], slack=slack, pd=pd)


def _run(w, run_id: str, status: str, *, cluster: str | None = "main", failures=(), dry_run: bool = False) -> dict:
    """Write the run's journal as the journal task does, then run the outcome notification on its context."""
    from drdrill.core import journal
    from drdrill.drills import outcome

    doc = {"drill": DAG, "run_id": run_id, "run_type": "manual", "params": {"dry_run": dry_run}, "cluster": cluster,
           "written_at": datetime.now(UTC).isoformat(), "status": status, "steps": [], "results": [],
           "failures": list(failures)}
    journal.write(f"file://{w.journal}", None, doc)
    return outcome.notify_run({"dag": SimpleNamespace(dag_id=DAG), "dag_run": SimpleNamespace(run_id=run_id),
                               "params": doc["params"]})


def _body(msg) -> str:
    return "".join(p.get_payload(decode=True).decode() for p in msg.walk() if not p.is_multipart())


def _no_secret(*texts: str) -> None:
    for text in texts:
        for s in SECRETS:
            assert s not in text


def test_a_failed_run_notifies_every_channel_with_drill_cluster_failed_checks_and_link(wired, caplog, capfd):
    caplog.set_level(logging.INFO)
    run_id = "scheduled__2026-12-06T06:00:00+00:00"
    out = _run(wired, run_id, "failed", failures=FAILURES)
    assert out["event"] == "failure"
    assert out["sent"] == [{"kind": "smtp", "sent": True}, {"kind": "slack", "sent": True},
                           {"kind": "pagerduty", "sent": True}], out["sent"]
    link = "http://localhost:8080/dags/dr_daily_verification/runs/scheduled__2026-12-06T06%3A00%3A00%2B00%3A00"
    # E-mail: both recipients, the sender of the estate, the drill, the cluster, every failed check, the link.
    [mail] = wired.inbox
    assert mail["To"] == "dba@example.com, sre@example.com" and mail["From"] == "drills@example.com"
    assert mail["Subject"] == "[drdrill sandbox] FAILED: dr_daily_verification on main (2 failed checks)"
    body = _body(mail)
    assert "Cluster: main" in body and link in body and FAILURES[0] in body and FAILURES[1] in body
    assert "\nJournal: " in body
    assert f"{wired.journal}/dr_daily_verification/scheduled__2026-12-06T06_00_00_00_00.json" in body
    # Slack: the webhook token is the URL's path (as Slack issues it); the text has the same facts.
    [slack] = wired.slack.requests
    assert slack["path"] == f"/services/{SLACK_TOKEN}"
    text = slack["body"]["text"]
    assert "FAILED: dr_daily_verification on main" in text and FAILURES[0] in text and link in text
    # PagerDuty: an incident triggered with one dedup key per drill and cluster, the routing key from the
    # connection, the failed checks and the run's link.
    [pd] = wired.pd.requests
    assert pd["path"] == "/v2/enqueue"
    ev = pd["body"]
    assert ev["routing_key"] == ROUTING_KEY and ev["event_action"] == "trigger"
    assert ev["dedup_key"] == "drdrill/sandbox/dr_daily_verification/main"
    assert ev["payload"]["severity"] == "error" and "FAILED: dr_daily_verification on main" in ev["payload"]["summary"]
    assert ev["payload"]["custom_details"]["failed_checks"] == FAILURES
    assert ev["links"] == [{"href": link, "text": "dr_daily_verification run in Airflow"}]
    # No secret in any message, nor in the logs (the routing key travels only as the API's credential).
    captured = capfd.readouterr()
    _no_secret(mail.as_string(), text, json.dumps(ev["payload"]), caplog.text, captured.out, captured.err)


def test_the_first_pass_after_a_failure_is_a_recovery_and_a_pass_after_a_pass_sends_nothing(wired):
    assert _run(wired, "manual__1", "failed", failures=FAILURES)["event"] == "failure"
    for ep in (wired.slack, wired.pd):
        ep.requests.clear()
    wired.inbox.clear()
    # A dry run's pass proves no recovery, and a pass on another cluster is not this cluster's recovery.
    assert _run(wired, "manual__2", "passed", dry_run=True)["event"] is None
    assert _run(wired, "manual__3", "passed", cluster="other")["event"] is None
    assert not wired.inbox and not wired.slack.requests and not wired.pd.requests

    out = _run(wired, "manual__4", "passed")
    assert out["event"] == "recovery" and all(s["sent"] for s in out["sent"]), out
    [mail] = wired.inbox
    assert mail["Subject"] == "[drdrill sandbox] RECOVERED: dr_daily_verification on main passed again"
    assert "recovered from the failure of run manual__1" in _body(mail) and "2 failed check(s)" in _body(mail)
    assert "RECOVERED: dr_daily_verification on main" in wired.slack.requests[0]["body"]["text"]
    ev = wired.pd.requests[0]["body"]
    assert ev["event_action"] == "resolve" and ev["dedup_key"] == "drdrill/sandbox/dr_daily_verification/main"

    wired.inbox.clear()
    wired.slack.requests.clear()
    wired.pd.requests.clear()
    out = _run(wired, "manual__5", "passed")
    assert out["event"] is None and out["previous"]["run_id"] == "manual__4"
    assert not wired.inbox and not wired.slack.requests and not wired.pd.requests


def test_the_first_pass_ever_and_a_skipped_run_send_nothing(wired):
    assert _run(wired, "manual__1", "passed")["event"] is None
    assert _run(wired, "manual__2", "skipped")["event"] is None
    assert not wired.inbox and not wired.slack.requests and not wired.pd.requests


def test_channels_that_are_down_are_logged_and_never_raise_nor_leak_a_secret(wired, monkeypatch, caplog, capfd):
    wired.slack.status = 500  # the webhook answers 500
    wired.pd.status = 503  # PagerDuty unavailable (retried once, then reported)
    connections(monkeypatch, smtp_port=free_port(), slack_url=wired.slack.url, pagerduty_url=wired.pd.url)  # no SMTP
    out = _run(wired, "manual__1", "failed", failures=FAILURES)
    assert out["event"] == "failure"
    assert [(s["kind"], s["sent"]) for s in out["sent"]] == [("smtp", False), ("slack", False), ("pagerduty", False)]
    assert "Connection refused" in out["sent"][0]["error"] and "500" in out["sent"][1]["error"]
    for kind, conn in (("smtp", "drill_smtp"), ("slack", "drill_slack"), ("pagerduty", "drill_pagerduty")):
        assert f"through {kind} (connection {conn})" in caplog.text
    assert len(wired.pd.requests) == 2  # one retry
    captured = capfd.readouterr()
    _no_secret(caplog.text, captured.out, captured.err, json.dumps(out))


def test_an_error_that_quotes_the_webhook_url_is_masked(wired):
    from drdrill.drills import channels

    err = f"HTTPConnectionPool(host='127.0.0.1'): Max retries exceeded with url: /services/{SLACK_TOKEN}"
    assert channels.masked(err, "drill_slack") == "HTTPConnectionPool(host='127.0.0.1'): Max retries exceeded " \
                                                  "with url: /services/***"
    assert channels.masked("nothing secret", "no_such_connection") == "nothing secret"


def test_a_channel_restricted_to_other_drills_or_events_hears_nothing(wired, tmp_path, monkeypatch):
    estate_with_notifications(tmp_path, monkeypatch, journal=wired.journal, notifications="""
notifications:
  smtp: {conn_id: drill_smtp, to: [dba@example.com], drills: [dr_monthly_restore_test]}
  slack: {conn_id: drill_slack, events: [recovery]}
  pagerduty: {conn_id: drill_pagerduty}
""")
    out = _run(wired, "manual__1", "failed", failures=FAILURES)
    assert [s["kind"] for s in out["sent"]] == ["pagerduty"]
    assert not wired.inbox and not wired.slack.requests


def test_a_missing_journal_after_a_failure_still_notifies_the_error(wired):
    from drdrill.drills import outcome

    out = outcome.notify_run({"dag": SimpleNamespace(dag_id="dr_monthly_restore_test"),
                              "dag_run": SimpleNamespace(run_id="manual__x"), "params": {"cluster": "main"},
                              "exception": RuntimeError("could not write the journal to s3://evidence")})
    assert out["event"] == "failure"
    assert "journal: the run's journal was not written: RuntimeError: could not write the journal" in out["text"]
    assert "Journal:" not in out["text"]
    assert "dr_monthly_restore_test on main" in wired.inbox[0]["Subject"]


def test_a_journal_task_killed_before_it_wrote_the_journal_notifies_its_failure(wired):
    """Its worker killed, the task's failure callback runs in the DAG processor after the heartbeat timed out,
    with no exception in the context: the failure is still told. A success callback finding no journal is not."""
    from drdrill.drills import outcome
    from drdrill.notifiers import DrillOutcomeNotifier, outcome_callbacks

    ctx = {"dag": SimpleNamespace(dag_id="dr_weekly_pod_kill"), "dag_run": SimpleNamespace(run_id="manual__k"),
           "params": {}}
    assert outcome.notify_run(ctx) == {"event": None, "reason": "no journal"}
    assert not wired.inbox and not wired.slack.requests
    [on_failure] = outcome_callbacks()["on_failure_callback"]
    assert isinstance(on_failure, DrillOutcomeNotifier) and on_failure.journal_task_failed
    on_failure.notify(ctx)
    out = on_failure.outcome
    assert out["event"] == "failure" and "FAILED: dr_weekly_pod_kill on no cluster (1 failed check)" in out["subject"]
    assert "journal: the run's journal was not written: the journal task's process was lost" in out["text"]
    assert [s["sent"] for s in out["sent"]] == [True, True, True]
    assert "the journal task's process was lost" in wired.slack.requests[0]["body"]["text"]


@pytest.mark.parametrize(("section", "error"), [
    ("smtp: {conn_id: c}", "notifications.smtp.to"),
    ("smtp: {conn_id: c, to: [a@example.com], drills: [dr_nightly]}", "unknown drill(s) ['dr_nightly']"),
    ("slack: {conn_id: c, events: [success]}", "notifications.slack.events[0]"),
    ("pagerduty: {conn_id: c, severity: urgent}", "notifications.pagerduty.severity"),
    ("pagerduty: {routing_key: abc, conn_id: c}", "notifications.pagerduty.routing_key"),  # secrets: connections
    ("slack: {}", "notifications.slack.conn_id"),
])
def test_the_notifications_section_refuses_mistakes_naming_the_field(tmp_path, monkeypatch, section, error):
    from drdrill.core.errors import EstateError
    from drdrill.core.estate import load_estate

    f = estate_with_notifications(tmp_path, monkeypatch, notifications=f"\nnotifications:\n  {section}\n")
    with pytest.raises((EstateError, ValidationError)) as e:
        load_estate(f)
    assert error in str(e.value).replace("\n", " ").replace(" -> ", "."), str(e.value)


def test_defaults_every_event_every_drill_and_none_configured_sends_nothing():
    from drdrill.core.notifications import Notifications

    n = Notifications.model_validate({"slack": {"conn_id": "s"}})
    assert [k for k, _ in n.channels("dr_weekly_pod_kill", "failure")] == ["slack"]
    assert [k for k, _ in n.channels("dr_weekly_pod_kill", "recovery")] == ["slack"]
    assert Notifications().channels("dr_daily_verification", "failure") == []


def test_the_estate_check_names_a_missing_channel_connection_and_its_fix(tmp_path, monkeypatch):
    from drdrill.core.estate import load_estate
    from drdrill.drills.estatecheck import check_connection, connection_ids

    f = estate_with_notifications(tmp_path, monkeypatch, notifications="""
notifications:
  smtp: {conn_id: drill_smtp, to: [dba@example.com], drills: [dr_monthly_restore_test]}
  pagerduty: {conn_id: drdrill_test_no_such_pagerduty}
""")
    estate = load_estate(f)
    # The smtp channel is not the daily's (the estate's other connections: tests/unit/test_estate_connections.py).
    ids = [i for i in connection_ids(estate, [], "dr_daily_verification") if i[2].startswith("notifications.")]
    assert ids == [("drdrill_test_no_such_pagerduty", "pagerduty", "notifications.pagerduty")]
    assert [i[2] for i in connection_ids(estate, []) if i[2].startswith("notifications.")] == [
        "notifications.smtp", "notifications.pagerduty"]
    r = check_connection(*ids[0])
    assert r.failed, r.message
    assert "notifications.pagerduty names connection 'drdrill_test_no_such_pagerduty', which is not defined" in \
        r.message and "--conn-type pagerduty_events --conn-password" in r.message


def test_the_notifier_never_raises_into_the_task(caplog):
    from drdrill.notifiers import DrillOutcomeNotifier, outcome_callbacks

    n = DrillOutcomeNotifier()
    n.notify({})  # not even a DAG in the context: logged, the task's result stays what it was
    assert n.outcome == {"event": None, "reason": "error"}
    assert "the outcome notification of this run failed" in caplog.text
    cbs = outcome_callbacks()
    assert [type(c) for c in cbs["on_success_callback"] + cbs["on_failure_callback"]] == [DrillOutcomeNotifier] * 2


def test_a_webhook_url_pasted_whole_is_masked_in_errors_that_quote_its_path_and_in_airflows_logs(wired, monkeypatch):
    """Slack hands out an incoming webhook as one URL, which the provider takes whole as the connection's
    password; an HTTP error quotes only its path. Its token is masked there too, in drdrill's error and in what
    the provider itself logs (registered with Airflow's secrets masker before the provider runs)."""
    from airflow.sdk._shared.secrets_masker import redact

    from drdrill.drills import channels

    token = "T0DRDRILL/B0DRDRILL/" + SLACK_TOKEN
    monkeypatch.setenv("AIRFLOW_CONN_DRILL_SLACK", json.dumps({
        "conn_type": "slackwebhook", "password": f"{wired.slack.url}/services/{token}", "extra": {"timeout": 5}}))
    wired.slack.status = 500
    out = _run(wired, "manual__1", "failed", failures=FAILURES)
    slack = next(s for s in out["sent"] if s["kind"] == "slack")
    assert slack["sent"] is False and "500" in slack["error"]
    assert wired.slack.requests[-1]["path"] == f"/services/{token}"  # the URL was used whole
    assert token not in json.dumps(out)
    err = f"HTTPConnectionPool(host='127.0.0.1'): Max retries exceeded with url: /services/{token}"
    assert channels.masked(err, "drill_slack").endswith("with url: /services/***")
    # Registered with Airflow's secrets masker: a provider's own log line of the URL is redacted in the task log.
    assert token not in str(redact(f"sending to /services/{token}"))
