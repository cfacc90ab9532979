"""The recovery deadline (the runbook's RTO alert) in a real DAG run and its trigger against the real
task states of that run, through the Task SDK as the triggerer reads them.

The deferred path under a scheduler and a triggerer (the alert firing while the failover is still
running, and its journal entry) is tested by the quarterly drill's CeleryExecutor run.
"""

from __future__ import annotations

import time

import pytest

from integration.helpers import test_dag

DAG_ID = "test_recovery_deadline"


@pytest.fixture(scope="module")
def run(airflow_db):
    return test_dag("recovery_deadline.py", DAG_ID).test()


def _out(dr, task_id):
    [ti] = [t for t in dr.get_task_instances() if t.task_id == task_id]
    assert str(ti.state) == "success", (task_id, ti.state)
    return ti.xcom_pull(task_ids=task_id)


def test_a_watch_that_starts_after_the_recovery_finds_it_over(run):
    out = _out(run, "after_recovery")
    assert out["status"] == "ended" and out["states"] == {"recovery": "success"}
    fault_at = _out(run, "fault")["at"]
    assert out["since"] == pytest.approx(fault_at) and out["deadline_at"] == pytest.approx(fault_at + 300)


def test_a_watch_that_looks_late_still_reports_a_missed_deadline(run):
    # The watched task's own step record says when it ended: after the deadline, so "missed", with
    # the time of recovery, even though the watch only started after it (busy workers).
    out = _out(run, "late")
    assert out["status"] == "missed" and out["recovered_at"] > out["deadline_at"]
    assert out["fired_at"] >= out["recovered_at"] and out["alert"] == {"sent": ["log"]}
    assert _out(run, "after_recovery")["recovered_at"] == pytest.approx(out["recovered_at"])


def test_in_process_a_watch_never_holds_the_recovery_back(run):
    # dag.test runs one task at a time: deferring here would stop the recovery until the deadline.
    out = _out(run, "before_recovery")
    assert out["status"] == "not watched" and out["states"] == {"recovery": None}
    assert _out(run, "recovery")["recovered_at"] < out["deadline_at"]


def test_a_deadline_of_zero_turns_the_watch_off(run):
    assert _out(run, "off")["status"] == "off"


def _fire(run, trigger):
    from airflow.sdk.api.datamodels._generated import TaskInstance as SdkTI
    from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor

    [ti] = [t for t in run.get_task_instances() if t.task_id == "after_recovery"]
    sdk_ti = SdkTI(id=ti.id, task_id=ti.task_id, dag_id=ti.dag_id, run_id=ti.run_id, try_number=ti.try_number,
                   map_index=ti.map_index, dag_version_id=ti.dag_version_id)
    return InProcessTestSupervisor.run_trigger_in_process(trigger=trigger, ti=sdk_ti).payload


def test_the_trigger_ends_when_the_watched_tasks_have_finished(run):
    from drdrill.triggers.deadline import RecoveryDeadlineTrigger

    ev = _fire(run, RecoveryDeadlineTrigger(dag_id=DAG_ID, run_id=run.run_id, task_ids=["fault", "recovery"],
                                            deadline_at=time.time() + 60, payload={"k": 1}))
    assert ev["status"] == "ended" and ev["states"] == {"fault": "success", "recovery": "success"}
    assert ev["at"] < ev["deadline_at"] and ev["payload"] == {"k": 1}


def test_the_trigger_fires_at_the_deadline_while_a_watched_task_has_not_run(run):
    from drdrill.triggers.deadline import RecoveryDeadlineTrigger

    deadline = time.time() + 0.5
    # "rollback" has no task instance in this run: like a step not reached yet, it has no state.
    ev = _fire(run, RecoveryDeadlineTrigger(dag_id=DAG_ID, run_id=run.run_id, task_ids=["recovery", "rollback"],
                                            deadline_at=deadline, poll_interval=0.1))
    assert ev["status"] == "missed" and ev["states"] == {"recovery": "success", "rollback": None}
    assert ev["at"] >= deadline


def test_a_trigger_that_cannot_ask_airflow_still_fires(run, monkeypatch):
    # Unknown is never read as "recovered": with the Task SDK failing, the deadline still fires.
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    from drdrill.triggers.deadline import RecoveryDeadlineTrigger

    def refuse(**_):
        raise ConnectionError("execution API unreachable")

    monkeypatch.setattr(RuntimeTaskInstance, "get_task_states", staticmethod(refuse))
    ev = _fire(run, RecoveryDeadlineTrigger(dag_id=DAG_ID, run_id=run.run_id, task_ids=["recovery"],
                                            deadline_at=time.time() + 0.3, poll_interval=0.1))
    assert ev["status"] == "missed" and ev["states"] is None
