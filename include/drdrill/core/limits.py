"""Parse-time bounds every drill task gets (the estate is never read while parsing).

Each task has an ``execution_timeout``: a hung pgBackRest, a dead S3 endpoint or a lock never
holds a worker slot for ever. Tasks then bound their own waits from the estate's targets at run
time (restore, promotion, streaming, INSYNC); this is the backstop. Set the environment variable
on the scheduler and the workers to change it.
"""

from __future__ import annotations

import os
from datetime import timedelta

TASK_TIMEOUT = timedelta(minutes=float(os.environ.get("DRDRILL_TASK_TIMEOUT_MINUTES", "60")))

# Airflow pools (created by `airflow pools set`, airflow_settings.yaml, docker-compose's airflow-init;
# a task whose pool does not exist is never scheduled by a real scheduler). Every task of a drill runs
# in DRILL_POOL, so drills never take more than its slots of a shared Airflow; the steps that act on
# production servers or DNS run in DESTRUCTIVE_POOL (1 slot), so two of them never run at once. The
# incident runbook is not a drill: it runs in Airflow's default_pool and never waits behind one.
DRILL_POOL = "dr_drills"
DESTRUCTIVE_POOL = "dr_destructive"
INCIDENT_POOL = "default_pool"
