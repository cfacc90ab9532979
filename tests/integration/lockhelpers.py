"""Fixtures for target locks and the kill switch: Task SDK comms in the test process, clean Variables.

Import the fixtures by name into a test module (``from integration.lockhelpers import clean, sdk``).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime

import pytest

from drdrill.core import killswitch, targetlock


@pytest.fixture(scope="module")
def sdk(airflow_db):
    """Task SDK comms to the in-process execution API over the test DB, as inside a task (what
    ``dag.test()`` gives each task, and Airflow's own ``run_trigger_in_process`` uses)."""
    from airflow.sdk.execution_time.supervisor import (
        InProcessSupervisorComms,
        InProcessTestSupervisor,
        set_supervisor_comms,
    )

    # No child process: the supervisor only answers this process's requests (process, log unused).
    sup = InProcessTestSupervisor(id=uuid.uuid4(), pid=os.getpid(), process=None, process_log=None,
                                  client=InProcessTestSupervisor._api_client())
    sup.comms = InProcessSupervisorComms(supervisor=sup)
    with set_supervisor_comms(sup.comms):
        yield sup


_LIVE: list[tuple[str, str]] = []  # DAG runs `live_run` left running: ended by `wipe`


def wipe() -> None:
    """No lock, no kill switch, and no DAG run a test left running (a running failover DAG run makes every
    later failover drill refuse to start: "another failover is running")."""
    from airflow.sdk import Variable

    for k in list(Variable.keys(prefix=targetlock.LOCK_PREFIX)):
        Variable.delete(k)
    Variable.delete(killswitch.KILL_SWITCH_VARIABLE)
    while _LIVE:
        end_run(*_LIVE.pop())


@pytest.fixture
def clean(sdk):
    """No lock and no kill switch before and after each test."""
    wipe()
    yield
    wipe()


def stored(key: str) -> dict | None:
    from airflow.sdk import Variable

    raw = Variable.get(targetlock.variable_name(key), default=None)
    return json.loads(raw) if raw else None


def engage_kill_switch(reason: str) -> None:
    from airflow.sdk import Variable

    Variable.set(killswitch.KILL_SWITCH_VARIABLE, reason)


def live_run(dag_id: str = "dr_live_holder") -> str:
    """A DAG run in state running in the metadata DB (what a drill acting right now looks like)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    run_id = f"manual__{time.time_ns()}"
    DagBundlesManager().sync_bundles_to_db()
    with create_session() as s:
        if not s.get(DagModel, dag_id):
            s.add(DagModel(dag_id=dag_id, bundle_name="dags-folder"))
            s.flush()
        s.add(DagRun(dag_id=dag_id, run_id=run_id, run_type="manual", state=DagRunState.RUNNING,
                     run_after=datetime.now(UTC)))
    _LIVE.append((dag_id, run_id))
    return run_id


def end_run(dag_id: str, run_id: str) -> None:
    """The DAG run is over (failed), as when a worker was killed and the run marked failed."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    with create_session() as s:
        s.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.run_id == run_id).update(
            {DagRun.state: DagRunState.FAILED})
