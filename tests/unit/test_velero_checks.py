"""Velero's schedule comparison and durations, without a cluster (the checks against the emulator are in
tests/integration/test_velero.py)."""

from __future__ import annotations

import pytest

from drdrill.core.backups import VeleroSchedule
from drdrill.drills.backups.velero import go_duration_seconds, schedule_drift
from drdrill.drills.backups.velero_restore import short_run_id


@pytest.mark.parametrize(("value", "seconds"), [("720h0m0s", 2_592_000), ("720h", 2_592_000), ("90m", 5400),
                                                ("1h30m", 5400), ("30s", 30), ("1.5h", 5400), ("", None),
                                                (None, None), ("30 days", None), ("h", None)])
def test_go_durations(value, seconds):
    assert go_duration_seconds(value) == seconds


def _live(**template):
    return {"spec": {"schedule": "0 2 * * *", "template": {"storageLocation": "default", **template}}}


def test_only_the_fields_the_estate_gives_are_compared():
    assert schedule_drift(VeleroSchedule(name="s"), _live(ttl="1h", includedNamespaces=["x"])) == []
    # storageLocation left out of a Schedule means Velero's default location
    assert schedule_drift(VeleroSchedule(name="s", storage_location="default"), {"spec": {"template": {}}}) == []


def test_a_hook_in_the_wrong_phase_and_a_paused_schedule_are_drift():
    want = VeleroSchedule(name="s", hooks=[{"name": "postgres-quiesce", "phase": "pre"}])
    live = _live(hooks={"resources": [{"name": "postgres-quiesce", "post": [{"exec": {"command": ["true"]}}]}]})
    assert schedule_drift(want, live) == ["hooks: 'postgres-quiesce' must be a pre-hook, live it has post commands"]
    live["spec"]["paused"] = True
    assert schedule_drift(VeleroSchedule(name="s"), live)[0].startswith("paused: live true")


def test_namespaces_and_resources_compare_as_sets_and_cron_by_fields():
    want = VeleroSchedule(name="s", schedule="0 2 * * *", included_namespaces=["a", "b"], excluded_resources=["nodes"])
    live = {"spec": {"schedule": "0  2 * * *", "template": {"includedNamespaces": ["b", "a"],
                                                             "excludedResources": ["nodes"]}}}
    assert schedule_drift(want, live) == []


def test_the_run_suffix_is_six_hex_characters_and_stable():
    assert short_run_id("manual__2026-01-01T00:00:00+00:00") == short_run_id("manual__2026-01-01T00:00:00+00:00")
    assert len(short_run_id("x")) == 6 and int(short_run_id("x"), 16) >= 0
