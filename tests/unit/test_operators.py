"""drdrill's operators: provider-style constructors, and bad input refused before anything is touched."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta

import pytest

from drdrill.operators.dataquality import RowCountCheckOperator
from drdrill.operators.pgbackrest import PgBackRestCheckOperator, PgBackRestVerifyOperator
from drdrill.operators.postgres import PostgresPromoteOperator
from drdrill.operators.restore import PgBackRestRestoreOperator, ScratchServerTeardownOperator
from drdrill.operators.route53 import Route53RecordSwitchOperator

OPERATORS = [PgBackRestCheckOperator, PgBackRestVerifyOperator, PgBackRestRestoreOperator,
             ScratchServerTeardownOperator, RowCountCheckOperator, PostgresPromoteOperator,
             Route53RecordSwitchOperator]


@pytest.mark.parametrize("cls", OPERATORS, ids=lambda c: c.__name__)
def test_constructors_are_keyword_only_documented_and_templated(cls):
    params = [p for name, p in inspect.signature(cls.__init__).parameters.items() if name not in ("self", "kwargs")]
    assert params and all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params)
    doc = cls.__doc__ or ""
    assert "Usage::" in doc
    for p in params:
        assert f":param {p.name}:" in doc, f"{cls.__name__} does not document {p.name}"
    assert isinstance(cls.template_fields, tuple) and cls.template_fields
    for field in cls.template_fields:
        assert field in inspect.signature(cls.__init__).parameters, field


@pytest.mark.parametrize("cls", OPERATORS, ids=lambda c: c.__name__)
def test_no_hook_or_connection_is_built_at_construction(cls, monkeypatch):
    # Constructors run at every DAG parse: a missing connection or estate must not matter there.
    monkeypatch.setenv("DRDRILL_ESTATE", "/nonexistent/estate.yaml")
    kwargs = {"task_id": "t"}
    if cls is PgBackRestRestoreOperator:
        kwargs["pgbackrest_conn_id"] = "no_such_connection"
    cls(**kwargs)


def _restore(tmp_path, **kw):
    return PgBackRestRestoreOperator(task_id="restore", stanza="main", scratch_root=str(tmp_path / "scratch"), **kw)


def test_restore_refuses_a_target_time_in_the_future_before_creating_anything(tmp_path):
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    with pytest.raises(ValueError, match="in the future"):
        _restore(tmp_path, target_time=future)._restore({}, 0.0)
    assert not (tmp_path / "scratch").exists()


def test_restore_refuses_a_target_time_without_zone(tmp_path):
    from drdrill.core.errors import PreflightError

    with pytest.raises(PreflightError, match="has no time zone"):
        _restore(tmp_path, target_time="2026-11-24T14:30:00")._restore({}, 0.0)
    assert not (tmp_path / "scratch").exists()


def test_restore_without_a_stanza_or_a_scratch_root_says_what_is_missing(tmp_path):
    with pytest.raises(ValueError, match="which stanza to restore"):
        PgBackRestRestoreOperator(task_id="r", scratch_root=str(tmp_path))._restore({}, 0.0)
    with pytest.raises(ValueError, match="scratch_root is required"):
        PgBackRestRestoreOperator(task_id="r", stanza="main")._restore({"dag_run": None, "dag": None}, 0.0)


def test_row_count_check_without_a_database_says_so():
    with pytest.raises(ValueError, match="no database to check"):
        RowCountCheckOperator(task_id="c", expected_counts={"a.b": 1}).run({})


def test_promote_without_a_target_says_so():
    with pytest.raises(ValueError, match="give host and port"):
        PostgresPromoteOperator(task_id="p").run({})


def test_dns_switch_without_a_record_says_so():
    with pytest.raises(ValueError, match="give zone, record and value"):
        Route53RecordSwitchOperator(task_id="s", zone="example.com").run({})


def test_dry_runs_touch_nothing():
    assert RowCountCheckOperator(task_id="c", dry_run="True").run({})["results"] == []
    assert PostgresPromoteOperator(task_id="p", host="h", port=1, dry_run=True).run({})["dry_run"] is True
    out = Route53RecordSwitchOperator(task_id="s", zone="example.com", record="db.example.com", value="x",
                                      dry_run="true").run({})
    assert out == {"switched": False, "dry_run": True}


class _WatchTI:
    """The running watch's task instance: what the critical path task has published so far."""

    def __init__(self, values):
        self.values = list(values)

    def xcom_pull(self, task_ids, key):
        assert (task_ids, key) == ("failover.promote_and_switch", "fault_at")
        return self.values.pop(0) if len(self.values) > 1 else self.values[0]


class _Run:
    dag_id, run_id = "dr_quarterly_failover_drill", "manual__1"


def _watch(**kw):
    from drdrill.operators.deadline import RecoveryDeadlineOperator

    return RecoveryDeadlineOperator(task_id="rto_watch", watch_task_ids=["verify.checks"], within_minutes=5,
                                    since_task_id="failover.promote_and_switch", since_key="fault_at", **kw)


def test_a_watch_beside_the_fault_waits_for_its_time(monkeypatch):
    """The fault is injected inside the critical path task: the watch, started beside it, takes the time that
    task publishes as soon as it does (not when it ends)."""
    import drdrill.triggers.deadline as trig

    monkeypatch.setattr(trig, "task_states", lambda *a: {"failover.promote_and_switch": "running"})
    ctx = {"ti": _WatchTI([None, None, "1765000000.25"]), "dag_run": _Run()}
    assert _watch()._wait_since(ctx, poll=0.01) == 1765000000.25


def test_a_watch_beside_a_task_that_never_injected_a_fault_has_no_outage_to_watch(monkeypatch):
    import drdrill.triggers.deadline as trig

    monkeypatch.setattr(trig, "task_states", lambda *a: {"failover.promote_and_switch": "failed"})
    assert _watch()._wait_since({"ti": _WatchTI([None]), "dag_run": _Run()}, poll=0.01) is None
    monkeypatch.setattr(trig, "task_states", lambda *a: {"failover.promote_and_switch": "queued"})
    with pytest.raises(TimeoutError, match="published no outage start"):
        _watch(since_wait_seconds=0.2)._wait_since({"ti": _WatchTI([None]), "dag_run": _Run()}, poll=0.01)


def test_the_dns_wait_can_take_a_change_sent_by_an_earlier_task():
    """No second UPSERT: a change of {"switched": False} (no record in the estate) passes through untouched."""
    op = Route53RecordSwitchOperator(task_id="insync", zone="z.example", change={"switched": False, "reason": "x"})
    assert op.run({}) == {"switched": False, "reason": "x"}
    assert "change" in Route53RecordSwitchOperator.template_fields
