"""Wait, in the triggerer, until a Route53 change is INSYNC (no worker slot held meanwhile).

The amazon provider's waiter trigger with botocore's own ``resource_record_sets_changed`` waiter,
through `Route53Hook` (so the deferred half talks to the same endpoint, region and CA as the task).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger

from drdrill.hooks.route53 import Route53Hook


class Route53ChangeInsyncTrigger(AwsBaseWaiterTrigger):
    """Fires ``{"status": "success", "payload": {"change_id", ...}}`` once the change is INSYNC
    (``"status": "error"`` with ``message`` when it is not INSYNC after every attempt).

    :param change_id: the change's id (``ChangeInfo.Id`` without ``/change/``)
    :param payload: returned in the events as is, with ``change_id`` (what the deferring task needs
        to resume: Airflow does not always hand the defer kwargs back)
    :param waiter_delay: seconds between ``GetChange`` calls
    :param waiter_max_attempts: calls before the trigger gives up with an error
    :param aws_conn_id: Airflow AWS connection
    """

    aws_hook_class = Route53Hook

    def __init__(self, *, change_id: str, payload: dict[str, Any] | None = None, waiter_delay: int = 5,
                 waiter_max_attempts: int = 60, aws_conn_id: str | None = "aws_default", **kwargs: Any) -> None:
        super().__init__(
            serialized_fields={"change_id": change_id, "payload": payload},
            waiter_name="resource_record_sets_changed",
            waiter_args={"Id": change_id},
            failure_message=f"Route53 change {change_id} did not reach INSYNC",
            status_message=f"Route53 change {change_id}",
            status_queries=["ChangeInfo.Status"],
            return_key="payload",
            return_value={**(payload or {}), "change_id": change_id},
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            **kwargs,
        )

