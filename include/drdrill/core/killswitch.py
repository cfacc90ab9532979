"""The kill switch: one Airflow Variable that stops the action of every drill.

Set it, with the reason as its value, and no drill acts any more (chaos kills, FIS experiments,
the failover drill's fault and failback, the restore test's restore)::

    airflow variables set drdrill_kill_switch "incident INC-123: no drills until resolved"
    airflow variables delete drdrill_kill_switch          # released

Empty, ``off``, ``false``, ``0`` (any case) mean released; anything else is engaged. Drills call
`check_kill_switch` RIGHT BEFORE each action, not only at the start: a switch set while a drill
waits for its approval or its steady state still stops the action.

It is read through the Task SDK (`airflow.sdk.Variable`), so it works in workers without database
access (the execution API reads the metadata database; an ``AIRFLOW_VAR_DRDRILL_KILL_SWITCH``
environment variable or a secrets backend holding the key engages it too, since Airflow reads those
first), with `drdrill.core.variables.read_strict`: no cache (a switch set a second ago is seen), and
an API error is never taken for "not set".

Fail closed: when the Variable cannot be read (the API server unreachable or answering an error,
no Task SDK context, a secrets backend failing), the switch counts as ENGAGED and the verdict says why. A drill
that cannot tell whether it was told to stop does not act; the cost is a drill not run, never an
action nobody could stop.

The incident runbook (``dr_postgres_primary_failover``) does not consult it: it is a human's
response to a real outage, and a switch set to stop drills must never stop the recovery of production.

The variable's name can be changed on the scheduler and the workers with the environment variable
``DRDRILL_KILL_SWITCH_VARIABLE``.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Any

from drdrill.core.errors import DrillError

log = logging.getLogger(__name__)

KILL_SWITCH_VARIABLE = os.environ.get("DRDRILL_KILL_SWITCH_VARIABLE") or "drdrill_kill_switch"
RELEASED_VALUES = frozenset({"", "off", "false", "0"})


class KillSwitchEngaged(DrillError):
    """The kill switch is engaged (or could not be read): the action was not done."""

    def __init__(self, message: str, *, verdict: dict[str, Any]) -> None:
        super().__init__(message)
        self.verdict = verdict


def release_command(variable: str | None = None) -> str:
    return f"airflow variables delete {variable or KILL_SWITCH_VARIABLE}"


def _read(variable: str) -> tuple[str | None, str | None]:
    """(value, None), (None, None) when unset, or (None, why) when it could not be read."""
    from drdrill.core.variables import VariableUnreadable, read_strict

    try:
        value = read_strict(variable)
    except VariableUnreadable as e:
        return None, str(e)
    except Exception as e:  # noqa: BLE001 - any failure to read is fail-closed, with its reason
        return None, f"{type(e).__name__}: {e}"
    return value, None


def kill_switch_state(action: str = "", *, variable: str | None = None) -> dict[str, Any]:
    """Read the switch; never raises. Returns the verdict for the journal::

        {"variable", "engaged": bool, "value": the reason text or None, "action", "checked_at",
         "error": why it could not be read (then engaged: fail closed) or absent}
    """
    name = variable or KILL_SWITCH_VARIABLE
    value, error = _read(name)
    verdict: dict[str, Any] = {"variable": name, "action": action,
                               "checked_at": datetime.now(UTC).isoformat(timespec="milliseconds")}
    if error:
        verdict.update(engaged=True, value=None, error=error)
    else:
        verdict.update(engaged=value is not None and value.strip().lower() not in RELEASED_VALUES, value=value)
    return verdict


def describe(verdict: dict[str, Any]) -> str:
    """One line for logs and errors."""
    name, action = verdict["variable"], verdict.get("action") or "the action"
    if verdict.get("error"):
        return (f"kill switch treated as ENGAGED (fail closed): Airflow Variable {name} could not be read "
                f"({verdict['error']}); {action} was NOT done, nothing was changed. A drill never acts when it "
                f"cannot tell whether it was told to stop: fix the worker's access to the Airflow API, then run "
                f"the drill again.")
    if verdict["engaged"]:
        return (f"kill switch ENGAGED: Airflow Variable {name} = {verdict['value']!r}; {action} was NOT done, "
                f"nothing was changed. When the reason is resolved, release it with `{release_command(name)}` "
                f"and run the drill again.")
    return f"kill switch off ({name} {'unset' if verdict['value'] is None else repr(verdict['value'])}): {action}"


def check_kill_switch(action: str, *, variable: str | None = None) -> dict[str, Any]:
    """Call RIGHT BEFORE an action; raises `KillSwitchEngaged` (nothing done) when the switch is engaged
    or cannot be read. Returns the verdict (`kill_switch_state`) for the journal when it is off."""
    verdict = kill_switch_state(action, variable=variable)
    if verdict["engaged"]:
        msg = describe(verdict)
        log.error("%s", msg)
        raise KillSwitchEngaged(msg, verdict=verdict)
    log.info("%s", describe(verdict))
    return verdict
