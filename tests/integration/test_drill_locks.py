"""The kill switch and the target lock in the failover drill and the restore test, on the real sandbox.

Where the graph is what is proved (the lock is taken before the first action, nothing acts after a
refusal, the journal says why), a DAG run with ``dag.test()`` that stops at the refusal; where a check
right before one action is proved, that step's function runs against the sandbox with the Task SDK
comms of `integration.lockhelpers.sdk` (a full failover drill costs a minute).
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from tests.integration.test_failover import assert_home, in_recovery, postmaster

from drdrill.core import killswitch, targetlock
from drdrill.core.targetlock import Holder, TargetBusy
from integration.helpers import failures, journal, run_dag, scratch_dirs, step
from integration.lockhelpers import engage_kill_switch, live_run, stored

pytestmark = pytest.mark.sandbox
DRILL = "dr_quarterly_failover_drill"
INCIDENT = "dr_postgres_primary_failover"
RESTORE = "dr_monthly_restore_test"


@pytest.fixture
def at_home(sandbox, estate, clean):
    assert_home(estate)
    yield estate
    assert_home(estate)


def assert_nothing_acted(doc, pid_pg1: int) -> None:
    """The primary was never touched, nothing promoted, no canary started."""
    assert postmaster("pg1") == pid_pg1 and not in_recovery("pg1") and in_recovery("pg2")
    assert {"failover.start_canary", "failover.inject_fault", "failover.promote", "dns_switch.switch"} <= set(
        doc["not_run"])
    assert step(doc, "release_targets")["status"] in ("skipped", "not run")  # no lease was taken: nothing to free


# --- the failover drill, whole graph ----------------------------------------------------------------


def test_kill_switch_engaged_the_failover_drill_touches_nothing_and_says_how_to_release(dagbag, at_home):
    pid = postmaster("pg1")
    engage_kill_switch("INC-77: database maintenance")
    dr = run_dag(dagbag, DRILL, {"fault": "kill", "scope": "node"})
    doc = journal(at_home, DRILL, dr.run_id)
    assert dr.state == "failed"
    msg = step(doc, "failover.lock_targets")["error"]
    assert "KillSwitchEngaged" in msg and "'INC-77: database maintenance'" in msg and "NOT done" in msg
    assert "airflow variables delete drdrill_kill_switch" in msg and msg in failures(doc)
    assert_nothing_acted(doc, pid)
    assert stored("cluster:main") is None


def test_a_lease_held_by_another_run_the_failover_drill_does_not_act_and_names_the_holder(dagbag, at_home):
    pid = postmaster("pg1")
    run_id = live_run("dr_weekly_pod_kill")
    targetlock.acquire("cluster:main", holder=Holder("dr_weekly_pod_kill", run_id, "kill.victim", "kill one pod"),
                       ttl_seconds=600)
    dr = run_dag(dagbag, DRILL, {"fault": "kill", "scope": "node"})
    doc = journal(at_home, DRILL, dr.run_id)
    assert dr.state == "failed"
    msg = step(doc, "failover.lock_targets")["error"]
    assert "TargetBusy" in msg and f"cluster:main is held by dr_weekly_pod_kill run {run_id}" in msg
    assert "action kill one pod" in msg and "since" in msg
    assert_nothing_acted(doc, pid)
    assert stored("cluster:main")["run_id"] == run_id  # the holder's lease is untouched


# --- checks right before each action ----------------------------------------------------------------


class Steps:
    """Records the critical path's steps as `drdrill.core.journal.StepsOfTask` does (without a task)."""

    def __init__(self) -> None:
        self.records: dict[str, dict] = {}
        self.published: dict[str, object] = {}

    @contextmanager
    def step(self, name: str):
        rec: dict = {}
        self.records[name] = rec
        try:
            yield rec
        except BaseException as e:
            rec.update(status="failed", error=str(e))
            raise
        rec.setdefault("status", "success")

    def publish(self, key: str, value: object) -> None:
        self.published[key] = value


def drill_plan(run_id: str):
    from drdrill.drills import failover

    params = {"cluster": "main", "fault": "kill", "scope": "node"}
    return failover.Plan.from_dict(failover.preflight(params, run_id, DRILL))


def test_kill_switch_set_after_the_lease_stops_the_fault_itself(at_home):
    """The switch is set while the drill waits between its lease and its fault: the fault is not injected."""
    from drdrill.drills import failover
    from drdrill.drills.failover import locking

    pid = postmaster("pg1")
    plan = drill_plan(live_run(DRILL))
    locked = locking.lock(plan, "failover.lock_targets")
    assert locked["kill_switch"]["engaged"] is False and stored("cluster:main")["run_id"] == plan.run_id
    engage_kill_switch("chaos freeze for the release")
    steps = Steps()
    with pytest.raises(killswitch.KillSwitchEngaged, match="the fault injection of main was NOT done"):
        failover.promote_and_switch(plan, steps, {}, locked)
    assert "promote" not in steps.records and "fault_at" not in steps.published
    assert postmaster("pg1") == pid and in_recovery("pg2")
    assert locking.unlock(locked) == {"released": ["cluster:main"]}


def test_an_incident_takes_the_cluster_and_the_drill_stops_before_its_fault(at_home):
    """A real incident never waits behind a drill: it takes the lease by force, ignoring the kill switch;
    the drill that held it finds it gone right before its fault and does nothing."""
    from drdrill.drills import failover
    from drdrill.drills.failover import locking

    pid = postmaster("pg1")
    plan = drill_plan(live_run(DRILL))
    locked = locking.lock(plan, "failover.lock_targets")
    engage_kill_switch("drills frozen")
    incident = failover.Plan.from_dict({**plan.to_dict(), "dag_id": INCIDENT, "run_id": live_run(INCIDENT),
                                        "fault": None})
    taken = locking.lock(incident, "failover.lock_targets")
    assert taken["kill_switch"]["applies"] is False
    assert taken["taken_over"][0]["why"] == "forced (incident)"
    assert taken["taken_over"][0]["lease"]["run_id"] == plan.run_id
    killswitch_off()
    with pytest.raises(TargetBusy, match=f"cluster:main is held by {INCIDENT} run {incident.run_id}"):
        failover.promote_and_switch(plan, Steps(), {}, locked)
    assert postmaster("pg1") == pid and in_recovery("pg2")
    assert locking.unlock(locked) == {"released": []}  # the drill never frees the incident's lease
    assert locking.unlock(taken) == {"released": ["cluster:main"]}


def killswitch_off() -> None:
    from airflow.sdk import Variable

    Variable.delete(killswitch.KILL_SWITCH_VARIABLE)


def test_kill_switch_stops_the_failback_before_anything_is_touched(at_home):
    """The failback switchover (stop the promoted node, promote the original) is an action of its own."""
    from drdrill.drills import failover
    from drdrill.drills.failover import locking

    pid1, pid2 = postmaster("pg1"), postmaster("pg2")
    plan = drill_plan(live_run(DRILL))
    locked = locking.lock(plan, "failover.lock_targets")
    engage_kill_switch("stop")
    with pytest.raises(killswitch.KillSwitchEngaged, match="the failback switchover of main was NOT done"):
        failover.failback_switchover(plan, locked)
    assert (postmaster("pg1"), postmaster("pg2")) == (pid1, pid2)
    locking.unlock(locked)


# --- the restore test -------------------------------------------------------------------------------


def test_kill_switch_engaged_the_restore_test_creates_no_scratch_server(dagbag, at_home):
    engage_kill_switch("INC-78")
    dr = run_dag(dagbag, RESTORE, {"repo": 1})
    doc = journal(at_home, RESTORE, dr.run_id)
    assert dr.state == "failed"
    assert "kill switch ENGAGED" in step(doc, "lock_targets")["error"] and "'INC-78'" in failures(doc)
    assert {"ledger", "setup_scratch", "restore"} <= set(doc["not_run"]) or all(
        step(doc, t)["status"] in ("not run", "skipped") for t in ("ledger", "setup_scratch", "restore"))
    assert doc["scratch"] is None and scratch_dirs(at_home) == []


def test_the_restore_operator_checks_the_kill_switch_right_before_restoring(at_home, tmp_path):
    """The switch set after the lease: the operator itself refuses before allocating anything."""
    from drdrill.operators.restore import PgBackRestRestoreOperator

    engage_kill_switch("INC-79")
    op = PgBackRestRestoreOperator(task_id="restore", cluster="main", repo=1, scratch_root=str(tmp_path / "s"))
    with pytest.raises(killswitch.KillSwitchEngaged, match=r"the restore of main \(repo1\) .* was NOT done"):
        op._restore({"dag_run": None, "dag": None}, 0.0)
    assert not (tmp_path / "s").exists() and scratch_dirs(at_home) == []


def test_a_restore_test_waits_for_no_one_and_names_the_failover_holding_its_cluster(at_home):
    from drdrill.drills import restore

    run_id = live_run(DRILL)
    targetlock.acquire("cluster:main", holder=Holder(DRILL, run_id, "failover.lock_targets", "failover drill"),
                       ttl_seconds=600)
    plan = restore.Plan("main", 1, "latest", None, False, None, None)
    with pytest.raises(TargetBusy, match=f"cluster:main is held by {DRILL} run {run_id}.*action failover drill"):
        restore.lock_targets(plan, "manual__restore", "lock_targets")


def test_an_incident_goes_on_when_it_cannot_hold_the_lease(at_home, monkeypatch):
    """Another writer overwrites the key at every forced write (it never happens in practice): the incident
    still goes on, and its lock step says it holds no lease."""
    from drdrill.drills import failover
    from drdrill.drills.failover import locking

    other = {"dag_id": "dr_weekly_pod_kill", "run_id": live_run("dr_weekly_pod_kill"), "task_id": "t",
             "action": "kill", "since": "2026-01-01T00:00:00+00:00", "expires": "2999-01-01T00:00:00+00:00"}
    real_write, writes = targetlock._write, []

    def overwritten(key, lease):
        writes.append(lease["dag_id"])
        real_write(key, lease)
        real_write(key, other)

    monkeypatch.setattr(targetlock, "_write", overwritten)
    plan = drill_plan(live_run(DRILL))
    incident = failover.Plan.from_dict({**plan.to_dict(), "dag_id": INCIDENT, "run_id": live_run(INCIDENT),
                                        "fault": None})
    out = locking.lock(incident, "failover.lock_targets")
    assert writes == [INCIDENT] * targetlock.FORCED_WRITES
    assert out["lease"] is None and "held by dr_weekly_pod_kill" in out["error"]
    assert locking.unlock(out)["released"] == []
