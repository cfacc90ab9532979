"""The pure parts of the Kubernetes pod kill: selectors, eligibility, the seeded choice, the heal verdict."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drdrill.hooks.kubernetes import (
    PodInfo,
    assess_heal,
    eligible_pods,
    ineligibility,
    parse_selector,
    pick_victims,
    selector_from_spec,
    selector_matches,
)

NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)


def pod(name: str, *, age: float = 3600, ready: bool = True, phase: str = "Running", deleting: bool = False,
        owner: str | None = "ReplicaSet", labels: dict[str, str] | None = None, uid: str | None = None,
        created: datetime | None = None) -> PodInfo:
    return PodInfo(name=name, namespace="shop", uid=uid or f"uid-{name}", created_at=created or NOW - timedelta(
        seconds=age), ready=ready, phase=phase, deleting=deleting, labels=labels or {"app": "web"},
        owner_kind=owner, owner_name="web-rs" if owner else None)


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ("app=web", {"app": "web"}, True),
    ("app==web", {"app": "web"}, True),
    ("app=web", {"app": "db"}, False),
    ("app=web", {}, False),
    ("app!=web", {"app": "db"}, True),
    ("app!=web", {}, True),
    ("app!=web", {"app": "web"}, False),
    ("app in (web, api)", {"app": "api"}, True),
    ("app in (web,api)", {"app": "db"}, False),
    ("app notin (web,api)", {"app": "db"}, True),
    ("app notin (web,api)", {}, True),
    ("canary", {"canary": ""}, True),
    ("canary", {"app": "web"}, False),
    ("!canary", {"app": "web"}, True),
    ("!canary", {"canary": "yes"}, False),
    ("app=web,tier in (front),!canary", {"app": "web", "tier": "front"}, True),
    ("app=web,tier in (front),!canary", {"app": "web", "tier": "front", "canary": "1"}, False),
    ("app.kubernetes.io/name=web", {"app.kubernetes.io/name": "web"}, True),
    ("", {"anything": "x"}, True),
])
def test_selectors_match_as_the_api_server_does(selector, labels, expected):
    assert selector_matches(selector, labels) is expected


@pytest.mark.parametrize(("selector", "says"), [
    ("app==(web", "does not parse"),
    ("app=web,", "is empty"),
    ("app in ()", "non-empty value list"),
    ("-bad=web", "invalid label key"),
    ("app=we b", "does not parse"),
    ("app=" + "x" * 64, "invalid label value"),
])
def test_a_malformed_selector_is_refused_naming_the_requirement(selector, says):
    with pytest.raises(ValueError, match=says) as e:
        parse_selector(selector)
    assert repr(selector) in str(e.value) and "app=web" in str(e.value)  # the example of the right form


def test_a_pdb_selector_spec_null_matches_nothing_and_empty_matches_all():
    assert not selector_matches(selector_from_spec(None), {"app": "web"})
    assert selector_matches(selector_from_spec({}), {"app": "web"})
    spec = {"matchLabels": {"app": "web"}, "matchExpressions": [
        {"key": "tier", "operator": "NotIn", "values": ["db"]}, {"key": "canary", "operator": "DoesNotExist"}]}
    assert selector_matches(selector_from_spec(spec), {"app": "web", "tier": "front"})
    assert not selector_matches(selector_from_spec(spec), {"app": "web", "tier": "db"})
    assert not selector_matches(selector_from_spec(spec), {"app": "web", "canary": "1"})
    with pytest.raises(ValueError, match="'Near' is not one of"):
        selector_from_spec({"matchExpressions": [{"key": "a", "operator": "Near"}]})


def test_only_running_ready_old_enough_owned_pods_are_eligible():
    pods = [pod("ok"), pod("young", age=10), pod("unready", ready=False), pod("pending", phase="Pending"),
            pod("going", deleting=True), pod("bare", owner=None)]
    assert [p.name for p in eligible_pods(pods, 60, NOW)] == ["ok"]
    why = {p.name: ineligibility(p, 60, NOW) for p in pods}
    assert why == {"ok": None, "young": "10 s old, younger than the minimum age 60 s", "unready": "not Ready",
                   "pending": "phase Pending, not Running", "going": "already being deleted",
                   "bare": "owned by no controller (nothing would re-create it)"}
    assert [p.name for p in eligible_pods(pods, 0, NOW)] == ["ok", "young"]


def test_the_seed_replays_the_choice_whatever_the_listing_order():
    pods = [pod(f"web-{i}") for i in range(8)]
    first = pick_victims(pods, 2, seed=42)
    assert pick_victims(list(reversed(pods)), 2, seed=42) == first
    assert len({p.name for p in first}) == 2
    assert len({tuple(p.name for p in pick_victims(pods, 1, s)) for s in range(20)}) > 1
    assert pick_victims(pods, 20, seed=1) and len(pick_victims(pods, 20, seed=1)) == 8
    assert pick_victims([], 1, seed=1) == []


def test_the_heal_needs_every_victim_gone_and_each_replacement_itself_ready():
    killed = NOW.isoformat()
    old = [pod("web-a"), pod("web-b")]
    victim = pod("web-c")
    st = assess_heal([*old, victim], victim_uids=[victim.uid], killed_at=killed, desired=3)
    assert not st["healed"] and st["missing"] == ["victim web-c still running (not deleted)",
                                                  "1 of 1 victim(s) not replaced yet (no new pod)"]
    gone = pod("web-c", deleting=True, ready=False)
    repl = pod("web-d", created=NOW, ready=False)
    st = assess_heal([*old, gone, repl], victim_uids=[victim.uid], killed_at=killed, desired=3)
    assert not st["healed"] and st["victims"][0]["deleting"] and st["ready_count"] == 2
    assert st["missing"] == ["replacement web-d not Ready", "2/3 pods Ready"]
    st = assess_heal([*old, pod("web-d", created=NOW)], victim_uids=[victim.uid], killed_at=killed, desired=3)
    assert st["healed"] and st["ready_replacements"] == ["web-d"] and st["missing"] == []
    # Enough Ready pods but none of them new (a surge pod older than the kill) is no heal.
    st = assess_heal([*old, pod("web-x", age=5)], victim_uids=[victim.uid], killed_at=killed, desired=3)
    assert not st["healed"] and st["ready_count"] == 3 and st["replacements"] == []


def test_a_replacement_created_in_the_second_of_the_kill_counts():
    """creationTimestamp has whole seconds: a pod created 0.3 s after a kill at .6 reads as .0."""
    killed = (NOW + timedelta(seconds=0.6)).isoformat()
    repl = pod("web-d", created=NOW)  # really created at NOW + 0.9 s
    st = assess_heal([pod("web-a"), repl], victim_uids=["uid-web-c"], killed_at=killed, desired=2)
    assert st["healed"] and st["replacements"][0]["name"] == "web-d"


def test_podinfo_to_dict_holds_primitives_only():
    d = pod("web-a").to_dict()
    assert d["created_at"] == (NOW - timedelta(hours=1)).isoformat() and d["labels"] == {"app": "web"}
    assert all(isinstance(v, (str, bool, int, dict, type(None))) for v in d.values())
