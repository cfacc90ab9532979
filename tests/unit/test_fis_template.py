"""The AZ failure's FIS template, built from the estate: shape, drift, bad input refused before any action.

Pure functions (no AWS): `drdrill.hooks.fis.template_spec`, `template_drift`, `experiment_state`,
and `drdrill.drills.chaos.fis`, fed by the real estate loader (``services[].az_failure.fis``).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from drdrill.core.errors import EstateError, PreflightError
from drdrill.core.estate import parse_estate
from drdrill.drills.chaos import fis as chaos_fis
from drdrill.hooks.fis import experiment_state, template_drift, template_spec

ROOT = Path(__file__).resolve().parents[2]
ALARM = "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:web-5xx"
ROLE = "arn:aws:iam::123456789012:role/fis-drdrill"


def _estate(**az_overrides):
    """The sandbox estate with a second service ``shop`` whose AZ failure runs on FIS."""
    raw = yaml.safe_load((ROOT / "include/estate/sandbox.yaml").read_text())
    az = {"engine": "fis", "percent": 33, "duration": "PT5M",
          "fis": {"conn_id": "aws_prod", "region": "eu-west-1", "template_name": "shop-az-failure",
                  "role_arn": ROLE, "ecs_cluster": "prod", "ecs_services": ["shop-web", "shop-api"],
                  "zones": ["eu-west-1a", "eu-west-1b"], "stop_alarm_arn": ALARM}}
    az.update(az_overrides)
    raw["services"].append({"name": "shop", "url": "https://shop.example.com", "heal_seconds": 300,
                            "allowed_drills": ["dr_monthly_az_failure"], "az_failure": az})
    return parse_estate(yaml.safe_dump(raw), Path("estate.yaml"))


def _shop(**az):
    return next(s for s in _estate(**az).services if s.name == "shop")


def test_the_estate_template_stops_a_third_of_the_tagged_tasks_in_one_zone_for_five_minutes():
    spec = chaos_fis.fis_template(_shop(), "eu-west-1b")
    target = spec["targets"]["ecsTasks"]
    assert target == {"resourceType": "aws:ecs:task", "resourceTags": {"Environment": "production"},
                      "filters": [{"path": "AvailabilityZone", "values": ["eu-west-1b"]}],
                      "selectionMode": "PERCENT(33)"}
    assert spec["actions"]["stopTasks"] == {"actionId": "aws:ecs:stop-task", "targets": {"Tasks": "ecsTasks"},
                                            "description": "stop the tasks in eu-west-1b"}
    wait = spec["actions"]["holdFault"]
    assert wait["actionId"] == "aws:fis:wait" and wait["parameters"] == {"duration": "PT5M"}
    assert wait["startAfter"] == ["stopTasks"]
    assert spec["stopConditions"] == [{"source": "aws:cloudwatch:alarm", "value": ALARM}]
    assert spec["roleArn"] == ROLE
    assert spec["tags"] == {"Name": "shop-az-failure", "drdrill-zone": "eu-west-1b", "managed-by": "drdrill"}
    kw = chaos_fis.operator_kwargs(_shop(), "eu-west-1a", duration="PT1M")
    assert kw["aws_conn_id"] == "aws_prod" and kw["region_name"] == "eu-west-1"
    assert kw["ecs_cluster"] == "prod" and kw["ecs_services"] == ["shop-web", "shop-api"]
    assert kw["heal_seconds"] == 300 and kw["template"]["actions"]["holdFault"]["parameters"]["duration"] == "PT1M"


def test_a_zone_the_estate_does_not_list_is_refused_naming_the_zones():
    with pytest.raises(PreflightError, match=r"zone 'eu-west-1c' is not one of service shop's az_failure.fis.zones "
                                             r"\['eu-west-1a', 'eu-west-1b'\]"):
        chaos_fis.fis_template(_shop(), "eu-west-1c")


@pytest.mark.parametrize("percent", [0, -5, 100.5, 250])
def test_a_percent_outside_0_100_is_refused_by_the_estate_loader(percent):
    with pytest.raises(EstateError, match=r"services\[shop\].az_failure.percent: percent must be in \(0, 100\]"):
        _estate(percent=percent)


def test_a_duration_that_is_not_iso_8601_is_refused_by_the_loader_and_by_the_template():
    with pytest.raises(EstateError, match=r"az_failure.duration: duration '5 minutes' is not an ISO 8601 duration"):
        _estate(duration="5 minutes")
    with pytest.raises(PreflightError, match="duration: duration '5m' is not an ISO 8601 duration: write it like PT5M"):
        chaos_fis.fis_template(_shop(), "eu-west-1a", duration="5m")


def test_bad_template_parts_are_refused_naming_the_field():
    good = {"name": "t", "role_arn": ROLE, "zone": "eu-west-1a", "percent": 33, "duration": "PT5M",
            "stop_alarm_arns": [ALARM]}
    cases = [({"percent": 33.5}, "percent 33.5 is not a whole number"),
             ({"percent": 0}, r"percent must be in \(0, 100\]"),
             ({"stop_alarm_arns": []}, "stop_alarm_arns is empty"),
             ({"stop_alarm_arns": ["web-5xx"]}, "stop alarm 'web-5xx' is not a CloudWatch alarm ARN"),
             ({"role_arn": "fis-role"}, "role_arn 'fis-role' is not an IAM role ARN"),
             ({"zone": ""}, "zone is empty"),
             ({"target_tags": {}}, "target_tags is empty")]
    for change, message in cases:
        with pytest.raises(PreflightError, match=message):
            template_spec(**{**good, **change})


def test_drift_names_each_differing_field_and_ignores_what_fis_adds():
    spec = chaos_fis.fis_template(_shop(), "eu-west-1a")
    live = copy.deepcopy(spec)
    live["actions"]["stopTasks"]["parameters"] = {}  # FIS answers empty fields the template never had
    live["actions"]["stopTasks"]["startAfter"] = []
    live["id"], live["creationTime"] = "EXT123", 1.0
    assert template_drift(live, spec) == []
    live["targets"]["ecsTasks"]["selectionMode"] = "PERCENT(50)"
    live["actions"]["holdFault"]["parameters"]["duration"] = "PT10M"
    assert set(template_drift(live, spec)) == {
        "targets.ecsTasks.selectionMode: live 'PERCENT(50)', estate 'PERCENT(33)'",
        "actions.holdFault.parameters.duration: live 'PT10M', estate 'PT5M'"}


def test_an_experiment_stopped_by_its_stop_condition_is_told_apart_from_a_stop_by_hand():
    base = {"id": "EXP1", "experimentTemplateId": "EXT1",
            "stopConditions": [{"source": "aws:cloudwatch:alarm", "value": ALARM}]}
    by_alarm = experiment_state({**base, "state": {"status": "stopped", "reason": "Stop condition triggered."}})
    by_hand = experiment_state({**base, "state": {"status": "stopped", "reason": "Experiment stopped by user."}})
    assert by_alarm["stopped_by_stop_condition"] and not by_hand["stopped_by_stop_condition"]
    assert by_alarm["stop_alarms"] == [ALARM]


def test_the_drill_duration_in_seconds_becomes_an_iso_8601_wait():
    spec = chaos_fis.fis_template(_shop(), "eu-west-1a", duration_seconds=90)
    assert spec["actions"]["holdFault"]["parameters"] == {"duration": "PT90S"}
    with pytest.raises(PreflightError, match="duration_seconds must be positive, got 0"):
        chaos_fis.fis_template(_shop(), "eu-west-1a", duration_seconds=0)


def test_a_service_without_a_fis_engine_is_refused():
    web = next(s for s in _estate().services if s.name == "web")  # the sandbox engine
    with pytest.raises(PreflightError, match="service web has no az_failure with engine fis"):
        chaos_fis.fis_template(web, "a")


def test_a_template_rendered_as_text_is_refused_before_any_call():
    from drdrill.operators.fis import FisExperimentOperator, _as_list

    spec = chaos_fis.fis_template(_shop(), "eu-west-1a")
    op = FisExperimentOperator(task_id="t", template=str(spec), aws_conn_id="nowhere")
    with pytest.raises(PreflightError, match="render_template_as_native_obj=True"):
        op.run({"run_id": "r"})
    assert _as_list("['shop-web', 'shop-api']") == _as_list("shop-web, shop-api") == ["shop-web", "shop-api"]
