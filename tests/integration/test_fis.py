"""The AZ failure's AWS path against moto over HTTP: FIS templates and experiments, ECS services, CloudWatch alarms.

moto (5.2.5, run in-process as a threaded HTTP server) implements FIS templates and experiments
(an experiment moves pending -> initiating -> running -> completed as it is read, and a
``StopExperiment`` moves it to stopping -> stopped), ECS services with running and desired
counts, and CloudWatch alarms with ``SetAlarmState``. Every call of the hooks, the operator and the
trigger goes to it through the Airflow connection ``aws_moto`` (``endpoint_url`` in its extra).

What moto lacks, and how the tests stand in for it:

- FIS's own judgement: moto never fails an experiment, never stops one because its stop-condition
  alarm fired, and its ``aws:ecs:stop-task`` stops no task. `FisPlayer` plays that part of AWS in
  moto's in-process backend (holds an experiment running, fails it, or fires the alarm over HTTP
  and stops the experiment, or lowers a service's running count), as kmock's tests play the
  ReplicaSet controller; the code under test still reads every state over HTTP.
- ``DescribeAlarmHistory`` is not implemented by moto: a botocore ``before-call`` handler on the
  real client (the mechanism botocore's ``Stubber`` uses) answers it from the transitions moto
  recorded for the alarm; `test_alarm_history_is_read_page_by_page` uses ``Stubber`` itself.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from datetime import UTC, datetime

import pytest

from integration.helpers import test_dag
from moto_server import moto_server

REGION = "eu-west-1"
ACCOUNT = "123456789012"
ALARM = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:web-5xx"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/fis-drdrill"
DAG_ID = "test_fis_experiment"


@pytest.fixture(scope="module")
def moto_url():
    with moto_server("aws_moto", REGION) as url:
        yield url


def _remember_alarm(params, context, **_):
    context["alarm_name"] = params["AlarmName"]  # the request body is CBOR by then


def _history_from_moto(context, **_):
    """``DescribeAlarmHistory`` (moto lacks it), answered from the state changes moto recorded."""
    from botocore.awsrequest import AWSResponse
    from moto.cloudwatch.models import cloudwatch_backends

    name = context["alarm_name"]
    alarm = cloudwatch_backends[ACCOUNT][REGION].alarms[name]
    # moto keeps each state an alarm left (value, since when), and the current one apart
    states = [(h[3], h[4]) for h in alarm.history if h[0] == "StateUpdate"]
    states.append((alarm.state_value, alarm.state_updated_timestamp))
    items = [{"AlarmName": name, "AlarmType": "MetricAlarm", "Timestamp": ts.replace(tzinfo=UTC),
              "HistoryItemType": "StateUpdate", "HistorySummary": f"Alarm updated to {value}",
              "HistoryData": json.dumps({"newState": {"stateValue": value}})}
             for value, ts in states[1:]]  # the first is the state it was created in, not a transition
    return AWSResponse(None, 200, {}, None), {"AlarmHistoryItems": items}


def _post(url: str, body: dict) -> None:
    """moto's own API (reset, state transitions)."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status < 300, resp.status


@pytest.fixture
def aws(moto_url, monkeypatch):
    """A fresh moto: FIS experiments advance one state per read, ECS cluster ``prod`` with service ``web``
    at 3 of 3 tasks, the stop-condition alarm ``web-5xx`` OK."""
    from drdrill.hooks.cloudwatch import AlarmHook
    from drdrill.hooks.ecs import EcsServicesHook

    _post(f"{moto_url}/moto-api/reset", {})
    _post(f"{moto_url}/moto-api/state-manager/set-transition",
          {"model_name": "fis::experiment", "transition": {"progression": "manual", "times": 1}})
    real = AlarmHook.get_client_type

    def get_client_type(self, *a, **kw):
        client = real(self, *a, **kw)
        client.meta.events.register("before-parameter-build.cloudwatch.DescribeAlarmHistory", _remember_alarm)
        client.meta.events.register("before-call.cloudwatch.DescribeAlarmHistory", _history_from_moto)
        return client

    monkeypatch.setattr(AlarmHook, "get_client_type", get_client_type)
    ecs = EcsServicesHook(aws_conn_id="aws_moto").conn
    ecs.create_cluster(clusterName="prod")
    ecs.register_task_definition(family="web", containerDefinitions=[{"name": "web", "image": "web", "memory": 128}])
    ecs.create_service(cluster="prod", serviceName="web", taskDefinition="web", desiredCount=3)
    ecs.update_service(cluster="prod", service="web", desiredCount=3)  # moto: running = desired
    cw = AlarmHook(aws_conn_id="aws_moto").conn
    cw.put_metric_alarm(AlarmName="web-5xx", MetricName="HTTPCode_ELB_5XX_Count", Namespace="AWS/ApplicationELB",
                        Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
                        ComparisonOperator="GreaterThanOrEqualToThreshold")
    cw.set_alarm_state(AlarmName="web-5xx", StateValue="OK", StateReason="healthy")
    return moto_url


def _spec(**kw):
    from drdrill.hooks.fis import template_spec

    args = {"name": "web-az-failure", "role_arn": ROLE, "zone": "eu-west-1a", "percent": 33, "duration": "PT5M",
            "stop_alarm_arns": [ALARM]} | kw
    return template_spec(**args)


def _fis_backend():
    from moto.fis.models import fis_backends

    return fis_backends[ACCOUNT][REGION]


def _experiments(mode: str | None = None):
    exps = list(_fis_backend().experiments.values())
    return [e for e in exps if mode is None or e.experiment_options.get("actionsMode") == mode]


class FisPlayer(threading.Thread):
    """Plays the part of AWS moto lacks, on the first experiment of ``mode`` (``run-all``: the real one;
    ``skip-all``: the preview) once it exists:

    - ``hold``: it stays where it is (FIS running a long experiment);
    - ``fail``: FIS fails it;
    - ``stop_by_hand``: someone stops it (``StopExperiment`` over HTTP), no alarm involved;
    - ``alarm``: the stop-condition alarm goes to ALARM (``SetAlarmState`` over HTTP) and FIS stops
      the experiment;
    - ``short``: FIS stopped tasks of ``web`` and ECS does not replace one (running 2 of 3), restored
      after ``restore_after`` seconds when given.
    """

    def __init__(self, action: str, restore_after: float | None = None, mode: str = "run-all") -> None:
        super().__init__(daemon=True)
        self.action = action
        self.mode = mode
        self.restore_after = restore_after
        self.done = threading.Event()
        self.stop_flag = threading.Event()

    def run(self) -> None:
        from moto.ecs.models import ecs_backends

        while not self.stop_flag.is_set():
            exps = _experiments(self.mode)
            if exps:
                break
            time.sleep(0.005)
        else:
            return
        exp = exps[0]
        if self.action == "hold":
            exp._tick = -10**9  # never advances on reads
        elif self.action == "fail":
            exp.status = "failed"
        elif self.action == "alarm":
            from drdrill.hooks.cloudwatch import AlarmHook

            exp._tick = -10**9
            AlarmHook(aws_conn_id="aws_moto").conn.set_alarm_state(
                AlarmName="web-5xx", StateValue="ALARM", StateReason="5xx above threshold")
            exp.status = "stopped"
        elif self.action == "stop_by_hand":  # someone runs aws fis stop-experiment (over HTTP)
            from drdrill.hooks.fis import FisHook

            exp._tick = -10**9
            FisHook(aws_conn_id="aws_moto", region_name=REGION).conn.stop_experiment(id=exp.id)
            exp._tick = 0
        elif self.action == "short":
            svc = ecs_backends[ACCOUNT][REGION].services["prod:web"]
            svc.running_count = 2
            if self.restore_after is not None:
                time.sleep(self.restore_after)
                svc.running_count = 3
        self.done.set()


@pytest.fixture
def player():
    started = []

    def play(action: str, **kw) -> FisPlayer:
        p = FisPlayer(action, **kw)
        p.start()
        started.append(p)
        return p

    yield play
    for p in started:
        p.stop_flag.set()
        p.join(5)


@pytest.fixture
def fis_dag(airflow_db, aws):
    return test_dag("fis_experiment.py", DAG_ID)


def _run(dag, **conf):
    dr = dag.test(run_conf={"template": _spec(), **conf})
    [ti] = dr.get_task_instances()
    return ti, ti.xcom_pull(task_ids="az_failure"), ti.xcom_pull(task_ids="az_failure", key="drill_step")


# ---------------------------------------------------------------------------------------- the hook
def test_the_template_is_created_then_found_unchanged(aws):
    from drdrill.hooks.fis import FisHook

    fis = FisHook(aws_conn_id="aws_moto", region_name=REGION)
    assert fis.find_template("web-az-failure") is None
    template_id, outcome = fis.ensure_template(_spec())
    assert outcome == "created"
    live = fis.find_template("web-az-failure", "eu-west-1a")
    assert live["id"] == template_id
    assert live["tags"] == {"Name": "web-az-failure", "drdrill-zone": "eu-west-1a", "managed-by": "drdrill"}
    assert live["targets"]["ecsTasks"]["selectionMode"] == "PERCENT(33)"
    assert live["actions"]["holdFault"]["parameters"] == {"duration": "PT5M"}
    assert live["stopConditions"] == [{"source": "aws:cloudwatch:alarm", "value": ALARM}]
    assert fis.ensure_template(_spec()) == (template_id, "unchanged")
    # another zone is another template, not drift
    other_id, outcome = fis.ensure_template(_spec(zone="eu-west-1b"))
    assert outcome == "created" and other_id != template_id
    assert fis.get_template(other_id)["targets"]["ecsTasks"]["filters"] == [
        {"path": "AvailabilityZone", "values": ["eu-west-1b"]}]
    assert fis.ensure_template(_spec()) == (template_id, "unchanged")


def test_live_drift_is_refused_naming_each_field_and_updated_only_when_asked(aws):
    from drdrill.core.errors import PreflightError
    from drdrill.hooks.fis import FisHook

    fis = FisHook(aws_conn_id="aws_moto", region_name=REGION)
    template_id, _ = fis.ensure_template(_spec(percent=50, duration="PT10M"))
    with pytest.raises(PreflightError) as e:
        fis.ensure_template(_spec())
    msg = str(e.value)
    assert "targets.ecsTasks.selectionMode: live 'PERCENT(50)', estate 'PERCENT(33)'" in msg
    assert "actions.holdFault.parameters.duration: live 'PT10M', estate 'PT5M'" in msg
    assert "update_template=true" in msg
    assert fis.get_template(template_id)["targets"]["ecsTasks"]["selectionMode"] == "PERCENT(50)"  # untouched
    assert fis.ensure_template(_spec(), update=True) == (template_id, "updated")
    live = fis.get_template(template_id)
    assert live["targets"]["ecsTasks"]["selectionMode"] == "PERCENT(33)"
    assert live["actions"]["holdFault"]["parameters"]["duration"] == "PT5M"
    assert fis.ensure_template(_spec()) == (template_id, "unchanged")


def test_two_templates_with_the_same_name_are_refused(aws):
    from drdrill.core.errors import PreflightError
    from drdrill.hooks.fis import FisHook

    fis = FisHook(aws_conn_id="aws_moto", region_name=REGION)
    spec = _spec()
    fis.conn.create_experiment_template(**spec)
    fis.conn.create_experiment_template(**spec)
    with pytest.raises(PreflightError, match="FIS has 2 experiment templates tagged Name='web-az-failure' and "
                                             "drdrill-zone='eu-west-1a'"):
        fis.ensure_template(spec)


def test_ecs_services_running_and_desired_and_an_unknown_service_refused(aws):
    from drdrill.core.errors import PreflightError
    from drdrill.hooks.ecs import EcsServicesHook

    ecs = EcsServicesHook(aws_conn_id="aws_moto", region_name=REGION)
    assert ecs.services_at_desired("prod", ["web"]) == {"web": (3, 3)}
    with pytest.raises(PreflightError, match="ECS cluster 'prod' has no active service checkout"):
        ecs.services_at_desired("prod", ["web", "checkout"])


def test_the_trigger_follows_the_experiment_until_completed_and_on_kill_stops_a_running_one(aws):
    from drdrill.hooks.fis import FisHook
    from drdrill.triggers.fis import EcsServicesHealedTrigger, FisExperimentTrigger

    fis = FisHook(aws_conn_id="aws_moto", region_name=REGION)
    template_id, _ = fis.ensure_template(_spec())
    exp_id = fis.start_experiment(template_id)
    trig = FisExperimentTrigger(experiment_id=exp_id, timeout_seconds=30, poll_interval=0.05,
                                aws_conn_id="aws_moto", region_name=REGION, payload={"k": 1})
    assert FisExperimentTrigger(**trig.serialize()[1]).serialize() == trig.serialize()
    heal = EcsServicesHealedTrigger(cluster="prod", services=["web"], timeout_seconds=5, since=1.0,
                                    aws_conn_id="aws_moto", region_name=REGION, payload={"k": 2})
    assert EcsServicesHealedTrigger(**heal.serialize()[1]).serialize() == heal.serialize()

    async def first():
        return await anext(trig.run())

    ev = asyncio.run(first()).payload
    assert ev["status"] == "finished" and ev["state"] == "completed" and ev["payload"] == {"k": 1}
    assert ev["experiment_id"] == exp_id and ev["end_time"] >= ev["start_time"]
    assert ev["stopped_by_stop_condition"] is False and ev["stop_alarms"] == [ALARM]
    # a running experiment whose deferred task a user kills is stopped
    held = fis.start_experiment(template_id)
    _fis_backend().experiments[held]._tick = -10**9
    trig = FisExperimentTrigger(experiment_id=held, timeout_seconds=0.2, poll_interval=0.05, aws_conn_id="aws_moto",
                                region_name=REGION)
    ev = asyncio.run(first()).payload
    assert ev["status"] == "timeout" and ev["state"] == "pending"
    asyncio.run(trig.on_kill())
    assert _fis_backend().experiments[held].status in ("stopping", "stopped")


def test_alarm_history_is_read_page_by_page(aws):
    """botocore's ``Stubber`` on the real client: moto has no ``DescribeAlarmHistory``; two pages with a
    transition to ALARM in the window, one outside it, and one to OK."""
    from botocore.stub import ANY, Stubber

    from drdrill.hooks.cloudwatch import AlarmHook

    hook = AlarmHook(aws_conn_id="aws_moto", region_name=REGION)
    t0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)

    def item(minute: int, value: str) -> dict:
        return {"AlarmName": "web-5xx", "Timestamp": t0.replace(minute=minute), "HistoryItemType": "StateUpdate",
                "HistorySummary": f"Alarm updated from OK to {value}",
                "HistoryData": json.dumps({"newState": {"stateValue": value}})}

    with Stubber(hook.conn) as stub:
        stub.add_response("describe_alarms", {"MetricAlarms": [{"AlarmName": "web-5xx", "StateValue": "OK"}]},
                          {"AlarmNames": ["web-5xx"]})
        stub.add_response("describe_alarm_history", {"AlarmHistoryItems": [item(5, "ALARM"), item(6, "OK")],
                                                     "NextToken": "p2"},
                          {"AlarmName": "web-5xx", "HistoryItemType": "StateUpdate", "StartDate": ANY,
                           "EndDate": ANY, "ScanBy": "TimestampAscending"})
        stub.add_response("describe_alarm_history", {"AlarmHistoryItems": [item(9, "ALARM"), item(59, "ALARM")]},
                          {"AlarmName": "web-5xx", "HistoryItemType": "StateUpdate", "StartDate": ANY,
                           "EndDate": ANY, "ScanBy": "TimestampAscending", "NextToken": "p2"})
        fired = hook.alarm_fired(ALARM, since=t0, until=t0.replace(minute=30))
        stub.assert_no_pending_responses()
    assert fired.alarm == "web-5xx" and fired.state == "OK" and fired.fired
    assert [t["at"] for t in fired.transitions] == ["2026-12-06T08:05:00+00:00", "2026-12-06T08:09:00+00:00"]


def test_alarm_fired_through_moto_and_an_unknown_alarm_refused(aws):
    from drdrill.core.errors import PreflightError
    from drdrill.hooks.cloudwatch import AlarmHook

    hook = AlarmHook(aws_conn_id="aws_moto", region_name=REGION)
    t0 = time.time() - 1
    assert not hook.alarm_fired(ALARM, since=t0).fired
    hook.conn.set_alarm_state(AlarmName="web-5xx", StateValue="ALARM", StateReason="5xx")
    hook.conn.set_alarm_state(AlarmName="web-5xx", StateValue="OK", StateReason="recovered")
    fired = hook.alarm_fired(ALARM, since=t0)
    assert fired.state == "OK" and len(fired.transitions) == 1 and "web-5xx fired" in fired.describe()
    with pytest.raises(PreflightError, match="CloudWatch has no alarm 'api-5xx'"):
        hook.state("api-5xx")


def test_on_kill_stops_the_experiment_the_task_runs(aws):
    from drdrill.hooks.fis import FisHook
    from drdrill.operators.fis import FisExperimentOperator

    fis = FisHook(aws_conn_id="aws_moto", region_name=REGION)
    template_id, _ = fis.ensure_template(_spec())
    exp_id = fis.start_experiment(template_id)
    _fis_backend().experiments[exp_id]._tick = -10**9
    op = FisExperimentOperator(task_id="t", template=template_id, aws_conn_id="aws_moto", region_name=REGION)
    op._experiment_id = exp_id
    op.on_kill()
    assert _fis_backend().experiments[exp_id].status in ("stopping", "stopped")


# ---------------------------------------------------------------------------------------- the operator
def test_preview_then_the_experiment_completes_and_the_services_are_at_desired(fis_dag):
    ti, out, step = _run(fis_dag)
    assert str(ti.state) == "success", step
    assert step["status"] == "success"
    assert out["template"] == "created" and out["state"] == "completed"
    previews, runs = _experiments("skip-all"), _experiments("run-all")
    assert [e.id for e in previews] == [out["preview_id"]] and [e.id for e in runs] == [out["experiment_id"]]
    assert all(e.status == "completed" for e in previews + runs)
    assert out["alarms"] == [] and out["heal"]["counts"] == {"web": {"running": 3, "desired": 3}}
    assert out["heal"]["waited_in"] == "task"  # at desired already: no second deferral
    # the next run finds the template as the estate declares it
    ti, out, step = _run(fis_dag)
    assert str(ti.state) == "success" and out["template"] == "unchanged", step


def test_drift_fails_the_task_before_any_experiment_and_update_template_fixes_it(fis_dag):
    from drdrill.hooks.fis import FisHook

    FisHook(aws_conn_id="aws_moto", region_name=REGION).ensure_template(_spec(percent=50))
    ti, _, step = _run(fis_dag)
    assert str(ti.state) == "failed"
    assert "targets.ecsTasks.selectionMode: live 'PERCENT(50)', estate 'PERCENT(33)'" in step["error"], step
    assert _experiments() == []
    ti, out, step = _run(fis_dag, update_template=True)
    assert str(ti.state) == "success", step
    assert out["template"] == "updated" and out["state"] == "completed"


def test_a_stop_condition_firing_fails_the_task_naming_the_alarm(fis_dag, player):
    player("alarm")
    ti, _, step = _run(fis_dag)
    assert str(ti.state) == "failed"
    assert "was stopped by its stop condition: alarm web-5xx fired" in step["error"], step
    assert [e.status for e in _experiments("run-all")] == ["stopped"]


def test_a_failed_experiment_fails_the_task_with_its_reason(fis_dag, player):
    player("fail")
    ti, _, step = _run(fis_dag)
    assert str(ti.state) == "failed"
    assert f"FIS experiment {_experiments('run-all')[0].id} failed" in step["error"], step


def test_an_experiment_not_finished_in_time_is_stopped_never_left_running(fis_dag, player):
    player("hold")
    ti, _, step = _run(fis_dag, timeout_seconds=1)
    assert str(ti.state) == "failed"
    [exp] = _experiments("run-all")
    assert f"FIS experiment {exp.id} not finished within 1 s" in step["error"], step
    assert exp.status in ("stopping", "stopped")


def test_a_service_short_of_desired_after_the_heal_bound_fails_naming_it(fis_dag, player):
    player("short")
    ti, _, step = _run(fis_dag, heal_seconds=1)
    assert str(ti.state) == "failed"
    assert "ECS services not healed within 1 s: web runs 2 of 3 desired tasks" in step["error"], step


def test_a_service_that_heals_within_the_bound_passes(fis_dag, player):
    # Restored 10 s after the experiment appears: still short when the experiment completes, even on a busy
    # machine (CI once took over 3 s to get there, and the service had healed before the task could defer).
    player("short", restore_after=10.0)
    ti, out, step = _run(fis_dag, heal_seconds=40)
    assert str(ti.state) == "success", step
    assert step["status"] == "success"
    assert out["heal"]["counts"] == {"web": {"running": 3, "desired": 3}}
    assert out["heal"]["waited_in"] == "triggerer" and 0 < out["heal"]["healed_seconds"] < 40
    assert out["state"] == "completed" and out["experiment_id"] == _experiments("run-all")[0].id


def test_an_unknown_ecs_service_is_refused_before_any_action(fis_dag):
    from drdrill.hooks.fis import FisHook

    ti, _, step = _run(fis_dag, ecs_services=["web", "checkout"])
    assert str(ti.state) == "failed"
    assert "ECS cluster 'prod' has no active service checkout (MISSING)" in step["error"], step
    assert FisHook(aws_conn_id="aws_moto", region_name=REGION).find_template("web-az-failure") is None
    assert _experiments() == []


def test_dry_run_stops_after_the_preview(fis_dag):
    ti, out, step = _run(fis_dag, dry_run=True)
    assert str(ti.state) == "success", step
    assert out["dry_run"] is True and out["experiment_id"] is None
    assert len(_experiments("skip-all")) == 1 and _experiments("run-all") == []


def test_a_preview_that_does_not_complete_never_starts_the_experiment(fis_dag, player):
    player("fail", mode="skip-all")
    ti, _, step = _run(fis_dag)
    assert str(ti.state) == "failed"
    [preview] = _experiments("skip-all")
    assert f"FIS preview {preview.id} of template" in step["error"] and "ended failed" in step["error"], step
    assert "the real experiment was not started" in step["error"]
    assert _experiments("run-all") == []


def test_without_deferral_the_task_polls_and_stops_what_a_killed_run_left_running(aws):
    """The operator's first half called as the task would (``deferrable=False``: it waits itself)."""
    from drdrill.hooks.fis import FisHook
    from drdrill.operators.fis import FisExperimentOperator

    fis = FisHook(aws_conn_id="aws_moto", region_name=REGION)
    template_id, _ = fis.ensure_template(_spec())
    left = fis.start_experiment(template_id)
    _fis_backend().experiments[left]._tick = -10**9  # a killed run's experiment, still running
    op = FisExperimentOperator(task_id="t", template=_spec(), aws_conn_id="aws_moto", region_name=REGION,
                               deferrable=False, poll_interval=0.05, ecs_cluster="prod", ecs_services=["web"],
                               heal_seconds=5, heal_poll_interval=0.1)
    out = op.run({"run_id": "manual__1"})
    assert out["stopped_leftovers"] == [left]
    assert _fis_backend().experiments[left].status in ("stopping", "stopped")
    assert out["template"] == "unchanged" and out["state"] == "completed"
    assert _fis_backend().experiments[out["experiment_id"]].status == "completed"
    assert out["heal"]["counts"] == {"web": {"running": 3, "desired": 3}}


def test_the_teardown_stops_what_a_failed_run_left_running(aws):
    from drdrill.core.services import ServiceTarget
    from drdrill.drills.chaos import fis as chaos_fis
    from drdrill.hooks.fis import FisHook

    service = ServiceTarget.model_validate({
        "name": "shop", "url": "https://shop.example.com", "az_failure": {"engine": "fis", "fis": {
            "conn_id": "aws_moto", "region": REGION, "template_name": "web-az-failure", "role_arn": ROLE,
            "ecs_cluster": "prod", "ecs_services": ["web"], "zones": ["eu-west-1a"], "stop_alarm_arn": ALARM}}})
    assert chaos_fis.stop_left_running(service) == []  # no template yet: nothing to stop
    fis = FisHook(aws_conn_id="aws_moto", region_name=REGION)
    template_id, _ = fis.ensure_template(chaos_fis.fis_template(service, "eu-west-1a"))
    done, left = fis.start_experiment(template_id), fis.start_experiment(template_id)
    fis.wait_experiment(done, timeout=5, poll_interval=0.01)
    _fis_backend().experiments[left]._tick = -10**9
    assert chaos_fis.stop_left_running(service) == [left]
    assert _fis_backend().experiments[left].status in ("stopping", "stopped")
    assert _fis_backend().experiments[done].status == "completed"


def test_an_experiment_stopped_by_hand_fails_the_task_without_blaming_an_alarm(fis_dag, player):
    player("stop_by_hand")
    ti, _, step = _run(fis_dag)
    assert str(ti.state) == "failed"
    assert "was stopped before it completed (Experiment stopped): someone stopped it" in step["error"], step
    assert "alarm" not in step["error"]


def test_a_sick_service_is_never_hit(fis_dag):
    """The stop alarm already in ALARM, or a service below its desired count: refused before any action."""
    from drdrill.hooks.cloudwatch import AlarmHook
    from drdrill.hooks.ecs import EcsServicesHook

    cw = AlarmHook(aws_conn_id="aws_moto", region_name=REGION).conn
    cw.set_alarm_state(AlarmName="web-5xx", StateValue="ALARM", StateReason="5xx")
    ti, _, step = _run(fis_dag)
    assert str(ti.state) == "failed"
    assert "stop-condition alarm web-5xx is in ALARM before the experiment" in step["error"], step
    cw.set_alarm_state(AlarmName="web-5xx", StateValue="OK", StateReason="recovered")
    EcsServicesHook(aws_conn_id="aws_moto", region_name=REGION).conn.create_service(
        cluster="prod", serviceName="api", taskDefinition="web", desiredCount=2)  # moto: 0 of 2 running
    ti, _, step = _run(fis_dag, ecs_services=["web", "api"])
    assert str(ti.state) == "failed"
    assert "ECS services below their desired count before the fault" in step["error"] and "api runs 0 of 2" in \
        step["error"], step
    assert _experiments() == []


def test_the_probe_alarm_fails_a_chaos_drill_when_it_fired_during_the_fault(aws):
    """The estate's optional CloudWatch alarm beside the customer probe (services[].probe.alarm)."""
    import time

    from drdrill.core.services import ServiceTarget
    from drdrill.drills.chaos.common import alarm_check
    from drdrill.hooks.cloudwatch import AlarmHook

    svc = ServiceTarget(name="web", url="http://127.0.0.1:1", probe={"alarm": {"name": "web-5xx", "conn_id": "aws_moto",
                                                                              "region": REGION}})
    t0 = time.time() - 1
    quiet = alarm_check(svc, t0, time.time())
    assert quiet.status == "pass" and "did not fire" in quiet.message
    cw = AlarmHook(aws_conn_id="aws_moto").conn
    cw.set_alarm_state(AlarmName="web-5xx", StateValue="ALARM", StateReason="5xx from the load balancer")
    fired = alarm_check(svc, t0, time.time())
    assert fired.status == "fail" and "web-5xx fired during the fault" in fired.message
    missing = {"name": "no-such-alarm", "conn_id": "aws_moto", "region": REGION}
    gone = ServiceTarget(name="web", url="http://127.0.0.1:1", probe={"alarm": missing})
    assert alarm_check(gone, t0, time.time()).status == "fail"
