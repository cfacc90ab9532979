"""The estate's DR region (clusters[].dr): every bad description is refused at load, naming the field and the fix,
before any drill touches anything."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drdrill.core.errors import EstateError, PreflightError
from drdrill.core.estate import parse_estate
from drdrill.core.paths import DEFAULT_ESTATE

GOOD = DEFAULT_ESTATE.read_text()


def _mutated(fn) -> str:
    raw = yaml.safe_load(GOOD)
    fn(raw["clusters"][0])
    return yaml.safe_dump(raw)


def _parse(text: str):
    return parse_estate(text, Path("/etc/drdrill/estate.yaml"))


def _error(fn) -> str:
    with pytest.raises(EstateError) as e:
        _parse(_mutated(fn))
    return str(e.value)


def test_the_sandbox_names_its_regions_and_the_dr_node_is_a_member_but_not_a_node():
    c = _parse(GOOD).cluster("main")
    assert c.primary_region == "a" and c.dr.region == "b" and c.dr_repo == 2 and c.dr.mode == "cold"
    assert [n.name for n in c.nodes] == ["pg1", "pg2"] and [n.name for n in c.members] == ["pg1", "pg2", "pg3"]
    assert c.node("pg3").role == "standby" and c.node("pg3").region == "b"
    # a region failover makes it primary: the lost region's nodes become its standbys
    moved = c.with_primary("pg3")
    assert moved.primary.name == "pg3" and {n.name for n in moved.standbys} == {"pg1", "pg2"}


def test_a_dr_node_on_a_live_nodes_port_is_refused():
    msg = _error(lambda c: c["dr"]["node"].update(port=c["nodes"][0]["port"]))
    assert "dr.node: port 55432 on 127.0.0.1 is node pg1's" in msg and "port of its own" in msg


def test_a_dr_node_in_a_live_nodes_data_directory_is_refused():
    msg = _error(lambda c: c["dr"]["node"].update(data_dir=c["nodes"][1]["data_dir"]))
    assert "dr.node.data_dir" in msg and "is node pg2's data directory" in msg and "directory of its own" in msg


def test_a_dr_region_equal_to_the_primarys_is_refused():
    msg = _error(lambda c: c["dr"].update(region="a"))
    assert "dr.region 'a' is the region of node(s) ['pg1', 'pg2']" in msg


def test_no_repo_in_the_dr_region_is_refused():
    msg = _error(lambda c: c["pgbackrest"]["repos"][1].update(region="a"))
    assert "no repo is in the DR region 'b'" in msg and "region: b" in msg


def test_dr_repo_must_be_in_the_dr_region():
    msg = _error(lambda c: c["dr"].update(repo=1))
    assert "dr.repo: repo1 is in region 'a'" in msg
    msg = _error(lambda c: c["dr"].update(repo=7))
    assert "dr.repo: repo7 is not a repo of the stanza" in msg


def test_every_node_and_repo_names_its_region_when_there_is_a_dr_region():
    msg = _error(lambda c: c["nodes"][1].pop("region"))
    assert "every node and repo must name its region; add region: to nodes[pg2]" in msg


def test_a_dr_node_with_a_name_of_the_cluster_is_refused():
    msg = _error(lambda c: c["dr"]["node"].update(name="pg2"))
    assert "dr.node.name 'pg2' is already a node" in msg


def test_a_dr_node_port_inside_the_scratch_range_is_refused():
    msg = _error(lambda c: c["dr"]["node"].update(port=55510))
    assert "dr.node.port 55510 is inside scratch.port_range" in msg


def test_an_unknown_mode_is_refused():
    msg = _error(lambda c: c["dr"].update(mode="lukewarm"))
    assert "clusters[main].dr.mode" in msg or "dr.mode" in msg


def test_scope_region_without_a_dr_section_is_refused_in_preflight(monkeypatch, tmp_path):
    from drdrill.drills import failover

    f = tmp_path / "estate.yaml"
    f.write_text(_mutated(lambda c: c.pop("dr")))
    monkeypatch.setenv("DRDRILL_ESTATE", str(f))
    est = _parse(f.read_text())
    with pytest.raises(PreflightError, match="scope 'region' needs the cluster's DR region"):
        failover.preflight({"cluster": "main", "scope": "region", "fault": "kill"}, "r1", failover.DRILL, estate=est)
    with pytest.raises(PreflightError, match="scope must be one of"):
        failover.preflight({"cluster": "main", "scope": "planet", "fault": "kill"}, "r1", failover.DRILL, estate=est)
