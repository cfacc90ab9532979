"""Run an AWS FIS experiment as a drill step: template checked, preview first, followed in the triggerer.

`FisExperimentOperator` is the production path of the monthly AZ failure, usable in any DAG with
explicit arguments and an Airflow AWS connection.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from drdrill.operators.base import DrillOperator, truthy


class FisExperimentOperator(DrillOperator):
    """Create (or check) an FIS experiment template, preview it, run it, and judge the outcome.

    In order, nothing touched before step 4:

    1. preflight: the ECS services in scope exist (``ecs_services``), every stop-condition alarm
       exists and is not in ALARM already (a drill never hits a sick system);
    2. the template: created when no template has its ``Name`` tag; a live template that differs
       from ``template`` is refused, naming each field (live vs given), unless ``update_template``;
    3. experiments of this template left running by an earlier run (its worker killed) are stopped;
    4. a preview (``actionsMode: skip-all``: targets resolved, nothing stopped) must complete;
    5. the real experiment starts, and the task defers to `FisExperimentTrigger` until it is
       finished (``deferrable``; else it polls here);
    6. the outcome: stopped by a stop condition fails the task naming the alarm; failed, stopped by
       someone, or not finished within ``timeout_seconds`` fails it too (the experiment is stopped
       first); a stop alarm that fired during the experiment fails it even when FIS completed;
    7. every ECS service in ``ecs_services`` must run its desired count within ``heal_seconds``
       after the experiment (else the task fails naming the services still short); a deferrable
       task waits for that in the triggerer too (`EcsServicesHealedTrigger`).

    Whatever fails after the experiment started, and `on_kill`, stop the experiment: a failed or
    killed run never leaves it running.

    :param template: the template as `drdrill.hooks.fis.template_spec` builds it (created or checked
        for drift), or the id of an existing template (used as it is)
    :param aws_conn_id: Airflow AWS connection
    :param region_name: AWS region (default: the connection's)
    :param preview_first: run the skip-all preview first and require it completed
    :param update_template: update a live template that differs instead of refusing
    :param deferrable: wait for the experiment in the triggerer
    :param timeout_seconds: how long the experiment may take (default: its wait actions' durations
        plus 10 minutes)
    :param poll_interval: seconds between ``GetExperiment`` calls
    :param preview_timeout: seconds the preview may take
    :param ecs_cluster: the ECS cluster of the services that must heal
    :param ecs_services: the ECS services that must be back at their desired count
    :param heal_seconds: the heal bound (default 300, the seed's 5 minutes)
    :param check_alarms: check the stop alarms before and after (``DescribeAlarms``, ``DescribeAlarmHistory``)
    :param experiment_tags: extra tags of the experiments (e.g. the DAG run)
    :param dry_run: stop after the preview (the template is still created or checked)

    Returns ``{"experiment_id", "template_id", "template", "preview_id", "state", "reason",
    "start_time", "end_time", "seconds", "alarms", "heal"}``.

    Usage::

        from drdrill.hooks.fis import template_spec
        FisExperimentOperator(task_id="az_failure", aws_conn_id="aws_default", region_name="eu-west-1",
                              template=template_spec(name="web-az-failure", role_arn=ROLE, zone="eu-west-1a",
                                                     percent=33, duration="PT5M", stop_alarm_arns=[ALARM]),
                              ecs_cluster="prod", ecs_services=["web"])
    """

    template_fields: Sequence[str] = ("template", "aws_conn_id", "region_name", "update_template", "dry_run",
                                      "ecs_cluster", "ecs_services", "experiment_tags", "heal_seconds",
                                      "timeout_seconds")

    def __init__(self, *, template: dict[str, Any] | str, aws_conn_id: str | None = "aws_default",
                 region_name: str | None = None, preview_first: bool = True, update_template: Any = False,
                 deferrable: bool = True, timeout_seconds: float | None = None, poll_interval: float = 10,
                 preview_timeout: float = 300, ecs_cluster: str | None = None, ecs_services: list[str] | None = None,
                 heal_seconds: float = 300, heal_poll_interval: float = 5, check_alarms: bool = True,
                 experiment_tags: dict[str, str] | None = None, dry_run: Any = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.template = template
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.preview_first = preview_first
        self.update_template = update_template
        self.deferrable = deferrable
        self.timeout_seconds = timeout_seconds
        self.poll_interval = poll_interval
        self.preview_timeout = preview_timeout
        self.ecs_cluster = ecs_cluster
        self.ecs_services = ecs_services
        self.heal_seconds = heal_seconds
        self.heal_poll_interval = heal_poll_interval
        self.check_alarms = check_alarms
        self.experiment_tags = experiment_tags
        self.dry_run = dry_run
        self._experiment_id: str | None = None

    # ------------------------------------------------------------------ hooks
    def _fis(self) -> Any:
        from drdrill.hooks.fis import FisHook

        return FisHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    def _alarms(self) -> Any:
        from drdrill.hooks.cloudwatch import AlarmHook

        return AlarmHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    def _ecs(self) -> Any:
        from drdrill.hooks.ecs import EcsServicesHook

        return EcsServicesHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    # ------------------------------------------------------------------ first half
    def run(self, context: Any) -> dict[str, Any]:
        from drdrill.core.errors import DrillFailed, PreflightError
        from drdrill.hooks.cloudwatch import alarm_name

        fis = self._fis()
        spec = self.template
        if isinstance(spec, dict):
            missing = [k for k in ("roleArn", "targets", "actions", "stopConditions", "tags") if not spec.get(k)]
            if missing or not (spec.get("tags") or {}).get("Name"):
                raise PreflightError(f"template lacks {', '.join(missing) or 'tags.Name'}: build it with "
                                     f"drdrill.hooks.fis.template_spec")
            stop_alarms = [c["value"] for c in spec["stopConditions"] if c.get("source") == "aws:cloudwatch:alarm"]
        elif isinstance(spec, str) and spec.strip().startswith("{"):
            raise PreflightError("template was rendered as text, not a dict: give the DAG "
                                 "render_template_as_native_obj=True, or pass the dict itself")
        elif isinstance(spec, str) and spec.strip():
            live = fis.get_template(spec.strip())
            stop_alarms = [c["value"] for c in live.get("stopConditions") or []
                           if c.get("source") == "aws:cloudwatch:alarm"]
        else:
            raise PreflightError(f"template must be a template dict (drdrill.hooks.fis.template_spec) or a template "
                                 f"id, got {spec!r}")
        # 1. preflight: nothing is touched yet
        services = _as_list(self.ecs_services)
        if services:
            if not self.ecs_cluster:
                raise PreflightError("ecs_services needs ecs_cluster (the ECS cluster they run in)")
            counts = self._ecs().services_at_desired(self.ecs_cluster, services)
            short = {k: v for k, v in counts.items() if v[0] < v[1]}
            if short:
                raise PreflightError("ECS services below their desired count before the fault (a drill never hits a "
                                     "sick system): " + ", ".join(f"{k} runs {r} of {d}"
                                                                  for k, (r, d) in short.items()))
        if self.check_alarms:
            alarms = self._alarms()
            firing = [alarm_name(a) for a in stop_alarms if alarms.state(a) == "ALARM"]
            if firing:
                raise PreflightError(f"stop-condition alarm {', '.join(firing)} is in ALARM before the experiment: "
                                     f"the service is not healthy; wait until it is OK")
        # 2. the template
        if isinstance(spec, dict):
            template_id, outcome = fis.ensure_template(spec, update=truthy(self.update_template))
        else:
            template_id, outcome = spec.strip(), "given"
        live = fis.get_template(template_id)
        timeout = float(self.timeout_seconds or _wait_seconds(live) + 600)
        # 3. leftovers of a killed run
        leftovers = fis.running_experiments(template_id)
        for exp_id in leftovers:
            self.log.warning("FIS experiment %s of template %s is still running (left by an earlier run): "
                             "stopping it", exp_id, template_id)
            fis.stop_experiment(exp_id)
        tags = {k: str(v) for k, v in (self.experiment_tags or {}).items()}
        try:
            tags.setdefault("airflow-run", str(context["run_id"])[:256])
        except (KeyError, TypeError):
            pass
        # 4. preview
        preview_id = None
        if self.preview_first:
            preview_id = fis.start_experiment(template_id, preview=True, tags=tags)
            self._experiment_id = preview_id
            try:
                pv = fis.wait_experiment(preview_id, timeout=float(self.preview_timeout),
                                         poll_interval=min(float(self.poll_interval), 5))
            except BaseException:
                fis.stop_experiment(preview_id)
                raise
            if pv["status"] != "completed":
                fis.stop_experiment(preview_id)
                raise DrillFailed(f"FIS preview {preview_id} of template {template_id} ended {pv['status']} "
                                  f"({pv['reason']}{'; ' + str(pv['error']) if pv['error'] else ''}): the real "
                                  f"experiment was not started; check the template's targets and role")
            self._experiment_id = None
            self.log.info("FIS preview %s completed", preview_id)
        base = {"template_id": template_id, "template": outcome, "preview_id": preview_id,
                "stopped_leftovers": leftovers}
        if truthy(self.dry_run):
            self.log.info("[DRY RUN] preview done; the experiment is not started")
            return {**base, "dry_run": True, "experiment_id": None}
        # 5. the experiment
        started = time.time()
        experiment_id = fis.start_experiment(template_id, preview=False, tags=tags)
        self._experiment_id = experiment_id
        payload = {**base, "experiment_id": experiment_id, "started_at": started, "timeout": timeout,
                   "deferred": bool(self.deferrable)}
        try:
            if self.deferrable:
                from drdrill.triggers.fis import FisExperimentTrigger

                self.defer(trigger=FisExperimentTrigger(experiment_id=experiment_id, timeout_seconds=timeout,
                                                        poll_interval=float(self.poll_interval),
                                                        aws_conn_id=self.aws_conn_id, region_name=self.region_name,
                                                        payload=payload),
                           method_name="execute_complete")
            state = fis.wait_experiment(experiment_id, timeout=timeout, poll_interval=float(self.poll_interval))
            state["state"] = state.pop("status")
            from drdrill.hooks.fis import TERMINAL

            event = {"status": "finished" if state["state"] in TERMINAL else "timeout", "payload": payload, **state}
            return self._finish(event)
        except BaseException as e:
            from airflow.sdk.exceptions import TaskDeferred

            if not isinstance(e, TaskDeferred):
                self._stop_quietly(experiment_id)
            raise

    # ------------------------------------------------------------------ second half
    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from airflow.sdk.exceptions import TaskDeferred

        from drdrill.core.journal import record_step

        started = float(event.get("payload", {}).get("started_at") or time.time())
        try:
            out = self._finish(event)
        except TaskDeferred:  # deferred again, until the services heal: not an outcome yet
            raise
        except BaseException as e:
            self._stop_quietly(event.get("experiment_id"))
            record_step(context, self.task_id, "failed", started, f"{type(e).__name__}: {e}"[:4000])
            raise
        record_step(context, self.task_id, "success", started)
        return out

    def heal_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Resumed by `EcsServicesHealedTrigger`: the services healed within the bound, or the task fails."""
        from drdrill.core.errors import DrillFailed
        from drdrill.core.journal import record_step

        out = dict(event.get("payload") or {})
        started = float(out.pop("started_at", None) or time.time())
        counts = event.get("counts") or {}
        if event.get("status") != "healed":
            msg = (f"ECS services not healed within {float(self.heal_seconds):.0f} s: " + ", ".join(
                f"{k} runs {counts.get(k, {}).get('running', 0)} of {counts.get(k, {}).get('desired', '?')} "
                f"desired tasks" for k in event.get("short") or []) + f" (cluster {self.ecs_cluster}); check the "
                "service events in the ECS console")
            record_step(context, self.task_id, "failed", started, f"DrillFailed: {msg}")
            raise DrillFailed(msg)
        out["heal"] = {"healed_seconds": event.get("healed_seconds"), "counts": counts, "waited_in": "triggerer"}
        record_step(context, self.task_id, "success", started)
        return out

    def _finish(self, event: dict[str, Any]) -> dict[str, Any]:
        from drdrill.core.errors import DrillFailed

        p = event.get("payload") or {}
        exp_id = event.get("experiment_id") or p.get("experiment_id")
        state, reason = event.get("state"), event.get("reason") or ""
        start, end = event.get("start_time") or p.get("started_at"), event.get("end_time") or time.time()
        out = {**{k: p.get(k) for k in ("template_id", "template", "preview_id", "stopped_leftovers")},
               "experiment_id": exp_id, "state": state, "reason": reason, "start_time": start, "end_time": end,
               "seconds": round(float(end) - float(start), 3) if start else None}
        if event.get("status") == "timeout":
            after = self._fis().stop_experiment(exp_id)
            raise DrillFailed(f"FIS experiment {exp_id} not finished within {float(p.get('timeout') or 0):.0f} s "
                              f"(still {state}); the drill stopped it (now {after['status']})")
        fired = self._fired(event.get("stop_alarms") or [], start, end) if self.check_alarms else []
        out["alarms"] = [f.describe() for f in fired]
        if state == "stopped":
            if event.get("stopped_by_stop_condition") or fired:
                named = ", ".join(f.alarm for f in fired) or "one of " + ", ".join(event.get("stop_alarms") or [])
                raise DrillFailed(f"FIS experiment {exp_id} was stopped by its stop condition: alarm {named} fired "
                                  f"({reason}); customers were hurt: see the alarm in CloudWatch")
            raise DrillFailed(f"FIS experiment {exp_id} was stopped before it completed ({reason}): someone stopped "
                              f"it (aws fis stop-experiment or the console); the drill is not conclusive")
        if state != "completed":
            err = event.get("error")
            raise DrillFailed(f"FIS experiment {exp_id} {state}: {reason}{'; ' + str(err) if err else ''}; check the "
                              f"experiment in the FIS console (targets found? role permissions?)")
        if fired:
            raise DrillFailed(f"stop-condition alarm {', '.join(f.alarm for f in fired)} fired during FIS experiment "
                              f"{exp_id} (" + "; ".join(out["alarms"]) + ") although the experiment completed")
        self._experiment_id = None
        services = _as_list(self.ecs_services)
        if services:
            ecs = self._ecs()
            if self.deferrable and event.get("status") == "finished" and p.get("deferred", True):
                counts = ecs.services_at_desired(str(self.ecs_cluster), services)
                if any(r < d for r, d in counts.values()):
                    from drdrill.triggers.fis import EcsServicesHealedTrigger

                    self.log.info("ECS services short after the experiment (%s): deferring until they heal "
                                  "(bound %.0f s)", counts, float(self.heal_seconds))
                    self.defer(trigger=EcsServicesHealedTrigger(
                        cluster=str(self.ecs_cluster), services=services, timeout_seconds=float(self.heal_seconds),
                        since=time.time(), poll_interval=float(self.heal_poll_interval),
                        aws_conn_id=self.aws_conn_id, region_name=self.region_name,
                        payload={**out, "started_at": p.get("started_at")}), method_name="heal_complete")
            out["heal"] = {**ecs.wait_desired(str(self.ecs_cluster), services, timeout=float(self.heal_seconds),
                                              poll_interval=float(self.heal_poll_interval)), "waited_in": "task"}
        return out

    def _fired(self, stop_alarms: list[str], start: float | None, end: float | None) -> list[Any]:
        alarms = self._alarms()
        since = float(start) if start else time.time() - 3600
        return [f for f in (alarms.alarm_fired(a, since=since, until=float(end or time.time()) + 60)
                            for a in stop_alarms) if f.fired]

    def _stop_quietly(self, experiment_id: str | None) -> None:
        if not experiment_id:
            return
        try:
            after = self._fis().stop_experiment(experiment_id)
            self.log.warning("FIS experiment %s is %s", experiment_id, after["status"])
        except Exception:  # noqa: BLE001 - the original failure matters more; say what to do
            self.log.exception("could not stop FIS experiment %s: stop it now with aws fis stop-experiment --id %s",
                               experiment_id, experiment_id)

    def on_kill(self) -> None:
        """The task is killed while it runs (preview or non-deferrable wait): stop the experiment."""
        self._stop_quietly(self._experiment_id)


def _as_list(value: Any) -> list[str]:
    """A list of names, also when templated as text (``"['web', 'api']"`` or ``"web,api"``)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        import json

        text = value.strip()
        if text.startswith("["):
            try:
                return [str(v) for v in json.loads(text.replace("'", '"'))]
            except ValueError:
                pass
        return [v.strip() for v in text.strip("[]").replace("'", "").split(",") if v.strip()]
    return [str(v) for v in value]


def _wait_seconds(template: dict[str, Any]) -> float:
    """The sum of the template's ``aws:fis:wait`` durations (how long the experiment lasts at least)."""
    from drdrill.core.services import iso_duration_seconds

    total = 0.0
    for action in (template.get("actions") or {}).values():
        duration = (action.get("parameters") or {}).get("duration")
        if duration:
            try:
                total += iso_duration_seconds(duration)
            except ValueError:
                continue
    return total
