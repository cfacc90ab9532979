"""Reading an Airflow Variable when "could not read" must never pass for "not set".

`airflow.sdk.Variable.get` turns a transient execution-API error into "not found" and moves on to
the next secrets backend (right for settings with defaults, wrong for a kill switch or a lock: an
API hiccup would read as "no kill switch" or "target free"). `read_strict` asks the same backends in
the same order (environment variables and any configured secrets backend first, then the metadata
database through the Task SDK's execution API), but only a real "not found" from the API server
means unset; any other error raises `VariableUnreadable`. The Task SDK's secrets cache is skipped.
"""

from __future__ import annotations

import os

from drdrill.core.errors import DrillError


class VariableUnreadable(DrillError):
    """An Airflow Variable could not be read (not the same as: it is not set)."""


def in_task_context() -> bool:
    from airflow.sdk.execution_time import task_runner

    return getattr(task_runner, "SUPERVISOR_COMMS", None) is not None


def read_strict(key: str) -> str | None:
    """The Variable's raw value, None when it is not set anywhere; `VariableUnreadable` otherwise."""
    from airflow.sdk.exceptions import ErrorType
    from airflow.sdk.execution_time.comms import ErrorResponse, GetVariable, VariableResult
    from airflow.sdk.execution_time.secrets.execution_api import ExecutionAPISecretsBackend
    from airflow.sdk.execution_time.supervisor import ensure_secrets_backend_loaded

    if not in_task_context() and os.environ.get("_AIRFLOW_PROCESS_CONTEXT") != "server":
        # Outside a task the Task SDK reads environment variables only and would answer "not found".
        raise VariableUnreadable(f"Variable {key}: not running in an Airflow task (no Task SDK connection to the "
                                 f"metadata database)")
    for backend in ensure_secrets_backend_loaded():
        name = type(backend).__name__
        if isinstance(backend, ExecutionAPISecretsBackend):
            from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS

            try:
                msg = SUPERVISOR_COMMS.send(GetVariable(key=key))
            except Exception as e:  # noqa: BLE001 - any failure is "unreadable", with its reason
                raise VariableUnreadable(f"Variable {key}: the Airflow API could not be asked ({type(e).__name__}: "
                                         f"{e})") from e
            if isinstance(msg, VariableResult):
                return msg.value
            if isinstance(msg, ErrorResponse) and msg.error == ErrorType.VARIABLE_NOT_FOUND:
                continue
            detail = f"{msg.error}: {msg.detail}" if isinstance(msg, ErrorResponse) else repr(msg)[:300]
            raise VariableUnreadable(f"Variable {key}: the Airflow API answered {detail}")
        try:
            value = backend.get_variable(key=key)
        except Exception as e:  # noqa: BLE001 - a backend that cannot answer makes the value unknown
            raise VariableUnreadable(f"Variable {key}: secrets backend {name} failed ({type(e).__name__}: {e})") from e
        if value is not None:
            return value
    return None
