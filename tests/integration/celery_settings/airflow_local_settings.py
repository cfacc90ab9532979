"""Test-only Airflow cluster policy for tests/integration/test_failover_celery.py (never on a real deployment).

Airflow imports ``airflow_local_settings`` from its PYTHONPATH; only the Celery test puts this
directory there. It splits the failover drill's tasks between two Celery queues, one per worker,
so consecutive tasks run on different workers: alternately by the graph's topological order, and
the tasks that read what the canary writer produces always on the other worker than the one that
started it (otherwise the test would prove nothing).
"""

from __future__ import annotations

import os
import socket

DRILL = "dr_quarterly_failover_drill"
# The canary writer starts on w1; whoever stops it, waits for its writes and measures RTO/RPO is on w2.
# The lease on the cluster is taken on w1 and released on w2: it lives in the metadata DB, not on a worker.
PINNED = {"failover.start_canary": "w1", "stop_canary": "w2", "verify.checks": "w2", "measure": "w2",
          "failover.lock_targets": "w1", "release_targets": "w2"}
QUEUES = ("w1", "w2")


def dag_policy(dag) -> None:
    if dag.dag_id != DRILL:
        return
    for i, task in enumerate(dag.topological_sort()):
        task.queue = PINNED.get(task.task_id, QUEUES[i % 2])


def worker_hostname() -> str:
    """``core.hostname_callable``: each worker reports its own name (both run on this one machine)."""
    return os.environ.get("DRDRILL_TEST_WORKER") or socket.getfqdn()
