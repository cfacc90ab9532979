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
