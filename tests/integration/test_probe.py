"""The customer probe through the real demo service: what it counts is what customers saw."""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest

from drdrill.core.httpjson import call
from drdrill.core.probe import CustomerProbe
from integration.test_demo_service import _supervisorctl_pid, _until

pytestmark = pytest.mark.sandbox


def test_a_healthy_service_shows_no_error_and_every_acknowledged_write_is_there(sandbox):
    _name, url, _port = sandbox.replicas()[0]
    run_id = f"probe-{uuid.uuid4().hex}"
    with CustomerProbe(url, run_id=run_id, rate=20, timeout=2) as probe:
        time.sleep(1.5)
    rep = probe.report()
    assert rep["total"]["errors"] == 0, rep["total"]["error_examples"]
    assert rep["total"]["requests"] >= 25, rep["total"]
    code, body = call(f"{url}/read?run_id={run_id}", timeout=5)
    assert code == 200 and body["count"] == (rep["total"]["requests"] + 1) // 2, body  # every write committed


def test_a_replica_killed_under_the_probe_is_seen_as_customer_errors_while_it_is_down(sandbox):
    """One replica, no front door: its loss is exactly what customers see (the case a load balancer with
    retries must hide)."""
    name, url, _port = sandbox.replicas()[1]
    pid = _supervisorctl_pid(sandbox, name)
    assert pid
    with CustomerProbe(url, run_id=f"probe-{uuid.uuid4().hex}", rate=20, timeout=1) as probe:
        time.sleep(0.5)
        probe.mark("during")
        os.kill(pid, signal.SIGKILL)
        _until(f"supervisord restarts {name}", lambda: (call(url + "/health", timeout=1)[0] == 200, None, None))
        probe.mark("after")
        time.sleep(0.5)
    rep = probe.report()
    assert rep["before"]["errors"] == 0 and rep["after"]["errors"] == 0, rep
    assert rep["during"]["errors"] > 0, rep["during"]
    assert all(e["status"] == 0 for e in rep["during"]["error_examples"]), rep["during"]["error_examples"]
