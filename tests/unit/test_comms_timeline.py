"""The runbook's messages (template, channels, RTO escalation) and the run's Markdown timeline."""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime, timedelta

import pytest

from drdrill.core.errors import PreflightError
from drdrill.core.paths import DEFAULT_ESTATE
from drdrill.drills.failover import comms, timeline

NOW = datetime(2026, 4, 1, 5, 12, 0, tzinfo=UTC)
STARTED = (NOW - timedelta(minutes=12)).timestamp()

SMTP = "airflow.providers.smtp.notifications.smtp"
SLACK = "airflow.providers.slack.notifications.slack"


def _without(monkeypatch, module: str) -> None:
    """Make ``module`` unimportable, as on a worker where its provider is not installed."""
    monkeypatch.setitem(sys.modules, module, None)


# ------------------------------------------------------------------ render
def test_drill_message_fills_the_seed_template_with_real_values():
    text = comms.render("failover", cluster="main", standby="pg2", impact="canary writes failing for 4 s",
                        started_at=STARTED, rto_target_minutes=30, drill=True, now=NOW)
    assert text == (
        "[DRILL] [FAILOVER] Database failover in progress on main. We are promoting our standby database (pg2).\n"
        "Impact: canary writes failing for 4 s. ETA to resolution: 18 minutes (RTO target 30).\n"
        "Next update: 05:22 UTC.")


def test_incident_message_has_no_drill_prefix_and_says_when_nothing_is_measured():
    text = comms.render("assess", cluster="billing", started_at=STARTED, rto_target_minutes=20, now=NOW)
    first, impact, nxt = text.splitlines()
    assert first.startswith("[ASSESS] Database primary failure suspected on billing.")
    assert impact == "Impact: none measured yet. ETA to resolution: 8 minutes (RTO target 20)."
    assert nxt == "Next update: 05:22 UTC."


def test_eta_never_goes_negative_once_the_target_is_passed():
    late = (NOW - timedelta(minutes=45)).timestamp()
    text = comms.render("verify", cluster="main", standby="pg2", started_at=late, rto_target_minutes=30, now=NOW)
    assert "ETA to resolution: 0 minutes (RTO target 30)." in text


def test_eta_is_the_whole_target_before_the_clock_starts():
    text = comms.render("failover", cluster="main", standby="pg2", rto_target_minutes=25, now=NOW)
    assert "ETA to resolution: 25 minutes (RTO target 25)." in text


def test_resolved_message_carries_the_measured_figures():
    text = comms.render("resolved", cluster="main", rto="41.2 s", rpo="0 write(s) lost", started_at=STARTED,
                        status="RESOLVED", drill=True, now=NOW)
    assert text.splitlines()[0] == ("[DRILL] [RESOLVED] Database incident on main resolved. "
                                    "RTO 41.2 s, RPO 0 write(s) lost.")
    assert "ETA to resolution: now." in text


def test_rollback_and_failure_name_the_reason():
    assert "ROLLED BACK: verify failed" in comms.render("rollback", cluster="main", reason="verify failed", now=NOW)
    failed = comms.render("failed", cluster="main", reason="promote timed out", status="FAILED", now=NOW)
    assert failed.startswith("[FAILED] Database failover on main did NOT complete: promote timed out.")


@pytest.mark.parametrize("phase", sorted(comms.HEADLINES))
def test_every_phase_leaves_no_placeholder(phase):
    text = comms.render(phase, cluster="main", standby="pg2", reason="r", started_at=STARTED, now=NOW)
    assert not re.search(r"[{}]|\[describe\]|\[time\]", text), text
    assert text.startswith(f"[{phase.upper()}] ") and len(text.splitlines()) == 3


# ------------------------------------------------------------------ channels
def test_log_channel_logs_subject_and_message(caplog):
    with caplog.at_level(logging.WARNING, logger="drdrill.drills.failover.comms"):
        out = comms.send("[DRILL] main: failover (run1)", "the message body", [{"kind": "log"}])
    assert out == [{"kind": "log", "sent": True}]
    assert any("[DRILL] main: failover (run1)" in r.getMessage() and "the message body" in r.getMessage()
               for r in caplog.records if r.name == "drdrill.drills.failover.comms")


def test_a_channel_without_its_provider_is_reported_and_the_others_still_go_out(monkeypatch, caplog):
    _without(monkeypatch, SMTP)
    _without(monkeypatch, SLACK)
    channels = [{"kind": "smtp", "conn_id": "smtp_default", "to": ["dba@example.com"]},
                {"kind": "slack", "conn_id": "slack_default", "channel": None},
                {"kind": "log"}]
    with caplog.at_level(logging.WARNING, logger="drdrill.drills.failover.comms"):
        out = comms.send("s", "m", channels)
    assert [(o["kind"], o["sent"]) for o in out] == [("smtp", False), ("slack", False), ("log", True)]
    assert out[0]["error"].startswith("ModuleNotFoundError") and SMTP in out[0]["error"]
    assert any("could not send 's' through smtp" in r.getMessage() for r in caplog.records)


def test_smtp_through_a_connection_that_does_not_exist_is_reported_not_raised():
    pytest.importorskip(SMTP)
    out = comms.send("s", "m", [{"kind": "smtp", "conn_id": "drdrill_test_no_such_conn", "to": ["a@example.com"]}])
    assert out[0]["kind"] == "smtp" and out[0]["sent"] is False and out[0]["error"]


def test_check_channels_refuses_a_channel_without_its_provider(monkeypatch):
    comms.check_channels([{"kind": "log"}])
    _without(monkeypatch, SMTP)
    with pytest.raises(PreflightError, match="needs apache-airflow-providers-smtp"):
        comms.check_channels([{"kind": "log"}, {"kind": "smtp", "conn_id": "c", "to": ["a@example.com"]}])
    _without(monkeypatch, SLACK)
    with pytest.raises(PreflightError, match="needs apache-airflow-providers-slack: pip install it"):
        comms.check_channels([{"kind": "slack", "conn_id": "c"}])


def test_check_channels_accepts_an_installed_provider():
    pytest.importorskip(SMTP)
    comms.check_channels([{"kind": "smtp", "conn_id": "c", "to": ["a@example.com"]}])


# ------------------------------------------------------------------ RTO deadline callback
def _escalations(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "drdrill.drills.failover.comms" and "[ESCALATION]" in r.getMessage()]


def _missed(**kw):
    return {"minutes": 30, "since": 1775019600.0, "run_id": "scheduled__2026-04-01T05:00:00+00:00",
            "dag_id": "dr_quarterly_failover_drill", "cluster": "main", **kw}


def test_deadline_callback_logs_the_escalation_with_the_sandbox_estate(monkeypatch, caplog):
    monkeypatch.delenv("DRDRILL_ESTATE", raising=False)
    with caplog.at_level(logging.WARNING, logger="drdrill.drills.failover.comms"):
        out = comms.rto_deadline_missed(_missed())
    [msg] = _escalations(caplog)
    assert msg.startswith("[DRILL] RTO target of 30 min missed on main: failover run "
                          "scheduled__2026-04-01T05:00:00+00:00 is not verified yet")
    # counted from the outage (05:00:00 UTC), not from the run being queued
    assert "has not restored service 30 minutes after the failure (05:00:00 UTC)" in msg
    assert "Impact: the RTO target is missed." in msg and "the DBA lead and the engineering manager" in msg
    assert not [r for r in caplog.records if "estate unreadable" in r.getMessage()]
    assert out["phase"] == "rto_missed" and out["sent"] == [{"kind": "log", "sent": True}]


def test_a_late_deadline_alert_says_when_service_came_back(monkeypatch, caplog):
    monkeypatch.delenv("DRDRILL_ESTATE", raising=False)
    with caplog.at_level(logging.WARNING, logger="drdrill.drills.failover.comms"):
        out = comms.rto_deadline_missed(_missed(deadline_at=1775021400.0, recovered_at=1775021445.0))
    assert out["subject"].endswith("was verified 45 s after the target")
    assert "restored service at 05:30:45 UTC, 45 s after the RTO target of 30 minutes" in out["message"]


def test_deadline_callback_still_logs_when_the_estate_is_unreadable(monkeypatch, caplog, tmp_path):
    monkeypatch.setenv("DRDRILL_ESTATE", str(tmp_path / "missing.yaml"))
    with caplog.at_level(logging.WARNING, logger="drdrill.drills.failover.comms"):
        comms.rto_deadline_missed(_missed(minutes=45, dag_id="dr_postgres_primary_failover"))
    assert _escalations(caplog)[0].startswith("RTO target of 45 min missed on main")  # an incident: no [DRILL]
    assert any("estate unreadable for the RTO alert" in r.getMessage() for r in caplog.records)


def test_deadline_callback_goes_to_the_clusters_channels(monkeypatch, caplog, tmp_path):
    est = tmp_path / "estate.yaml"
    est.write_text(DEFAULT_ESTATE.read_text().replace(
        "      notify:\n        - kind: log\n",
        "      notify:\n        - kind: log\n        - {kind: smtp, conn_id: smtp_dba, to: [dba@example.com]}\n")
        + f"state:\n  location: file://{tmp_path}/state\n")
    monkeypatch.setenv("DRDRILL_ESTATE", str(est))
    _without(monkeypatch, SMTP)  # no mail leaves the machine; the attempt is what is checked
    with caplog.at_level(logging.WARNING, logger="drdrill.drills.failover.comms"):
        out = comms.rto_deadline_missed(_missed())
    assert len(_escalations(caplog)) == 1  # the log channel once
    assert [c["kind"] for c in out["sent"]] == ["log", "smtp"] and out["sent"][1]["sent"] is False
    assert any("could not send '[DRILL] RTO target of 30 min missed" in r.getMessage()
               and "through smtp" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ timeline
def _at(seconds: float) -> str:
    return (datetime(2026, 4, 1, 5, 0, 0, tzinfo=UTC) + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def _ts(seconds: float) -> float:
    return (datetime(2026, 4, 1, 5, 0, 0, tzinfo=UTC) + timedelta(seconds=seconds)).timestamp()


def _step(task_id: str, start: float, end: float, status: str = "success", **kw) -> dict:
    return {"task_id": task_id, "map_index": -1, "started_at": _at(start), "ended_at": _at(end),
            "seconds": round(end - start, 3), "status": status, **kw}


STEPS = [
    _step("preflight", 0, 1.5),
    _step("assess.probe", 2, 4),
    {"task_id": "approval.approve", "status": "not run"},
    _step("failover.start_canary", 5, 5.5),
    _step("failover.safeguards", 6, 7),
    _step("failover.inject_fault", 8, 8.2),
    _step("failover.promote", 9, 12),
    _step("dns_switch.switch", 13, 15),
    _step("verify.checks", 16, 20, "failed",
          error="DrillFailed: verify failed:\nFAIL write_test [main/pg2]: write | through the endpoint failed"),
    _step("rollback.revert", 21, 24),
    _step("stop_canary", 25, 25.4),
    _step("measure", 26, 27),
]


def _doc() -> dict:
    return {
        "drill": "dr_quarterly_failover_drill", "run_id": "manual__2026-04-01T05:00:00+00:00",
        "run_type": "manual", "code_version": "e24f688", "status": "failed",
        "estate": {"name": "sandbox", "file": "include/estate/sandbox.yaml"}, "cluster": "main",
        "params": {"cluster": "main", "fault": "kill"},
        "steps": STEPS, "phases": timeline.phase_durations(STEPS),
        "failures": ["step.verify.checks: DrillFailed: verify failed"],
        "measurements": {"rto_start": "fault injected", "rto_seconds": 11.84, "rto_target_seconds": 1800,
                         "rpo_seconds": 0.35, "rpo_target_seconds": 300, "lost_writes": 2,
                         "lag_bytes_before_fault": 8192},
        "events": [[_ts(8.1), "fault injected: kill -9 of pg1 postmaster"], [_ts(11.5), "pg2 promoted"],
                   [_ts(14.8), "DNS db.sandbox.drdrill.internal -> pg2.sandbox.drdrill.internal INSYNC"]],
        "comms": [{"phase": "failover", "at": _ts(9.05), "subject": "[DRILL] main: failover (run)",
                   "message": "[DRILL] [FAILOVER] Database failover in progress on main.\nImpact: x.\nNext update: y.",
                   "sent": [{"kind": "log", "sent": True}]}],
        "written_at": _at(30),
    }


def test_phases_are_the_task_groups_with_their_span_and_status():
    p = timeline.phase_durations(STEPS)
    assert list(p) == ["preflight", "assess", "failover", "dns_switch", "verify", "rollback", "stop_canary",
                       "measure"]  # 'approval' never ran: no phase
    assert p["failover"] == {"start": _at(5), "end": _at(12), "status": "success", "seconds": 7.0}
    assert p["verify"]["status"] == "failed" and p["verify"]["seconds"] == 4.0
    assert p["preflight"]["seconds"] == 1.5


def test_one_failed_step_fails_its_phase_whatever_the_order():
    steps = [_step("failover.promote", 3, 4, "failed", error="x"), _step("failover.safeguards", 1, 2)]
    p = timeline.phase_durations(steps)["failover"]
    assert p["status"] == "failed" and p["start"] == _at(1) and p["seconds"] == 3.0


def test_a_phase_whose_steps_were_all_skipped_is_not_reported_as_success():
    steps = [_step("rollback.revert", 1, 1.1, "skipped", reason="nothing failed after the primary was touched")]
    assert timeline.phase_durations(steps)["rollback"]["status"] == "skipped"


def test_render_has_the_figures_against_their_targets():
    md = timeline.render(_doc())
    lines = md.splitlines()
    assert lines[0] == "# dr_quarterly_failover_drill on main: FAILED"
    assert ("- **RTO** 11.84 s (fault injected -> first write through the endpoint), target 1800 s") in lines
    assert ("- **RPO** 0.35 s of acknowledged writes lost (2 write(s)), target 300 s; replication lag before the "
            "fault 8192 bytes") in lines
    assert "- step.verify.checks: DrillFailed: verify failed" in lines
    assert f"| failover | {_at(5)} | 7.00 | success |" in lines
    assert f"| verify | {_at(16)} | 4.00 | failed |" in lines
    assert lines[-1] == f"Journal: dr_quarterly_failover_drill/manual__2026-04-01T05:00:00+00:00 written {_at(30)}"


def test_render_timeline_is_in_time_order_with_events_and_messages():
    md = timeline.render(_doc())
    section = md.split("## Timeline\n", 1)[1].split("\n\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| 2026")]
    times = [r.split(" | ", 1)[0].removeprefix("| ") for r in rows]
    assert times == sorted(times) and len(rows) == 2 * 11 + 3 + 1  # 11 steps that ran, 3 events, 1 message
    events = [r.split(" | ", 1)[1] for r in rows]
    fault = events.index("**fault injected: kill -9 of pg1 postmaster** |")
    assert events[fault - 1] == "`failover.inject_fault` started |"
    assert events[fault + 1] == "`failover.inject_fault` success (0.20 s) |"
    msg = next(e for e in events if e.startswith("message sent"))
    assert msg == "message sent (failover): [DRILL] [FAILOVER] Database failover in progress on main. |"
    # The step's error keeps its first line only, and a '|' cannot break the table.
    assert "`verify.checks` failed (4.00 s): DrillFailed: verify failed: |" in events
    assert all(r.count(" | ") == 1 for r in rows)
    assert "## Messages" in md and "```\n[DRILL] [FAILOVER] Database failover in progress on main.\nImpact: x." in md


def test_render_of_a_run_refused_at_preflight():
    doc = {**_doc(), "status": "failed", "measurements": {}, "phases": {}, "events": [], "comms": [],
           "steps": [_step("preflight", 0, 0.4, "failed", error="PreflightError: cluster 'x' is unknown")]}
    md = timeline.render(doc)
    assert "**RTO**" not in md and "**RPO**" not in md and "## Phases" not in md and "## Messages" not in md
    assert "`preflight` failed (0.40 s): PreflightError: cluster 'x' is unknown" in md
