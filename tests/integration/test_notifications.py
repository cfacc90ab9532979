"""A failed drill run notifies every channel through its journal task's callback, under dag.test(); the
daily's backups-verified Asset is emitted only for a verified cluster.

The end-to-end run is the daily verification with an injected fault (a backup-age target nobody meets) on
the real sandbox: the message names the drill, the cluster, the failed checks and the link, and the run
emits no asset event for main. The pass side of the Asset (an event for main, the example DAG queued) is
asserted by tests/integration/test_daily_verification.py's healthy run. The decisions (recovery, nothing
after a pass, channels down) are tested at the function level in tests/unit/test_notifications.py.
"""

from __future__ import annotations

import json
import logging

import pytest

from integration.helpers import journal, run_dag
from notify_servers import (  # noqa: F401 - fixtures
    ROUTING_KEY,
    SLACK_TOKEN,
    SMTP_PASSWORD,
    connections,
    endpoints,
    estate_with_notifications,
    notify_endpoints,
    smtp_inbox,
)

pytestmark = [pytest.mark.sandbox,
              pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")]
DAG = "dr_daily_verification"
DRILL_DAGS = ["dr_daily_verification", "dr_monthly_restore_test", "dr_monthly_aws_backup_restore_test",
              "dr_monthly_velero_restore_test", "dr_quarterly_failover_drill", "dr_postgres_primary_failover",
              "dr_weekly_pod_kill", "dr_monthly_az_failure"]


def test_every_drills_journal_task_notifies_its_outcome(dagbag):
    from drdrill.core.notifications import NOTIFYING_DRILLS
    from drdrill.notifiers import DrillOutcomeNotifier

    drills = sorted(d for d in dagbag.dag_ids if d.startswith("dr_"))
    assert drills == sorted(DRILL_DAGS) == sorted(NOTIFYING_DRILLS)
    for dag_id in drills:
        t = dagbag.get_dag(dag_id).get_task("journal")
        for cb in (t.on_success_callback, t.on_failure_callback):
            assert any(isinstance(c, DrillOutcomeNotifier) for c in cb or []), dag_id


def test_a_failed_daily_run_notifies_every_channel_and_emits_no_asset_event(
        dagbag, estate, sandbox, tmp_path, monkeypatch, smtp_inbox, endpoints, caplog, capfd):  # noqa: F811
    from drdrill.core.paths import DEFAULT_ESTATE

    caplog.set_level(logging.INFO)
    port, inbox = smtp_inbox
    slack, pd = endpoints
    connections(monkeypatch, smtp_port=port, slack_url=slack.url, pagerduty_url=pd.url)
    f = estate_with_notifications(tmp_path, monkeypatch)
    old = "max_backup_age_hours: {full: 192, diff: 36}"
    assert old in DEFAULT_ESTATE.read_text()
    f.write_text(f.read_text().replace(old, "max_backup_age_hours: {full: 0.0001, diff: 36}"))
    before = _events("main")

    dr = run_dag(dagbag, DAG)
    doc = journal(estate, DAG, dr.run_id)
    assert dr.state == "failed" and doc["status"] == "failed"
    failed = [line for line in doc["failures"] if line.startswith("FAIL backup_age.full ")]
    assert len(failed) == 2, doc["failures"]  # repo1 and repo2
    # The journal task's on_failure_callback sent it: e-mail, Slack and PagerDuty, each naming the drill, the
    # cluster, the failed checks and the run's link.
    link_part = f"/dags/{DAG}/runs/"
    [mail] = inbox
    assert mail["Subject"].startswith(f"[drdrill sandbox] FAILED: {DAG} on main (")
    body = "".join(p.get_payload(decode=True).decode() for p in mail.walk() if not p.is_multipart())
    assert all(line in body for line in failed) and link_part in body
    [hook] = slack.requests
    assert f"FAILED: {DAG} on main" in hook["body"]["text"] and failed[0] in hook["body"]["text"]
    [event] = pd.requests
    assert event["body"]["event_action"] == "trigger" and event["body"]["dedup_key"] == f"drdrill/sandbox/{DAG}/main"
    assert set(failed) <= set(event["body"]["payload"]["custom_details"]["failed_checks"])
    assert link_part in event["body"]["links"][0]["href"]
    # main's checks failed: no backups-verified event for it (the task ran and said so).
    assert doc["backups_verified"] == [] and _events("main") == before
    assert next(s for s in doc["steps"] if s["task_id"] == "backups_verified")["status"] == "success"
    out, err = capfd.readouterr()
    for text in (mail.as_string(), json.dumps(hook["body"]), json.dumps(event["body"]["payload"]), caplog.text,
                 out, err, json.dumps(doc)):
        for secret in (SLACK_TOKEN, ROUTING_KEY, SMTP_PASSWORD):
            assert secret not in text


def _events(cluster: str) -> list[dict]:
    from drdrill.assets import backups_verified_uri
    from integration.assethelpers import asset_events

    return asset_events(backups_verified_uri("sandbox", cluster))


def test_the_example_dag_is_scheduled_on_mains_backups_verified_asset(dagbag):
    from drdrill.assets import backups_verified_uri

    dag = dagbag.get_dag("example_after_backups_verified")
    assert type(dag.timetable).__name__ == "AssetTriggeredTimetable"
    assert [a.uri for a in dag.timetable.asset_condition.objects] == \
        [backups_verified_uri("sandbox", "main")] == ["x-drdrill://sandbox/main/backups-verified"]
    assert "example" in dag.tags
