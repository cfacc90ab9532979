"""Who is primary now: the recorded topology, applied on top of a real estate file."""

from __future__ import annotations

import json

import pytest

from drdrill.core import topology
from drdrill.core.errors import EstateError
from drdrill.core.estate import State, load_estate
from drdrill.core.paths import DEFAULT_ESTATE


@pytest.fixture
def estate_file(tmp_path):
    """The sandbox estate with its state under tmp_path (never the sandbox's own state)."""
    p = tmp_path / "estate.yaml"
    p.write_text(DEFAULT_ESTATE.read_text() + f"\nstate:\n  location: file://{tmp_path}/state\n")
    return p


def _roles(estate) -> tuple[str, list[str]]:
    c = estate.cluster("main")
    return c.primary.name, [n.name for n in c.standbys]


def test_nothing_recorded_keeps_the_files_roles(estate_file, tmp_path):
    e = load_estate(estate_file)
    assert e.state_store == State(location=f"file://{tmp_path}/state")
    assert topology.read(e.state_store) == {}
    assert _roles(e) == ("pg1", ["pg2"])


def test_recorded_primary_is_applied_by_load_estate(estate_file, tmp_path):
    topology.record(load_estate(estate_file), "main", "pg2", run_id="manual__1", drill="dr_postgres_primary_failover",
                    reason="failover")
    assert (tmp_path / "state" / topology.FILE).exists()
    e = load_estate(estate_file)
    assert _roles(e) == ("pg2", ["pg1"])
    assert e.cluster("main").primary.port == 55433  # the node's own settings follow it
    assert _roles(load_estate(estate_file, topology=False)) == ("pg1", ["pg2"])


def test_history_keeps_every_change_with_its_run(estate_file):
    e = load_estate(estate_file)
    topology.record(e, "main", "pg2", run_id="scheduled__a", drill="dr_quarterly_failover_drill", reason="failover")
    rec = topology.record(load_estate(estate_file), "main", "pg1", run_id="scheduled__a",
                          drill="dr_quarterly_failover_drill", reason="failback")
    topology.record(load_estate(estate_file), "main", "pg2", run_id="manual__b", drill="dr_postgres_primary_failover",
                    reason="failover")
    state = topology.read(e.state_store)["main"]
    assert [(h["from"], h["to"], h["run_id"], h["reason"]) for h in state["history"]] == [
        (None, "pg2", "scheduled__a", "failover"), ("pg2", "pg1", "scheduled__a", "failback"),
        ("pg1", "pg2", "manual__b", "failover")]
    assert (state["primary"], state["run_id"], state["drill"]) == ("pg2", "manual__b", "dr_postgres_primary_failover")
    assert rec["primary"] == "pg1" and len(rec["history"]) == 2
    assert _roles(load_estate(estate_file)) == ("pg2", ["pg1"])


def test_history_is_bounded(estate_file):
    e = load_estate(estate_file)
    for i in range(55):
        topology.record(e, "main", ("pg1", "pg2")[i % 2], run_id=f"run_{i}", drill="d", reason="r")
    hist = topology.read(e.state_store)["main"]["history"]
    assert len(hist) == 50 and hist[0]["run_id"] == "run_5" and hist[-1]["run_id"] == "run_54"


def test_a_recorded_primary_the_estate_does_not_know_is_refused(estate_file):
    topology.record(load_estate(estate_file), "main", "pg2", run_id="manual__1", drill="d", reason="failover")
    # The estate is edited afterwards (a new file: the cache keys on the file's mtime): pg2 is renamed.
    edited = estate_file.with_name("edited.yaml")
    edited.write_text(estate_file.read_text().replace("name: pg2", "name: pg4").replace("nodes: [pg2]", "nodes: [pg4]"))
    with pytest.raises(EstateError, match=r"'pg2' is primary of cluster 'main'.*has no such node.*remove .*topology"):
        load_estate(edited)
    assert _roles(load_estate(edited, topology=False)) == ("pg1", ["pg4"])


def test_state_of_another_cluster_is_ignored(estate_file, tmp_path):
    import json

    # Written by hand: record() refuses a cluster or node the estate does not have.
    (tmp_path / "state").mkdir(exist_ok=True)
    (tmp_path / "state" / topology.FILE).write_text(json.dumps({"billing": {"primary": "db7"}}))
    assert _roles(load_estate(estate_file)) == ("pg1", ["pg2"])


def test_recording_a_node_the_cluster_does_not_have_is_refused(estate_file):
    e = load_estate(estate_file)
    with pytest.raises(EstateError, match="its nodes are"):
        topology.record(e, "main", "db7", run_id="r", drill="d", reason="failover")
    with pytest.raises(EstateError, match="unknown cluster 'billing'"):
        topology.record(e, "billing", "db7", run_id="r", drill="d", reason="failover")


def test_reset_returns_to_the_files_roles(estate_file, tmp_path):
    e = load_estate(estate_file)
    topology.record(e, "main", "pg2", run_id="r", drill="d", reason="failover")
    topology.reset(e.state_store)
    assert not (tmp_path / "state" / topology.FILE).exists()
    assert _roles(load_estate(estate_file)) == ("pg1", ["pg2"])
    topology.reset(e.state_store)  # nothing recorded: nothing to do


def test_unreadable_state_says_what_to_do(tmp_path):
    store = State(location=f"file://{tmp_path}")
    (tmp_path / topology.FILE).write_text('{"main": {"primary": "pg2", ')
    with pytest.raises(EstateError, match="cannot be read.*fix or remove it"):
        topology.read(store)


def test_read_of_a_written_state(tmp_path):
    store = State(location=f"file://{tmp_path}/nested/dir")
    assert topology.read(store) == {}
    (tmp_path / "nested" / "dir").mkdir(parents=True)
    (tmp_path / "nested" / "dir" / topology.FILE).write_text(json.dumps({"main": {"primary": "pg2"}}))
    assert topology.read(store) == {"main": {"primary": "pg2"}}


def test_a_recording_replaces_the_file_whole_never_in_place(estate_file, tmp_path):
    # Written in place, a crash mid-write left a truncated topology.json; now the new state goes to a
    # temp file that replaces the old one (a new inode), and no temp file is left behind.
    e = load_estate(estate_file)
    topology.record(e, "main", "pg2", run_id="r1", drill="dr_quarterly_failover_drill", reason="failover")
    f = tmp_path / "state" / topology.FILE
    before = f.stat().st_ino
    topology.record(load_estate(estate_file), "main", "pg1", run_id="r2", drill="dr_quarterly_failover_drill",
                    reason="failback")
    assert f.stat().st_ino != before
    assert sorted(p.name for p in f.parent.iterdir()) == [topology.FILE]
    assert json.loads(f.read_text())["main"]["primary"] == "pg1"

