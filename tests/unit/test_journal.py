"""The journal is written once, through ObjectStoragePath, and never overwritten."""

from __future__ import annotations

import json

import pytest

from drdrill.core import journal
from drdrill.core.errors import DrillError


def _doc() -> dict:
    return {"drill": "dr_x", "run_id": "manual__2026-11-25T10:00:00+00:00", "status": "passed"}


def test_written_once_with_attachments_beside_it(tmp_path):
    loc = f"file://{tmp_path}/journal"
    path = journal.write(loc, None, _doc(), {"gx": {"validations": {"a": 1}}})
    main = tmp_path / "journal" / "dr_x" / "manual__2026-11-25T10_00_00_00_00.json"
    assert path.endswith(str(main))
    doc = json.loads(main.read_text())
    assert doc["status"] == "passed"
    assert json.loads((main.parent / "manual__2026-11-25T10_00_00_00_00.gx.json").read_text()) == {
        "validations": {"a": 1}}
    assert doc["attachments"]["gx"].endswith(".gx.json")


def test_never_overwritten(tmp_path):
    loc = f"file://{tmp_path}"
    journal.write(loc, None, _doc())
    with pytest.raises(DrillError, match="already exists; journals are written once"):
        journal.write(loc, None, {**_doc(), "status": "failed"})
    assert json.loads(next(tmp_path.rglob("*.json")).read_text())["status"] == "passed"


class _TI:
    def __init__(self, records: dict):
        self.records = records

    def xcom_pull(self, task_ids, key):
        return [r for tid in task_ids for r in self.records.get(tid, [None])]


def test_steps_of_mapped_tasks_and_tasks_that_never_ran():
    ti = _TI({"a": [{"task_id": "a", "status": "success"}],
              "m": [{"task_id": "m", "map_index": 0, "status": "success"},
                    {"task_id": "m", "map_index": 1, "status": "failed"}]})
    steps = journal.gather_steps(ti, ["a", "m", "never"])
    assert [(s["task_id"], s["status"]) for s in steps] == [
        ("a", "success"), ("m", "success"), ("m", "failed"), ("never", "not run")]


class _RunningTI:
    """What StepsOfTask needs of the running task instance: its id, map index and xcom_push."""

    task_id, map_index = "failover.promote_and_switch", -1

    def __init__(self):
        self.pushed: dict = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


def test_one_task_records_several_steps_each_with_its_own_times(monkeypatch):
    import airflow.sdk

    ti = _RunningTI()
    monkeypatch.setattr(airflow.sdk, "get_current_context", lambda: {"ti": ti})
    planned = ["failover.inject_fault", "failover.promote", "failover.wait_writable", "dns_switch.switch"]
    with pytest.raises(RuntimeError, match="pg_promote did not finish"), journal.StepsOfTask(planned) as steps:
        with steps.step("inject_fault"):
            steps.publish("fault_at", 1234.5)  # at once, while the task still runs
        with steps.step("failover.promote"):  # by id or by the name after the group
            raise RuntimeError("pg_promote did not finish")
    assert ti.pushed["fault_at"] == 1234.5
    gathered = journal.gather_steps(_TI({"failover.promote_and_switch": [ti.pushed[journal.STEP_KEY]]}),
                                    ["failover.promote_and_switch"])
    assert [(s["task_id"], s["status"]) for s in gathered] == [
        ("failover.inject_fault", "success"), ("failover.promote", "failed"), ("failover.wait_writable", "not run"),
        ("dns_switch.switch", "not run")]
    assert "pg_promote did not finish" in gathered[1]["error"] and gathered[0]["seconds"] >= 0
    assert gathered[0]["started_at"] <= gathered[0]["ended_at"] <= gathered[1]["started_at"]
    assert all(s["in_task"] == "failover.promote_and_switch" for s in gathered)
    with pytest.raises(ValueError, match="not planned"), journal.StepsOfTask(planned) as other:
        with other.step("verify"):
            pass


def test_a_task_of_several_steps_that_never_ran_lists_each_step_not_run():
    steps = journal.gather_steps(_TI({}), ["preflight", "failover.promote_and_switch"],
                                 {"failover.promote_and_switch": ["failover.inject_fault", "failover.promote"]})
    assert [(s["task_id"], s["status"]) for s in steps] == [
        ("preflight", "not run"), ("failover.inject_fault", "not run"), ("failover.promote", "not run")]


def test_code_version_is_the_git_commit():
    import subprocess

    from drdrill.core.paths import PROJECT_ROOT

    head = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        assert journal.code_version() == "unknown"
    else:
        assert head.stdout.startswith(journal.code_version().split("-")[0])


def test_a_transient_storage_error_is_retried_and_the_evidence_kept(tmp_path, caplog):
    import threading

    # The drill's directory cannot be created for a moment (a plain file stands where it goes), as
    # when object storage refuses requests for a while; it clears up during the retries.
    (tmp_path / "dr_x").write_text("in the way")
    clear = threading.Timer(0.4, lambda: (tmp_path / "dr_x").unlink())
    clear.start()
    try:
        path = journal.write(f"file://{tmp_path}", None, _doc(), {"gx": {"a": 1}}, backoff=0.2)
    finally:
        clear.join()
    assert json.loads((tmp_path / "dr_x" / "manual__2026-11-25T10_00_00_00_00.json").read_text())["status"] == "passed"
    assert path.endswith(".json")
    assert "writing journal" in caplog.text and "retrying" in caplog.text


def test_a_journal_that_cannot_be_written_fails_loudly(tmp_path):
    (tmp_path / "dr_x").write_text("in the way for good")
    with pytest.raises(DrillError, match=r"after 3 attempts .* evidence is NOT stored"):
        journal.write(f"file://{tmp_path}", None, _doc(), attempts=3, backoff=0.01)
