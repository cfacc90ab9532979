"""Target locks and the kill switch on real Airflow Variables (the test suite's migrated metadata DB).

The calls go through the Task SDK exactly as in a worker: `airflow.sdk.Variable` and
``RuntimeTaskInstance.get_dr_count`` send their requests over the supervisor's comms to the execution
API, which reads and writes the metadata database. ``sdk`` wires those comms in-process (what
``dag.test()`` does for each task, and Airflow's own ``run_trigger_in_process``), so every test here
costs milliseconds instead of a DAG run (`integration.lockhelpers`).
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from drdrill.core import killswitch, targetlock
from drdrill.core.errors import DrillError
from drdrill.core.targetlock import Holder, TargetBusy
from integration.lockhelpers import end_run, live_run, stored

A = Holder("dr_weekly_pod_kill", "manual__a", "kill.victim", "kill one pod")
B = Holder("dr_quarterly_failover_drill", "manual__b", "failover.lock", "failover drill")


# --- target locks -----------------------------------------------------------------------------------


def test_acquire_writes_one_variable_per_key_and_release_deletes_them(clean):
    lease = targetlock.acquire(["service:web", "cluster:main"], holder=A, ttl_seconds=300)
    assert lease.keys == ["cluster:main", "service:web"]
    rec = stored("cluster:main")
    assert rec["dag_id"] == A.dag_id and rec["run_id"] == A.run_id and rec["action"] == "kill one pod"
    assert datetime.fromisoformat(rec["expires"]).timestamp() - time.time() == pytest.approx(300, abs=5)
    assert targetlock.holders(["cluster:main", "service:web"]) == {"cluster:main": rec, "service:web": rec}
    assert targetlock.release(lease) == ["cluster:main", "service:web"]
    assert stored("cluster:main") is None and stored("service:web") is None
    assert targetlock.release(lease) == []  # idempotent


def test_a_live_lease_makes_another_run_fail_with_the_holder_named(clean):
    run_id = live_run()
    holder = Holder("dr_live_holder", run_id, "failover.lock", "failover drill")
    targetlock.acquire("cluster:main", holder=holder, ttl_seconds=600)
    with pytest.raises(TargetBusy) as e:
        targetlock.acquire(["cluster:main", "service:web"], holder=A, ttl_seconds=60)
    msg = str(e.value)
    assert f"held by dr_live_holder run {run_id}" in msg and "action failover drill" in msg and "since" in msg
    assert "kill one pod" in msg and "NOT done" in msg
    assert set(e.value.holders) == {"cluster:main"}
    assert stored("service:web") is None  # all or none: the free key was not taken either
    assert isinstance(e.value, DrillError)


def test_waiting_is_bounded_and_takes_the_key_once_the_holders_run_ends(clean):
    import threading

    run_id = live_run()
    targetlock.acquire("cluster:main", holder=Holder("dr_live_holder", run_id, "t", "restore"), ttl_seconds=600)
    t0 = time.monotonic()
    with pytest.raises(TargetBusy, match=r"waited \d+s"):
        targetlock.acquire("cluster:main", holder=A, ttl_seconds=60, wait_seconds=1.2, poll_seconds=0.3)
    assert 1.1 < time.monotonic() - t0 < 10

    # The holder's run ends while we wait (its lease stays: a run killed before its teardown); the waiting
    # acquisition sees it and takes the key. (The DB is written directly: the Task SDK comms are not
    # thread-safe, and the waiting acquisition is using them.)
    threading.Timer(0.8, end_run, args=("dr_live_holder", run_id)).start()
    lease = targetlock.acquire("cluster:main", holder=A, ttl_seconds=60, wait_seconds=20, poll_seconds=0.2)
    assert 0.5 < lease.waited_seconds < 15
    assert "no longer queued or running" in lease.taken_over[0]["why"]
    assert stored("cluster:main")["run_id"] == A.run_id


def test_reentrant_for_the_same_run_keeps_since_and_refreshes_the_rest(clean):
    first = targetlock.acquire("cluster:main", holder=A, ttl_seconds=60)
    again = targetlock.acquire("cluster:main", holder=Holder(A.dag_id, A.run_id, "other.task", "failback"),
                               ttl_seconds=900)
    assert again.since == first.since and again.taken_over == []
    rec = stored("cluster:main")
    assert rec["task_id"] == "other.task" and rec["action"] == "failback" and rec["ttl_seconds"] == 900


def test_an_expired_lease_is_taken_over_and_recorded(clean):
    run_id = live_run()  # its run is still running: only the TTL frees it
    old = targetlock.acquire("cluster:main", holder=Holder("dr_live_holder", run_id, "t", "kill"), ttl_seconds=0.3)
    time.sleep(0.5)
    lease = targetlock.acquire("cluster:main", holder=A, ttl_seconds=60)
    assert [t["key"] for t in lease.taken_over] == ["cluster:main"]
    assert lease.taken_over[0]["why"].startswith("expired at ")
    assert lease.taken_over[0]["lease"]["run_id"] == run_id
    # the old holder's release leaves the new lease alone; its ensure_held says who holds it now
    assert targetlock.release(old) == []
    assert stored("cluster:main")["run_id"] == A.run_id
    with pytest.raises(TargetBusy, match="held by dr_weekly_pod_kill run manual__a"):
        targetlock.ensure_held(old, "inject the fault")


def test_the_lease_of_a_run_that_is_no_longer_running_is_taken_over_before_its_ttl(clean):
    # No such DAG run (it ended and was cleaned, or was never there): get_dr_count says 0 active.
    targetlock.acquire("cluster:main", holder=Holder("dr_gone", "manual__dead", "t", "kill"), ttl_seconds=3600)
    lease = targetlock.acquire("cluster:main", holder=A, ttl_seconds=60)
    assert "no longer queued or running" in lease.taken_over[0]["why"]


def test_force_takes_a_live_lease_and_says_whose(clean):
    run_id = live_run()
    targetlock.acquire("cluster:main", holder=Holder("dr_live_holder", run_id, "t", "kill"), ttl_seconds=600)
    lease = targetlock.acquire("cluster:main", holder=B, ttl_seconds=600, force=True)
    assert lease.taken_over[0]["why"] == "forced (incident)" and lease.taken_over[0]["lease"]["run_id"] == run_id
    assert targetlock.ensure_held(lease) == {"cluster:main": "held"}


def test_a_lost_write_race_gives_up_and_removes_what_it_wrote(clean, monkeypatch):
    """Another writer (outside the pool) puts its lease on a key between our write and our read-back."""
    run_id = live_run()
    other = {"dag_id": "dr_live_holder", "run_id": run_id, "task_id": "t", "action": "kill",
             "since": "2026-01-01T00:00:00+00:00", "expires": "2999-01-01T00:00:00+00:00", "ttl_seconds": 1}
    real_write = targetlock._write

    def write_then_overwritten(key, lease):
        real_write(key, lease)
        if key == "service:web":
            real_write(key, other)

    monkeypatch.setattr(targetlock, "_write", write_then_overwritten)
    with pytest.raises(TargetBusy, match=f"service:web is held by dr_live_holder run {run_id}"):
        targetlock.acquire(["cluster:main", "service:web"], holder=A, ttl_seconds=60)
    assert stored("cluster:main") is None  # what we wrote is gone: all or none
    assert stored("service:web")["run_id"] == run_id


def test_a_lost_race_keeps_the_keys_the_run_held_before(clean, monkeypatch):
    run_id = live_run()
    targetlock.acquire("cluster:main", holder=A, ttl_seconds=60)
    other = {"dag_id": "dr_live_holder", "run_id": run_id, "task_id": "t", "action": "kill",
             "since": "2026-01-01T00:00:00+00:00", "expires": "2999-01-01T00:00:00+00:00", "ttl_seconds": 1}
    real_write = targetlock._write
    monkeypatch.setattr(targetlock, "_write", lambda k, v: (real_write(k, v), k == "service:web" and
                                                            real_write(k, other)))
    with pytest.raises(TargetBusy):
        targetlock.acquire(["cluster:main", "service:web"], holder=A, ttl_seconds=60)
    assert stored("cluster:main")["run_id"] == A.run_id  # held before this call: still held


def test_an_unreadable_lease_is_busy_and_says_how_to_free_it(clean):
    from airflow.sdk import Variable

    Variable.set(targetlock.variable_name("cluster:main"), "garbage")
    with pytest.raises(TargetBusy, match=r"not a lease.*airflow variables delete drdrill_lock:cluster:main"):
        targetlock.acquire("cluster:main", holder=A, ttl_seconds=60)


@pytest.mark.parametrize("keys,match", [([], "at least one"), (["main"], "'kind:name'"),
                                         (["cluster:ma in"], "'kind:name'"), (["cluster:" + "x" * 300], "too long")])
def test_bad_keys_and_ttl_are_refused(sdk, keys, match):
    with pytest.raises(ValueError, match=match):
        targetlock.acquire(keys, holder=A, ttl_seconds=60)
    with pytest.raises(ValueError, match="ttl_seconds must be > 0"):
        targetlock.acquire("cluster:main", holder=A, ttl_seconds=0)


# --- kill switch ------------------------------------------------------------------------------------


def test_kill_switch_unset_or_released_values_let_the_action_go(clean):
    from airflow.sdk import Variable

    v = killswitch.check_kill_switch("kill one pod")
    assert v["engaged"] is False and v["value"] is None and v["action"] == "kill one pod"
    for off in ["", "off", "FALSE", " 0 "]:
        Variable.set(killswitch.KILL_SWITCH_VARIABLE, off)
        assert killswitch.check_kill_switch("kill")["engaged"] is False


def test_kill_switch_engaged_raises_with_the_reason_and_the_release_command(clean):
    from airflow.sdk import Variable

    Variable.set(killswitch.KILL_SWITCH_VARIABLE, "INC-42 in progress")
    with pytest.raises(killswitch.KillSwitchEngaged) as e:
        killswitch.check_kill_switch("the fault injection")
    msg = str(e.value)
    assert "'INC-42 in progress'" in msg and "the fault injection was NOT done" in msg
    assert "airflow variables delete drdrill_kill_switch" in msg
    assert e.value.verdict["engaged"] is True and isinstance(e.value, DrillError)
    # seen at once after release (no stale cache)
    Variable.delete(killswitch.KILL_SWITCH_VARIABLE)
    assert killswitch.check_kill_switch("the fault injection")["engaged"] is False


def test_kill_switch_fails_closed_when_it_cannot_be_read(airflow_db):
    from airflow.sdk.execution_time.supervisor import set_supervisor_comms

    # Outside a task: no Task SDK comms to the metadata DB, so the switch cannot be read.
    with set_supervisor_comms(None):
        v = killswitch.kill_switch_state("kill")
        assert v["engaged"] is True and "not running in an Airflow task" in v["error"]
        with pytest.raises(killswitch.KillSwitchEngaged, match=r"treated as ENGAGED \(fail closed\)"):
            killswitch.check_kill_switch("kill")


class FailingVariableReads:
    """The worker's comms, except that reading a Variable gets the execution API's answer to a server error
    (what the supervisor sends back when the API server answers 5xx). A stand-in: the in-process API
    cannot be made to fail on one route."""

    def __init__(self, comms):
        self.comms = comms

    def send(self, msg):
        from airflow.sdk.exceptions import ErrorType
        from airflow.sdk.execution_time.comms import ErrorResponse

        if type(msg).__name__ == "GetVariable":
            return ErrorResponse(error=ErrorType.API_SERVER_ERROR, detail={"status_code": 503, "message": "down"})
        return self.comms.send(msg)


def test_kill_switch_fails_closed_when_the_api_answers_an_error(clean, sdk):
    from airflow.sdk import Variable
    from airflow.sdk.execution_time.supervisor import set_supervisor_comms

    with set_supervisor_comms(FailingVariableReads(sdk.comms)):
        assert Variable.get(killswitch.KILL_SWITCH_VARIABLE, default="unset") == "unset"  # what the SDK would say
        with pytest.raises(killswitch.KillSwitchEngaged, match=r"could not be read .*API_SERVER_ERROR"):
            killswitch.check_kill_switch("kill")


def test_a_lock_that_cannot_be_read_is_never_taken_as_free(clean, sdk):
    from airflow.sdk.execution_time.supervisor import set_supervisor_comms

    from drdrill.core.variables import VariableUnreadable

    with set_supervisor_comms(FailingVariableReads(sdk.comms)), pytest.raises(VariableUnreadable, match="503"):
        targetlock.acquire("cluster:main", holder=A, ttl_seconds=60)
    assert stored("cluster:main") is None


# --- in real tasks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fail_action", [False, True])
def test_in_real_tasks_the_lease_names_the_task_and_a_teardown_frees_it_whatever_happened(clean, fail_action):
    from integration.helpers import test_dag

    dr = test_dag("target_lock.py", "drdrill_test_target_lock").test(run_conf={"fail_action": fail_action})
    tis = {ti.task_id: ti for ti in dr.get_task_instances()}
    assert tis["act"].state == ("failed" if fail_action else "success")
    assert tis["release"].state == "success"
    assert stored("service:web") is None  # released by the teardown, also after the action failed
    lease = tis["take"].xcom_pull(task_ids="take")
    assert lease["holder"] == {"dag_id": "drdrill_test_target_lock", "run_id": dr.run_id, "task_id": "take",
                               "action": "kill one replica"}
    if not fail_action:
        out = tis["act"].xcom_pull(task_ids="act")
        assert out["held"] == {"service:web": "held"} and out["kill_switch"]["engaged"] is False
        assert out["holders"]["service:web"]["task_id"] == "take"
    assert tis["release"].xcom_pull(task_ids="release") == ["service:web"]
