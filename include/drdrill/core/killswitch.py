"""PLACEHOLDER until the lock branch lands (replaced by its module)."""

from __future__ import annotations

from drdrill.core.errors import DrillError

VARIABLE = "drdrill_kill_switch"


class KillSwitchEngaged(DrillError):
    pass


def check_kill_switch(action: str) -> None:
    from airflow.sdk import Variable

    value = Variable.get(VARIABLE, default=None)
    if value and str(value).strip().lower() not in ("off", "false", "0"):
        raise KillSwitchEngaged(f"kill switch {VARIABLE} is on ({value}): {action} not done")
