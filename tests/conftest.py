"""Shared fixtures: a private Airflow home with a migrated SQLite DB, and the real sandbox.

The Airflow environment is set before anything imports Airflow, so tests never touch the
demo's metadata DB. The sandbox is the same one `make sandbox-up` builds (idempotent).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="drdrill-test-airflow-")
os.environ.update({
    "AIRFLOW_HOME": _AIRFLOW_HOME,
    "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "GX_ANALYTICS_ENABLED": "False",
    # One key for every Airflow process of the session (this one, `airflow dags test` subprocesses), as in a
    # deployment: Variables are stored encrypted, and a process with another key reads ciphertext.
    "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
})
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "include"), os.environ.get("PYTHONPATH")]))

# The Kubernetes emulator's fixtures (k8s_cluster, k8s, k8s_namespace): tests/k8s_emulator.py.
pytest_plugins = ["k8s_emulator"]


# `make test` runs two pytest workers (pytest-xdist, ``-n 2 --dist loadscope`` with the scheduler below). One
# sandbox is shared by the whole session and the drills change it (failovers swap roles, a killed server is
# rebuilt), so every test that uses it, or reads the sandbox's estate and recorded topology, runs on one
# worker as one group, in collection order. The other tests (pure logic, emulators, their own servers on free
# ports) run on the other worker meanwhile, a module at a time. Run without ``-n``, everything runs in one
# process, as before. (xdist's own ``loadgroup`` marks do not work with pytest 9: the group is set here.)
SANDBOX_GROUP = "sandbox"
# Unit modules that use the sandbox (its fixtures) or read its estate and recorded topology.
SANDBOX_UNIT_MODULES = {"test_checks_and_safeguards.py", "test_estate.py", "test_estate_dr.py",
                        "test_failover_estate.py", "test_provider_package.py", "test_sandbox_front_door.py",
                        "test_scorecard.py"}


# Integration modules that need no sandbox (their own moto, Kubernetes emulator, PostgreSQL on a port of its own,
# the worker's own Airflow DB; journals and state under tmp_path): they run beside the sandbox's group. Not
# test_ssh_runner: its sshd unlocks the postgres account (usermod) as the sandbox's does.
FREE_INTEGRATION_MODULES = {"test_dataquality.py", "test_fis.py", "test_k8s_pod_kill.py", "test_recovery_deadline.py",
                            "test_targetlock.py", "test_velero.py"}


def in_sandbox_group(nodeid: str) -> bool:
    path = Path(nodeid.split("::", 1)[0])
    if path.parts[:2] == ("tests", "integration"):
        return path.name not in FREE_INTEGRATION_MODULES
    return path.name in SANDBOX_UNIT_MODULES


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class SandboxGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return SANDBOX_GROUP if in_sandbox_group(nodeid) else nodeid.split("::", 1)[0]

    return SandboxGroup(config, log)


def pytest_collection_modifyitems(config, items):
    """A test that uses the sandbox outside the group would run beside the drills on the other worker."""
    stray = sorted({i.nodeid.split("::", 1)[0] for i in items
                    if "sandbox" in getattr(i, "fixturenames", ()) and not in_sandbox_group(i.nodeid)})
    if stray:
        raise pytest.UsageError(f"{', '.join(stray)} use the sandbox: add them to SANDBOX_UNIT_MODULES (or take them "
                                f"out of FREE_INTEGRATION_MODULES) in tests/conftest.py so they run in the "
                                f"sandbox's group")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """Migrated metadata DB in the private Airflow home."""
    airflow = str(Path(sys.executable).parent / "airflow")
    res = subprocess.run([airflow, "db", "migrate"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    from airflow import settings

    settings.configure_orm()
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


@pytest.fixture(scope="session")
def sandbox():
    """The real sandbox estate, brought up if it is not running."""
    from drdrill.sandbox import Sandbox

    sb = Sandbox()
    sb.up()
    # The aws_sandbox connection (moto's S3 and Route53 over TLS), as `make airflow` sets it.
    os.environ.update(sb.airflow_env())
    return sb


@pytest.fixture(scope="session")
def estate(sandbox):
    from drdrill.core.estate import load_estate

    return load_estate()
