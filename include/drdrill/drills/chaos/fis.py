"""The AZ failure's production path: the estate's ``services[].az_failure.fis`` as FIS arguments.

Drill logic between the estate and the AWS layer: `fis_template` turns a service's ``az_failure``
(engine ``fis``) and the zone a run picked into the experiment template `FisHook` creates or checks
(`drdrill.hooks.fis.template_spec`), `operator_kwargs` into the arguments of
`FisExperimentOperator`, and `stop_left_running` is the teardown's "no experiment left running".
A zone the estate does not list is refused here, before any action.
"""

from __future__ import annotations

import logging
from typing import Any

from drdrill.core.errors import PreflightError
from drdrill.core.services import ServiceTarget
from drdrill.hooks.fis import template_spec

log = logging.getLogger(__name__)


def fis_of(service: ServiceTarget) -> tuple[Any, Any]:
    """The service's ``az_failure`` and its ``fis`` block; refuses a service without engine ``fis``."""
    az = service.az_failure
    if az is None or az.engine != "fis" or az.fis is None:
        raise PreflightError(f"service {service.name} has no az_failure with engine fis: add az_failure.fis "
                             f"(the experiment template) to it in the estate")
    return az, az.fis


def iso_duration(seconds: float) -> str:
    """Seconds as the ISO 8601 duration FIS takes (``PT90S``); whole seconds, at least one."""
    s = float(seconds)
    if not s > 0:
        raise PreflightError(f"duration_seconds must be positive, got {seconds!r}: e.g. 60 for a one-minute fault")
    return f"PT{max(1, round(s))}S"


def fis_template(service: ServiceTarget, zone: str, *, duration: str | None = None,
                 duration_seconds: float | None = None) -> dict[str, Any]:
    """The experiment template for ``service`` failing ``zone`` (one of ``az_failure.fis.zones``).

    :param duration: override of ``az_failure.duration`` (ISO 8601, e.g. ``PT1M`` for a demo)
    :param duration_seconds: the same in seconds (the drill's ``duration_seconds`` param)

    An override changes the live template's wait, which is drift: the run then needs
    ``update_template`` (the template in AWS is the estate's, not a run's).
    """
    az, fis = fis_of(service)
    if zone not in fis.zones:
        raise PreflightError(f"zone {zone!r} is not one of service {service.name}'s az_failure.fis.zones "
                             f"{list(fis.zones)}: pick one of them, or add the zone to the estate")
    if duration_seconds is not None:
        duration = iso_duration(duration_seconds)
    return template_spec(name=fis.template_name, role_arn=fis.role_arn, zone=zone, percent=az.percent,
                         duration=duration or az.duration, stop_alarm_arns=[fis.stop_alarm_arn],
                         target_tags=dict(fis.target_tags),
                         description=f"drdrill dr_monthly_az_failure of {service.name}: stop {az.percent:g}% of "
                                     f"its ECS tasks in {zone}")


def operator_kwargs(service: ServiceTarget, zone: str, *, duration: str | None = None,
                    duration_seconds: float | None = None) -> dict[str, Any]:
    """The arguments of `drdrill.operators.fis.FisExperimentOperator` for this service and zone."""
    _, fis = fis_of(service)
    return {"template": fis_template(service, zone, duration=duration, duration_seconds=duration_seconds),
            "aws_conn_id": fis.conn_id, "region_name": fis.region, "ecs_cluster": fis.ecs_cluster,
            "ecs_services": list(fis.ecs_services), "heal_seconds": service.heal_seconds}


def stop_left_running(service: ServiceTarget) -> list[str]:
    """Stop every experiment of the service's templates (any zone) that is not finished (a failed or
    killed run's); the ids stopped. Nothing to do when no template exists yet."""
    from drdrill.hooks.fis import FisHook

    _, fis = fis_of(service)
    hook = FisHook(aws_conn_id=fis.conn_id, region_name=fis.region)
    stopped = [e for t in hook.find_templates(fis.template_name) for e in hook.running_experiments(t)]
    for exp_id in stopped:
        log.warning("FIS experiment %s of %s still running: stopping it", exp_id, fis.template_name)
        hook.stop_experiment(exp_id)
    return stopped
