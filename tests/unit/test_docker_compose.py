"""docker-compose.yaml: the distributed setup for users' machines (no Docker engine here).

`docker compose config` (or Debian's `docker-compose config`, installed by `make install`)
validates the file without an engine; the structural checks below hold whatever the tool.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
DUMMY_SECRETS = {k: "not-a-secret" for k in ("AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY",
                                              "AIRFLOW_ADMIN_PASSWORD")}


def _compose_cmd() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    v1 = shutil.which("docker-compose")
    return [v1] if v1 else None


@pytest.mark.parametrize("profile", [[], ["--profile", "sandbox"]], ids=["airflow", "with-sandbox"])
def test_compose_config_validates(profile):
    cmd = _compose_cmd()
    if cmd is None:
        pytest.skip("no docker compose / docker-compose here; `make install` installs Debian's docker-compose")
    res = subprocess.run([*cmd, "-f", str(COMPOSE), *profile, "config", "-q"], capture_output=True, text=True,
                         env={**os.environ, **DUMMY_SECRETS}, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr


def test_compose_refuses_to_start_without_secrets():
    cmd = _compose_cmd()
    if cmd is None:
        pytest.skip("no compose tool")
    env = {k: v for k, v in os.environ.items() if k not in DUMMY_SECRETS}
    res = subprocess.run([*cmd, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120)
    assert res.returncode != 0 and "AIRFLOW_FERNET_KEY" in res.stderr


def test_celery_deployment_shape():
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    for name in ("api-server", "scheduler", "dag-processor", "triggerer", "worker", "postgres", "redis"):
        assert name in services, name
    env = services["scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["PYTHONPATH"] == "/opt/airflow/include"
    sandbox = {n for n, s in services.items() if "sandbox" in s.get("profiles", [])}
    assert {"moto", "pg-primary", "pg-standby"} <= sandbox
    # No secret values in git: every secret comes from the environment.
    text = COMPOSE.read_text()
    for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET"):
        assert f"{key}: ${{" in text
