"""What every drdrill operator shares: a step record for the journal, dry runs, the estate.

An operator takes either explicit arguments and Airflow connections (a user's own DAG) or
``cluster``, the name of a cluster in the estate file (the drills): then the stanza, servers,
credentials' connection and thresholds come from the estate, exactly as the drills read them.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator


def truthy(value: Any) -> bool:
    """A templated boolean ("True", "true", "1", True) as a bool."""
    return str(value).strip().lower() in ("true", "1", "yes")


def estate_cluster(name: str) -> Any:
    """The estate's cluster ``name`` (with the topology the last failover recorded)."""
    from drdrill.core.estate import load_estate

    return load_estate().cluster(str(name))


class DrillOperator(BaseOperator):
    """Base of drdrill's operators: `run` is the work, recorded as a journal step.

    The step record (status, timestamps, error, and the checks behind a failure) goes to XCom,
    where a drill's journal task collects it; in a user's own DAG it is harmless.
    """

    def execute(self, context: Any) -> Any:
        from drdrill.core.journal import step

        return step(self.run)(context)

    def run(self, context: Any) -> Any:
        raise NotImplementedError
