"""AWS Fault Injection Service: the AZ failure's experiment template and its experiments.

`FisHook` is the amazon provider's `AwsBaseHook` with the ``fis`` client, so the Airflow
connection decides where the API is (AWS in production, moto in tests: ``endpoint_url`` in the
connection's extra). Nothing here reads the estate: `template_spec` builds a template from
explicit parts (drill logic turns the estate's ``services[].az_failure.fis`` into them).

The template `template_spec` builds (checked against AWS's FIS user guide, "Targets" and
"Actions reference"):

- target ``ecsTasks``: resource type ``aws:ecs:task``, the tasks carrying ``target_tags`` whose
  ``AvailabilityZone`` is the chosen zone (the filter AWS's own AZ scenarios use for ECS tasks),
  ``selectionMode`` ``PERCENT(n)``;
- action ``stopTasks``: ``aws:ecs:stop-task`` (it takes no duration: StopTask is instantaneous and
  ECS starts replacements at once), then ``holdFault``: ``aws:fis:wait`` for the duration
  (``PT5M``), so the experiment lasts the fault's duration and its stop condition is watched
  while the service heals;
- stop condition: ``aws:cloudwatch:alarm`` on each alarm ARN given;
- tags ``Name`` (the template's name), ``drdrill-zone`` (the zone) and ``managed-by: drdrill``:
  one template per zone, found by `FisHook.find_template` by name and zone, so a run failing
  another zone than the last one is not mistaken for drift.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

from drdrill.core.errors import DrillError, PreflightError
from drdrill.core.services import iso_duration_seconds

log = logging.getLogger(__name__)

TARGET = "ecsTasks"
STOP_ACTION = "stopTasks"
WAIT_ACTION = "holdFault"
MANAGED_BY = {"managed-by": "drdrill"}
ZONE_TAG = "drdrill-zone"
TERMINAL = ("completed", "stopped", "failed", "cancelled")
# The template fields the drill declares, compared with the live template for drift.
COMPARED = ("description", "roleArn", "targets", "actions", "stopConditions")


def template_spec(*, name: str, role_arn: str, zone: str, percent: float, duration: str,
                  stop_alarm_arns: Iterable[str], target_tags: dict[str, str] | None = None,
                  description: str | None = None) -> dict[str, Any]:
    """The experiment template stopping ``percent`` % of the tagged ECS tasks in ``zone`` for ``duration``.

    :param name: the template's ``Name`` tag (unique per template: the drill finds it by this tag)
    :param role_arn: the IAM role FIS assumes (needs ``ecs:StopTask``, ``ecs:DescribeTasks``,
        ``ecs:ListTasks``, ``tag:GetResources`` and ``cloudwatch:DescribeAlarms``)
    :param zone: the availability zone, e.g. ``eu-west-1a``
    :param percent: share of the matching tasks stopped, in (0, 100], a whole number (FIS's
        ``PERCENT(n)`` takes an integer)
    :param duration: ISO 8601 duration of the fault, e.g. ``PT5M``
    :param stop_alarm_arns: CloudWatch alarm ARNs, each a stop condition (at least one)
    :param target_tags: the tags a task must carry (default ``Environment=production``)

    Returns the keyword arguments of ``create_experiment_template`` (without ``clientToken``).
    Raises `PreflightError` naming the field for a value FIS would refuse or misread.
    """
    if not str(name or "").strip():
        raise PreflightError("template name is empty: give the template's Name tag, e.g. web-az-failure")
    if not str(role_arn or "").startswith("arn:"):
        raise PreflightError(f"role_arn {role_arn!r} is not an IAM role ARN: give "
                             f"arn:aws:iam::<account>:role/<role FIS assumes>")
    if not str(zone or "").strip():
        raise PreflightError("zone is empty: name the availability zone to fail, e.g. eu-west-1a")
    try:
        pct = float(percent)
    except (TypeError, ValueError):
        raise PreflightError(f"percent {percent!r} is not a number: give e.g. 33") from None
    if not 0 < pct <= 100:
        raise PreflightError(f"percent must be in (0, 100], got {pct:g}: e.g. 33 stops a third of the tasks")
    if pct != math.floor(pct):
        raise PreflightError(f"percent {pct:g} is not a whole number: FIS's PERCENT(n) takes an integer, "
                             f"write {math.ceil(pct)}")
    try:
        iso_duration_seconds(duration)
    except ValueError as e:
        raise PreflightError(f"duration: {e}") from None
    alarms = [a for a in (stop_alarm_arns or []) if a]
    if not alarms:
        raise PreflightError("stop_alarm_arns is empty: an experiment against production needs a CloudWatch "
                             "alarm as its stop condition")
    bad = [a for a in alarms if not str(a).startswith("arn:") or ":alarm:" not in str(a)]
    if bad:
        raise PreflightError(f"stop alarm {bad[0]!r} is not a CloudWatch alarm ARN: give "
                             f"arn:aws:cloudwatch:<region>:<account>:alarm:<name>")
    tags = dict(target_tags if target_tags is not None else {"Environment": "production"})
    if not tags:
        raise PreflightError("target_tags is empty: FIS would pick among every ECS task in the account; "
                             "give the tags of the tasks in scope, e.g. {Environment: production}")
    return {
        "description": description or f"drdrill AZ failure: stop {pct:g}% of ECS tasks tagged "
                                      f"{_tags_text(tags)} in {zone} for {duration}",
        "roleArn": role_arn,
        "targets": {TARGET: {"resourceType": "aws:ecs:task", "resourceTags": tags,
                             "filters": [{"path": "AvailabilityZone", "values": [zone]}],
                             "selectionMode": f"PERCENT({int(pct)})"}},
        "actions": {
            STOP_ACTION: {"actionId": "aws:ecs:stop-task", "description": f"stop the tasks in {zone}",
                          "targets": {"Tasks": TARGET}},
            WAIT_ACTION: {"actionId": "aws:fis:wait", "description": "hold the fault while the service heals",
                          "parameters": {"duration": duration}, "startAfter": [STOP_ACTION]},
        },
        "stopConditions": [{"source": "aws:cloudwatch:alarm", "value": a} for a in alarms],
        "tags": {"Name": name, ZONE_TAG: zone, **MANAGED_BY},
    }


def _tags_text(tags: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(tags.items()))


def _clean(value: Any) -> Any:
    """Drop empty values FIS adds or omits on its own (``parameters: {}``, ``startAfter: []``)."""
    if isinstance(value, dict):
        out = {k: _clean(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [], "")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}"))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def template_drift(live: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """Each field where the live template differs from ``spec``: ``path: live X, estate Y``."""
    out = []
    for field in COMPARED:
        a = _flatten(_clean(live.get(field)), field)
        b = _flatten(_clean(spec.get(field)), field)
        for path in sorted(set(a) | set(b)):
            if a.get(path) != b.get(path):
                out.append(f"{path}: live {a.get(path)!r}, estate {b.get(path)!r}")
    return out


def _ts(value: Any) -> float | None:
    if value is None:
        return None
    return value.timestamp() if hasattr(value, "timestamp") else float(value)


def experiment_state(exp: dict[str, Any]) -> dict[str, Any]:
    """The JSON-safe summary of a ``get_experiment`` answer (what the trigger and operator pass on).

    ``stopped_by_stop_condition`` is True when FIS stopped the experiment because a stop condition
    (a CloudWatch alarm) fired: its state is ``stopped`` and its reason names the stop condition.
    """
    state = exp.get("state") or {}
    status = str(state.get("status") or "unknown")
    reason = str(state.get("reason") or "")
    error = state.get("error") or None
    return {
        "experiment_id": exp.get("id"),
        "template_id": exp.get("experimentTemplateId"),
        "status": status,
        "reason": reason,
        "error": {k: str(v) for k, v in error.items()} if isinstance(error, dict) else error,
        "start_time": _ts(exp.get("startTime")),
        "end_time": _ts(exp.get("endTime")),
        "actions_mode": (exp.get("experimentOptions") or {}).get("actionsMode"),
        "stop_alarms": [c["value"] for c in exp.get("stopConditions") or []
                        if c.get("source") == "aws:cloudwatch:alarm" and c.get("value")],
        "actions": {name: str((a.get("state") or {}).get("status") or "")
                    for name, a in (exp.get("actions") or {}).items()},
        "stopped_by_stop_condition": status == "stopped" and "stop condition" in reason.lower(),
    }


class FisHook(AwsBaseHook):
    """AWS FIS through an Airflow AWS connection.

    :param aws_conn_id: Airflow AWS connection (``endpoint_url`` in its extra for moto or a proxy)
    :param region_name: AWS region (default: the connection's)

    Usage::

        hook = FisHook(aws_conn_id="aws_default", region_name="eu-west-1")
        spec = template_spec(name="web-az-failure", role_arn=..., zone="eu-west-1a", percent=33,
                             duration="PT5M", stop_alarm_arns=[...])
        template_id, outcome = hook.ensure_template(spec)          # created | unchanged
        experiment_id = hook.start_experiment(template_id, preview=True)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "fis"
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ templates
    def find_templates(self, name: str, zone: str | None = None) -> list[str]:
        """Ids of the templates tagged ``Name=name`` (and ``drdrill-zone=zone`` when given)."""
        found: list[str] = []
        kwargs: dict[str, Any] = {}
        while True:
            page = self.conn.list_experiment_templates(**kwargs)
            for t in page.get("experimentTemplates", []):
                tags = t.get("tags") or {}
                if tags.get("Name") == name and (zone is None or tags.get(ZONE_TAG) == zone):
                    found.append(t["id"])
            if not page.get("nextToken"):
                return found
            kwargs["nextToken"] = page["nextToken"]

    def find_template(self, name: str, zone: str | None = None) -> dict[str, Any] | None:
        """The template tagged ``Name=name`` (and ``drdrill-zone=zone`` when given), in full, or None.

        Refuses two such templates: which one the drill means is then a guess.
        """
        found = self.find_templates(name, zone)
        if len(found) > 1:
            which = f"Name={name!r}" + (f" and {ZONE_TAG}={zone!r}" if zone else "")
            raise PreflightError(f"FIS has {len(found)} experiment templates tagged {which} ({found}): delete "
                                 f"the extra ones or rename the estate's template_name")
        return self.get_template(found[0]) if found else None

    def get_template(self, template_id: str) -> dict[str, Any]:
        return self.conn.get_experiment_template(id=template_id)["experimentTemplate"]

    def ensure_template(self, spec: dict[str, Any], *, update: bool = False) -> tuple[str, str]:
        """Create the template ``spec`` describes, or check the live one matches it.

        Returns ``(template_id, outcome)`` with outcome ``created``, ``unchanged`` or ``updated``.
        A live template that differs is refused (`PreflightError` listing each differing field,
        live value vs estate value) unless ``update`` is True: then it is updated to ``spec``.
        """
        name, zone = spec["tags"]["Name"], spec["tags"].get(ZONE_TAG)
        live = self.find_template(name, zone)
        if live is None:
            created = self.conn.create_experiment_template(**spec)["experimentTemplate"]
            log.info("FIS template %s (zone %s) created (id %s)", name, zone, created["id"])
            return created["id"], "created"
        drift = template_drift(live, spec)
        if not drift:
            return live["id"], "unchanged"
        if not update:
            raise PreflightError(f"FIS template {name} ({live['id']}) differs from the estate: " + "; ".join(drift)
                                 + ". Fix the estate, or run with update_template=true to update the live template")
        self.conn.update_experiment_template(id=live["id"], **{k: spec[k] for k in COMPARED if k in spec})
        left = template_drift(self.get_template(live["id"]), spec)
        if left:
            raise DrillError(f"FIS template {name} ({live['id']}) still differs from the estate after the update: "
                             + "; ".join(left) + f". Delete it (aws fis delete-experiment-template --id {live['id']}) "
                             "and the drill creates it afresh")
        log.warning("FIS template %s (%s) updated to the estate: %s", name, live["id"], "; ".join(drift))
        return live["id"], "updated"

    # ------------------------------------------------------------------ experiments
    def start_experiment(self, template_id: str, *, preview: bool = False,
                         tags: dict[str, str] | None = None) -> str:
        """Start an experiment from ``template_id``; ``preview`` runs it with ``actionsMode: skip-all``
        (targets resolved, stop conditions checked, no action run). Returns the experiment id."""
        mode = {"drdrill-mode": "preview" if preview else "run"}
        kwargs: dict[str, Any] = {"experimentTemplateId": template_id, "tags": {**MANAGED_BY, **(tags or {}), **mode}}
        if preview:
            kwargs["experimentOptions"] = {"actionsMode": "skip-all"}
        exp = self.conn.start_experiment(**kwargs)["experiment"]
        log.info("FIS %s %s started from template %s", "preview" if preview else "experiment", exp["id"], template_id)
        return exp["id"]

    def get_experiment(self, experiment_id: str) -> dict[str, Any]:
        """The experiment's `experiment_state` summary."""
        return experiment_state(self.conn.get_experiment(id=experiment_id)["experiment"])

    def stop_experiment(self, experiment_id: str) -> dict[str, Any]:
        """Stop the experiment (FIS runs the actions' rollbacks); an experiment already finished is left as it is.

        Returns its state after the request.
        """
        from botocore.exceptions import ClientError

        before = self.get_experiment(experiment_id)
        if before["status"] in TERMINAL:
            return before
        try:
            self.conn.stop_experiment(id=experiment_id)
        except ClientError as e:
            after = self.get_experiment(experiment_id)
            if after["status"] in TERMINAL or after["status"] == "stopping":
                return after
            raise DrillError(f"FIS experiment {experiment_id} could not be stopped ({e}); stop it in the AWS console "
                             f"now: aws fis stop-experiment --id {experiment_id}") from e
        log.warning("FIS experiment %s stopped (was %s)", experiment_id, before["status"])
        return self.get_experiment(experiment_id)

    def running_experiments(self, template_id: str) -> list[str]:
        """Experiments of ``template_id`` not finished yet (e.g. left by a run whose worker was killed)."""
        out, kwargs = [], {"experimentTemplateId": template_id}
        while True:
            page = self.conn.list_experiments(**kwargs)
            out += [e["id"] for e in page.get("experiments", [])
                    if str((e.get("state") or {}).get("status")) not in TERMINAL]
            if not page.get("nextToken"):
                return out
            kwargs["nextToken"] = page["nextToken"]

    def wait_experiment(self, experiment_id: str, *, timeout: float, poll_interval: float = 5.0) -> dict[str, Any]:
        """Poll here until the experiment is finished; its state (status unchanged when ``timeout`` passed)."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.get_experiment(experiment_id)
            if state["status"] in TERMINAL or time.monotonic() >= deadline:
                return state
            time.sleep(poll_interval)
