"""The failover runbook as DAGs: phases as task groups, the human gate, trigger rules, the RTO Deadline Alert.

Each DAG file is parsed in a fresh interpreter (as the DAG processor does), because the Deadline Alert is
decided at import time from ``DRDRILL_RTO_DEADLINE_MINUTES``, which the test session sets to 0.
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
print(json.dumps({
    "schedule": dag.schedule if dag.schedule is None else str(dag.schedule),
    "groups": groups, "tasks": tasks,
    "approve": {"defaults": approve.defaults, "fail_on_reject": approve.fail_on_reject,
                "options": approve.options},
    "deadlines": [{"reference": type(d.reference).__name__, "interval": d.interval.total_seconds(),
                   "callback": type(d.callback).__name__, "path": d.callback.path, "kwargs": d.callback.kwargs}
                  for d in deadlines],
}))
"""


@cache
def _describe(dag_id: str, rto_minutes: str | None) -> dict:
    env = {**os.environ, "DRDRILL_ESTATE": "/nonexistent/estate.yaml"}  # parsing never reads the estate
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
    assert "failover.inject_fault" in _dag(DRILL)["tasks"]
    assert not [t for t in _dag(INCIDENT)["tasks"] if "inject" in t or t.startswith("failback.")]


def test_the_fault_comes_after_the_safeguards_and_before_the_promotion():
    tasks = _dag(DRILL)["tasks"]
    assert tasks["failover.inject_fault"]["upstream"] == ["failover.safeguards"]
    assert tasks["failover.promote"]["upstream"] == ["failover.inject_fault"]


def test_the_incident_waits_for_the_trigger_criteria_before_assessing():
    tasks = _dag(INCIDENT)["tasks"]
    assert tasks["detect.primary_down"]["cls"] == "PostgresDownSensor"
    assert tasks["detect.primary_down"]["upstream"] == ["preflight"]
    assert tasks["assess.probe"]["upstream"] == ["detect.primary_down"]
    assert tasks["failover.promote"]["upstream"] == ["failover.safeguards"]


def test_the_incident_dag_is_never_scheduled():
    assert _dag(INCIDENT)["schedule"] is None
    assert _dag(DRILL)["schedule"] == "0 5 1 1,4,7,10 *"


@pytest.mark.parametrize("dag_id", [DRILL, INCIDENT])
def test_approval_is_a_human_gate_that_rejects_by_default(dag_id):
    d = _dag(dag_id)
    assert d["tasks"]["approval.approve"]["cls"] == "RunbookApproval"  # an ApprovalOperator that journals the answer
    assert d["approve"]["fail_on_reject"] is True and d["approve"]["defaults"] == ["Reject"]
    assert "Approve" in d["approve"]["options"]
    assert d["tasks"]["approval.approve"]["upstream"] == ["approval.gate"]
    # Unattended clusters go round the gate; either way the canary (and the failover) starts after it.
    assert d["tasks"]["failover.start_canary"]["upstream"] == ["approval.approve", "approval.not_needed"]
    assert d["tasks"]["failover.start_canary"]["trigger_rule"] == "none_failed_min_one_success"


@pytest.mark.parametrize("dag_id", [DRILL, INCIDENT])
def test_what_must_run_whatever_happened_runs_on_all_done(dag_id):
    tasks = _dag(dag_id)["tasks"]
    for tid in ("rollback.revert", "measure", "cleanup", "journal"):
        assert tasks[tid]["trigger_rule"] == "all_done", tid
    assert tasks["rollback.revert"]["upstream"] == ["verify.checks"]
    assert tasks["journal"]["upstream"] == ["cleanup"]


@pytest.mark.parametrize("dag_id", [DRILL, INCIDENT])
def test_the_canary_is_stopped_by_a_teardown_of_its_setup(dag_id):
    tasks = _dag(dag_id)["tasks"]
    assert tasks["failover.start_canary"]["setup"] is True
    stop = tasks["stop_canary"]
    assert stop["teardown"] is True
    assert {"failover.start_canary", "verify.checks", "rollback.revert"} <= set(stop["upstream"])
    assert "stop_canary" in tasks["cleanup"]["upstream"]


@pytest.mark.parametrize("dag_id", [DRILL, INCIDENT])
def test_rto_deadline_alert_by_default(dag_id):
    [alert] = _describe(dag_id, None)["deadlines"]
    assert alert["interval"] == 30 * 60
    assert alert["reference"] == "DagRunQueuedAtDeadline"
    assert alert["callback"] == "AsyncCallback"
    assert alert["path"] == "drdrill.drills.failover.comms.rto_deadline_missed"
    assert alert["kwargs"] == {"minutes": 30.0}


def test_rto_deadline_follows_the_environment():
    [alert] = _describe(DRILL, "45")["deadlines"]
    assert alert["interval"] == 45 * 60 and alert["kwargs"] == {"minutes": 45.0}


@pytest.mark.parametrize("dag_id", [DRILL, INCIDENT])
def test_rto_deadline_alert_can_be_turned_off(dag_id):
    assert _describe(dag_id, "0")["deadlines"] == []


def test_the_deadline_callback_path_is_importable():
    from airflow._shared.module_loading import accepts_context, import_string

    cb = import_string(_describe(DRILL, None)["deadlines"][0]["path"])
    assert accepts_context(cb)  # the triggerer passes it the run's context
