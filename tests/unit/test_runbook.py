"""The failover runbook as DAGs: phases as task groups, the human gate, trigger rules, the RTO alert.

Each DAG file is parsed in a fresh interpreter (as the DAG processor does), because the RTO alert's
override is read at parse time from ``DRDRILL_RTO_DEADLINE_MINUTES``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DRILL = "dr_quarterly_failover_drill"
INCIDENT = "dr_postgres_primary_failover"
PHASES = ["assess", "approval", "failover", "dns_switch", "verify", "rollback", "stabilize"]

PROBE = """
import json, runpy, sys
ns = runpy.run_path(sys.argv[1])
dag = ns[sys.argv[2]]()  # the @dag function builds the DAG again and returns it
tasks = {t.task_id: {"cls": type(t).__name__, "trigger_rule": str(getattr(t.trigger_rule, "value", t.trigger_rule)),
                     "setup": t.is_setup, "teardown": t.is_teardown, "upstream": sorted(t.upstream_task_ids)}
         for t in dag.tasks}
groups = sorted(k for k, v in dag.task_group.children.items() if hasattr(v, "children"))
approve = dag.get_task("approval.approve")
deadlines = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline] if dag.deadline else []
watch = dag.get_task("rto_watch")
insync = dag.get_task("dns_switch.insync")
print(json.dumps({
    "schedule": dag.schedule if dag.schedule is None else type(dag.schedule).__name__,
    "summary": getattr(dag.schedule, "summary", None),
    "pools": {t.task_id: t.pool for t in dag.tasks},
    "groups": groups, "tasks": tasks,
    "approve": {"defaults": approve.defaults, "fail_on_reject": approve.fail_on_reject,
                "options": approve.options},
    "deadlines": len(deadlines),
    "watch": {"cls": type(watch).__name__, "since": watch.since, "within_minutes": watch.within_minutes,
              "watch_task_ids": watch.watch_task_ids, "on_missed": watch.on_missed, "cluster": watch.cluster,
              "since_task_id": watch.since_task_id, "since_key": watch.since_key},
    "insync_change": repr(insync.change),
}))
"""


@cache
def _describe(dag_id: str, rto_minutes: str | None) -> dict:
    # Parsing reads only the estate's schedules section, tolerantly: a missing file gives the defaults.
    env = {**os.environ, "DRDRILL_ESTATE": "/nonexistent/estate.yaml"}
    env.pop("DRDRILL_RTO_DEADLINE_MINUTES", None)
    if rto_minutes is not None:
        env["DRDRILL_RTO_DEADLINE_MINUTES"] = rto_minutes
    res = subprocess.run([sys.executable, "-c", PROBE, str(ROOT / "dags" / f"{dag_id}.py"), dag_id],
                         capture_output=True, text=True, env=env, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def _dag(dag_id: str) -> dict:
    return _describe(dag_id, "0")


@pytest.mark.parametrize("dag_id", [DRILL, INCIDENT])
def test_task_groups_are_the_runbooks_phases(dag_id):
    extra = ["failback"] if dag_id == DRILL else ["detect"]
    assert _dag(dag_id)["groups"] == sorted(PHASES + extra)


def test_only_the_drill_injects_a_fault():
    from drdrill.runbook.common import critical_path_steps

    # restore and replay: the region scope's (the DR node from the DR repo), skipped in the node scope
    assert critical_path_steps(True) == ["failover.inject_fault", "failover.restore", "failover.replay",
                                         "failover.promote", "failover.wait_writable", "dns_switch.switch"]
    assert "failover.inject_fault" not in critical_path_steps(False)
    assert not [t for t in _dag(INCIDENT)["tasks"] if "inject" in t or t.startswith("failback.")]


@pytest.mark.parametrize("dag_id", [DRILL, INCIDENT])
def test_the_critical_path_is_one_task_after_the_safeguards(dag_id):
    """Fault (drill) -> promote -> writable -> DNS UPSERT with no scheduling hop between them; what is not on
    the way to the first write comes after it, and verify after both."""
    tasks = _dag(dag_id)["tasks"]
    assert tasks["failover.promote_and_switch"]["upstream"] == ["failover.safeguards"]
    assert tasks["failover.after_promotion"]["upstream"] == ["failover.promote_and_switch"]
    assert tasks["dns_switch.insync"]["upstream"] == ["failover.promote_and_switch"]
    assert tasks["dns_switch.insync"]["cls"] == "Route53RecordSwitchOperator"
    assert "dns_change" in _dag(dag_id)["insync_change"]  # it waits for the UPSERT the critical path sent
    assert tasks["verify.checks"]["upstream"] == ["dns_switch.insync", "failover.after_promotion"]
    assert not [t for t in tasks if t in ("failover.promote", "failover.inject_fault", "failover.wait_writable")]


def test_the_incident_waits_for_the_trigger_criteria_before_assessing():
    tasks = _dag(INCIDENT)["tasks"]
    assert tasks["detect.primary_down"]["cls"] == "PostgresDownSensor"
    assert tasks["detect.primary_down"]["upstream"] == ["preflight"]
    assert tasks["assess.probe"]["upstream"] == ["detect.primary_down"]
    assert tasks["failover.promote_and_switch"]["upstream"] == ["failover.safeguards"]


def test_the_incident_dag_is_never_scheduled():
    assert _dag(INCIDENT)["schedule"] is None
    # The drill: the first Tuesday of the quarter at 10:00 (the default without an estate), and never a
    # past run because someone unpaused it (drdrill.timetables).
    assert (_dag(DRILL)["schedule"], _dag(DRILL)["summary"]) == (
        "DrillTimetable", "first tue, quarterly (Jan, Apr, Jul, Oct), 10:00 UTC")


# The steps that act on production servers or DNS: one at a time across every drill (a 1-slot pool). The
# critical path (fault, promote, wait for writes, DNS UPSERT) is one task; waiting for INSYNC acts on nothing.
# Taking the lease on the cluster runs there too: two acquisitions never at once (drdrill.core.targetlock).
DESTRUCTIVE = {"failover.lock_targets", "failover.promote_and_switch", "stabilize.new_standby",
               "failback.switchover", "failback.dns_switch", "failback.new_standby"}


def test_the_drill_acts_through_the_destructive_pool_and_waits_in_the_drills_pool_otherwise():
    pools = _dag(DRILL)["pools"]
    assert {t for t, p in pools.items() if p == "dr_destructive"} == DESTRUCTIVE
    assert {p for t, p in pools.items() if t not in DESTRUCTIVE} == {"dr_drills"}
    # What puts things back never waits behind another drill's action.
    assert pools["rollback.revert"] == pools["cleanup"] == pools["stop_canary"] == "dr_drills"


def test_the_incident_never_waits_behind_a_drill():
    assert set(_dag(INCIDENT)["pools"].values()) == {"default_pool"}


@pytest.mark.parametrize("dag_id", [DRILL, INCIDENT])
def test_approval_is_a_human_gate_that_rejects_by_default(dag_id):
    d = _dag(dag_id)
    assert d["tasks"]["approval.approve"]["cls"] == "RunbookApproval"  # an ApprovalOperator that journals the answer
    assert d["approve"]["fail_on_reject"] is True and d["approve"]["defaults"] == ["Reject"]
    assert "Approve" in d["approve"]["options"]
    assert d["tasks"]["approval.approve"]["upstream"] == ["approval.gate"]
    # Unattended clusters go round the gate; either way the lease on the cluster is taken after it, then the
    # canary (the first action) starts.
    assert d["tasks"]["failover.lock_targets"]["upstream"] == ["approval.approve", "approval.not_needed"]
    assert d["tasks"]["failover.lock_targets"]["trigger_rule"] == "none_failed_min_one_success"
    assert d["tasks"]["failover.start_canary"]["upstream"] == ["failover.lock_targets"]


@pytest.mark.parametrize("dag_id", [DRILL, INCIDENT])
def test_what_must_run_whatever_happened_runs_on_all_done(dag_id):
    tasks = _dag(dag_id)["tasks"]
    for tid in ("rollback.revert", "measure", "cleanup", "journal"):
        assert tasks[tid]["trigger_rule"] == "all_done", tid
    assert tasks["rollback.revert"]["upstream"] == ["verify.checks"]
    assert tasks["journal"]["upstream"] == ["release_targets"]


@pytest.mark.parametrize("dag_id", [DRILL, INCIDENT])
def test_the_lease_on_the_cluster_is_released_by_a_teardown_at_the_very_end(dag_id):
    tasks = _dag(dag_id)["tasks"]
    assert tasks["failover.lock_targets"]["setup"] is True
    release = tasks["release_targets"]
    assert release["teardown"] is True and release["trigger_rule"] == "all_done_setup_success"
    assert set(release["upstream"]) == {"cleanup", "failover.lock_targets"}
    assert tasks["journal"]["upstream"] == ["release_targets"]


@pytest.mark.parametrize("dag_id", [DRILL, INCIDENT])
def test_the_canary_is_stopped_by_a_teardown_of_its_setup(dag_id):
    tasks = _dag(dag_id)["tasks"]
    assert tasks["failover.start_canary"]["setup"] is True
    stop = tasks["stop_canary"]
    assert stop["teardown"] is True
    assert {"failover.start_canary", "verify.checks", "rollback.revert"} <= set(stop["upstream"])
    assert "stop_canary" in tasks["cleanup"]["upstream"]


@pytest.mark.parametrize("dag_id", [DRILL, INCIDENT])
def test_the_rto_alert_counts_from_the_outage_not_from_the_run(dag_id):
    d = _describe(dag_id, None)
    assert d["deadlines"] == 0  # Airflow's Deadline Alerts count from the run's creation or queueing
    w, tasks = d["watch"], d["tasks"]
    assert w["cls"] == "RecoveryDeadlineOperator" and w["cluster"] == "{{ params.cluster }}"
    assert w["within_minutes"] is None  # the cluster's targets.rto_minutes, read at run time
    assert w["watch_task_ids"] == ["verify.checks"]
    assert w["on_missed"] == "drdrill.drills.failover.comms.rto_deadline_missed"
    if dag_id == DRILL:  # from the injected fault: approval waits and queueing are not downtime
        # beside the safeguards, so it runs when the critical path task publishes the fault's time
        assert tasks["rto_watch"]["upstream"] == ["failover.start_canary"]
        assert (w["since_task_id"], w["since_key"], w["since"]) == ("failover.promote_and_switch", "fault_at", None)
    else:  # from the first failed health check
        assert tasks["rto_watch"]["upstream"] == ["detect.primary_down"]
        assert "failing_since" in w["since"]
    assert "rto_watch" in tasks["cleanup"]["upstream"]  # the journal sees whether it fired


def test_rto_deadline_follows_the_environment():
    assert _describe(DRILL, "45")["watch"]["within_minutes"] == "45"
    assert _describe(INCIDENT, "0")["watch"]["within_minutes"] == "0"  # off


def test_the_deadline_callback_path_is_importable():
    from airflow.sdk.module_loading import import_string

    assert callable(import_string(_describe(DRILL, None)["watch"]["on_missed"]))
