"""The critical path's wait for writes (`drdrill.drills.failover.failover_steps._wait_writable`): what a
user can meet right after a promotion, each with its own outcome. The whole path runs end to end in
tests/integration/test_failover.py and, under a real scheduler, test_failover_celery.py."""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from drdrill.core.errors import DrillError
from drdrill.drills.failover import failover_steps

PLAN = SimpleNamespace(dry_run=False)
NODE = SimpleNamespace(name="pg2", host="127.0.0.1", port=55433)
CLUSTER = SimpleNamespace(failover=SimpleNamespace(promote_timeout_seconds=5))


class _Refused(Exception):
    """What psycopg raises: a SQLSTATE when the server answered."""

    def __init__(self, text: str, sqlstate: str | None = None) -> None:
        super().__init__(text)
        self.sqlstate = sqlstate


def _server(monkeypatch, answers):
    """Each connection attempt takes the next answer: an exception, or pg_is_in_recovery()."""
    answers = list(answers)

    @contextmanager
    def connect(cluster, host, port, dbname=None):
        a = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(a, Exception):
            raise a
        yield a

    monkeypatch.setattr(failover_steps.pg, "connect", connect)
    monkeypatch.setattr(failover_steps.pg, "query_one", lambda c, sql: (c,))


def test_writable_once_out_of_recovery(monkeypatch):
    _server(monkeypatch, [True, _Refused("connection to server failed: server closed the connection"), False])
    out = failover_steps._wait_writable(PLAN, CLUSTER, NODE, poll=0.01)
    assert out["node"] == "pg2" and out["ready_at"] >= 0


def test_a_server_that_refuses_us_fails_at_once_naming_why(monkeypatch):
    _server(monkeypatch, [_Refused('FATAL: password authentication failed for user "drdrill"', "28P01")])
    with pytest.raises(DrillError, match="up but refuses drdrill: password authentication failed"):
        failover_steps._wait_writable(PLAN, CLUSTER, NODE, poll=0.01)


def test_a_server_that_stopped_after_its_promotion_fails_after_the_grace(monkeypatch):
    _server(monkeypatch, [_Refused("connection failed: Connection refused")])
    with pytest.raises(DrillError, match="is not running: it refused connections for 0s"):
        failover_steps._wait_writable(PLAN, CLUSTER, NODE, poll=0.01, down_grace=0.05)


def test_a_server_still_in_recovery_fails_at_the_promote_timeout(monkeypatch):
    _server(monkeypatch, [True])
    cluster = SimpleNamespace(failover=SimpleNamespace(promote_timeout_seconds=0.1))
    with pytest.raises(DrillError, match="not writable 0s after its promotion; last seen: still in recovery"):
        failover_steps._wait_writable(PLAN, cluster, NODE, poll=0.01)
