"""The chaos drills' estate section and guards: every bad input refused naming the field and the fix."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from drdrill.core.errors import EstateError, PreflightError
from drdrill.core.estate import parse_estate
from drdrill.core.paths import DEFAULT_ESTATE
from drdrill.core.services import AzFailure, iso_duration_seconds
from drdrill.drills.chaos import guards
from drdrill.drills.chaos.common import zone_verdict
from drdrill.drills.chaos.process import parse_status


def _estate(edit=None):
    raw = yaml.safe_load(Path(DEFAULT_ESTATE).read_text())
    if edit:
        edit(raw["services"][0])
    return parse_estate(yaml.safe_dump(raw), Path("test.yaml"))


def _error(edit) -> str:
    with pytest.raises(EstateError) as e:
        _estate(edit)
    return str(e.value)


def test_the_sandbox_service_has_three_replicas_one_per_zone_behind_the_front_door():
    svc = _estate().service("web")
    assert svc.url == "http://127.0.0.1:55600"
    assert [(r.program, r.zone) for r in svc.process.replicas] == [("service-1", "a"), ("service-2", "b"),
                                                                   ("service-3", "c")]
    assert all(r.tags == {"Environment": "production"} for r in svc.process.replicas)
    assert svc.lock_keys() == ["service:web", "cluster:main"]
    assert svc.az_failure.share(1) == 1 and svc.az_failure.duration_seconds == 300


@pytest.mark.parametrize("percent", [0, -5, 100.5, 250])
def test_a_percent_outside_0_100_is_refused(percent):
    msg = _error(lambda s: s["az_failure"].update(percent=percent))
    assert "services[web].az_failure.percent" in msg and "(0, 100]" in msg


@pytest.mark.parametrize("duration", ["5m", "PT", "300", "P", "PT0S", "five minutes"])
def test_a_duration_that_is_not_iso_8601_is_refused(duration):
    msg = _error(lambda s: s["az_failure"].update(duration=duration))
    assert "services[web].az_failure.duration" in msg and "PT5M" in msg


def test_iso_durations():
    assert iso_duration_seconds("PT5M") == 300
    assert iso_duration_seconds("PT1H30M") == 5400
    assert iso_duration_seconds("PT90S") == 90
    assert iso_duration_seconds("P1D") == 86400
    assert AzFailure(engine="sandbox", percent=33).share(3) == 1
    assert AzFailure(engine="sandbox", percent=100).share(3) == 3


def test_unknown_service_cluster_and_drills_are_refused():
    assert "services[web].cluster 'nope' is not a cluster" in _error(lambda s: s.update(cluster="nope"))
    msg = _error(lambda s: s.update(allowed_drills=["dr_monthly_restore_test"]))
    assert "not chaos drills" in msg
    with pytest.raises(EstateError, match="unknown service 'api'.*services are web"):
        _estate().service("api")


def test_a_namespace_off_the_allow_list_is_refused_at_load():
    def k8s(s):
        s.pop("process")
        s.pop("az_failure")
        s["allowed_drills"] = ["dr_weekly_pod_kill"]
        s["kubernetes"] = {"namespace": "kube-system", "selector": "app=web", "namespaces_allowed": ["shop"]}

    msg = _error(k8s)
    assert "services[web].kubernetes" in msg and "not in namespaces_allowed" in msg


def test_blast_radius_leaves_a_replica_serving():
    msg = _error(lambda s: s.update(max_victims=3))
    assert "would leave no replica" in msg
    svc = _estate().service("web")
    assert guards.blast_radius(svc, 1).ok
    v = guards.blast_radius(svc, 2)
    assert not v.ok and not v.skip and "max_victims" in v.detail
    with pytest.raises(PreflightError, match="blast_radius"):
        guards.enforce([v])


def test_outside_the_window_skips_and_inside_acts():
    from airflow.sdk.exceptions import AirflowSkipException

    svc = _estate(lambda s: s.update(window={"days": ["tue", "wed"], "start": "10:00", "end": "16:00"})).service("web")
    inside = guards.window(svc, "Europe/Berlin", dt.datetime(2026, 12, 8, 10, 30, tzinfo=dt.UTC))  # Tue 11:30
    outside = guards.window(svc, "Europe/Berlin", dt.datetime(2026, 12, 6, 10, 30, tzinfo=dt.UTC))  # Sunday
    assert inside.ok
    assert not outside.ok and outside.skip and "outside the chaos window" in outside.detail
    with pytest.raises(AirflowSkipException, match="window"):
        guards.enforce([inside, outside])


def test_unknown_zone_is_refused_naming_the_zones():
    svc = _estate().service("web")
    assert zone_verdict(svc, "b").ok and zone_verdict(svc, None).ok
    v = zone_verdict(svc, "d")
    assert not v.ok and not v.skip and "zones are a, b, c" in v.detail


def test_the_same_seed_picks_the_same_victims():
    names = ["service-3", "service-1", "service-2"]
    assert guards.pick(names, 1, 42) == guards.pick(list(reversed(names)), 1, 42)
    assert {guards.pick(names, 1, s)[0] for s in range(50)} == set(names)  # every replica can be picked


def test_approval_unless_unattended_or_dry_run():
    assert guards.approval(_estate().service("web"), dry_run=False)[0] is False
    attended = _estate(lambda s: s.update(unattended=False)).service("web")
    assert guards.approval(attended, dry_run=False)[0] is True
    assert guards.approval(attended, dry_run=True)[0] is False


def test_supervisorctl_status_is_parsed():
    got = parse_status("service-1                        RUNNING   pid 1234, uptime 0:01:02\n"
                       "service-2                        STOPPED   Dec 06 08:50 AM\n"
                       "service-3                        RUNNING   pid 99, uptime 2 days, 1:00:01\n")
    assert got["service-1"].pid == 1234 and got["service-1"].uptime_seconds == 62
    assert got["service-2"].state == "STOPPED" and got["service-2"].pid is None
    assert got["service-3"].uptime_seconds == 2 * 86400 + 3601
