"""The failover part of the estate: DNS, service, notify channels, node roles, state store."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drdrill.core.errors import EstateError
from drdrill.core.estate import Failover, Notify, parse_estate
from drdrill.core.paths import DEFAULT_ESTATE

GOOD = DEFAULT_ESTATE.read_text()


def _mutated(fn) -> str:
    raw = yaml.safe_load(GOOD)
    fn(raw)
    return yaml.safe_dump(raw)


def _failover(fn):
    return _mutated(lambda r: fn(r["clusters"][0]["failover"]))


def _parse(text: str):
    return parse_estate(text, Path("x.yaml"))


def _error(text: str) -> str:
    with pytest.raises(EstateError) as e:
        _parse(text)
    return str(e.value)


def test_sandbox_failover_section():
    c = _parse(GOOD).cluster("main")
    f = c.failover
    assert f.dns.record == "db.sandbox.drdrill.internal" and f.dns.zone == "sandbox.drdrill.internal"
    assert (f.dns.type, f.dns.ttl, f.dns.conn_id) == ("CNAME", 1, "aws_sandbox")
    assert f.service.urls == ["http://127.0.0.1:55610", "http://127.0.0.1:55611", "http://127.0.0.1:55612"]
    assert [n.kind for n in f.notify] == ["log"]
    assert c.primary.dns_name == "pg1.sandbox.drdrill.internal"
    assert c.node("pg2").dns_name == "pg2.sandbox.drdrill.internal"


def test_node_log_file_follows_the_sandbox_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("DRDRILL_SANDBOX_DIR", str(tmp_path))
    c = _parse(GOOD).cluster("main")
    assert c.node("pg1").log_file == tmp_path / "log" / "pg1.log"
    assert c.node("pg2").log_file == tmp_path / "log" / "pg2.log"


def test_failover_defaults_when_the_section_is_minimal():
    e = _parse(_mutated(lambda r: r["clusters"][0].update(failover={})))
    f = e.cluster("main").failover
    assert f.dns is None and f.service is None
    assert f.notify == [Notify(kind="log")]
    assert (f.new_standby, f.health_check_failed_minutes, f.canary_interval_ms) == ("rewind", 2, 100)
    assert f.max_standby_lag_bytes is None  # falls back to targets.max_replication_lag_bytes


def test_defaults_are_not_shared_between_instances():
    assert Failover().notify is not Failover().notify


def test_cluster_without_failover_section():
    e = _parse(_mutated(lambda r: r["clusters"][0].pop("failover")))
    assert e.cluster("main").failover is None


# ------------------------------------------------------------------ DNS
def test_dns_names_are_lower_cased_without_the_trailing_dot():
    e = _parse(_failover(lambda f: f["dns"].update(zone="Sandbox.DRDRILL.internal.",
                                                   record="DB.Sandbox.drdrill.internal.")))
    d = e.cluster("main").failover.dns
    assert (d.zone, d.record) == ("sandbox.drdrill.internal", "db.sandbox.drdrill.internal")


def test_record_at_the_zone_apex_is_inside_the_zone():
    e = _parse(_failover(lambda f: f["dns"].update(record="sandbox.drdrill.internal.", type="A")))
    assert e.cluster("main").failover.dns.record == "sandbox.drdrill.internal"


@pytest.mark.parametrize("record", ["db.prod.example.com", "db.xsandbox.drdrill.internal", "drdrill.internal"])
def test_record_outside_the_zone_is_refused(record):
    msg = _error(_failover(lambda f: f["dns"].update(record=record)))
    assert (f"clusters[main].failover.dns: record {record!r} is not inside zone 'sandbox.drdrill.internal'"
            in msg)


def test_dns_needs_zone_and_record():
    msg = _error(_failover(lambda f: f["dns"].pop("record")))
    assert "clusters[main].failover.dns.record: required field is missing" in msg


@pytest.mark.parametrize(("field", "value"), [("type", "AAAA"), ("ttl", -1), ("ttl", 86401),
                                              ("insync_timeout_seconds", 0)])
def test_dns_bad_values_name_the_field(field, value):
    assert f"clusters[main].failover.dns.{field}" in _error(_failover(lambda f: f["dns"].update({field: value})))


def test_dns_typo_is_refused():
    msg = _error(_failover(lambda f: f["dns"].update(recrod="db.sandbox.drdrill.internal")))
    assert "clusters[main].failover.dns.recrod: unknown field" in msg


# ------------------------------------------------------------------ service, failover figures
def test_service_needs_at_least_one_url():
    assert "clusters[main].failover.service.urls" in _error(_failover(lambda f: f["service"].update(urls=[])))


@pytest.mark.parametrize(("field", "value"), [("canary_interval_ms", 5), ("canary_interval_ms", 20000),
                                              ("new_standby", "clone"), ("promote_timeout_seconds", 0),
                                              ("max_standby_lag_bytes", -1)])
def test_failover_bad_values_name_the_field(field, value):
    assert f"clusters[main].failover.{field}" in _error(_failover(lambda f: f.update({field: value})))


# ------------------------------------------------------------------ notify
@pytest.mark.parametrize(("channel", "expected"), [
    ({"kind": "smtp", "to": ["dba@example.com"]}, "notify kind 'smtp' needs conn_id"),
    ({"kind": "smtp", "conn_id": "smtp_default"}, "notify kind 'smtp' needs 'to' (recipients)"),
    ({"kind": "slack", "channel": "#db"}, "notify kind 'slack' needs conn_id"),
])
def test_notify_channel_needs_its_connection(channel, expected):
    msg = _error(_failover(lambda f: f.update(notify=[{"kind": "log"}, channel])))
    assert f"clusters[main].failover.notify[1]: {expected}" in msg


def test_unknown_notify_kind():
    msg = _error(_failover(lambda f: f.update(notify=[{"kind": "pager"}])))
    assert "clusters[main].failover.notify[0].kind" in msg


def test_complete_notify_channels_are_accepted():
    e = _parse(_failover(lambda f: f.update(notify=[
        {"kind": "log"}, {"kind": "smtp", "conn_id": "smtp_dba", "to": ["dba@example.com"]},
        {"kind": "slack", "conn_id": "slack_ops", "channel": "#incidents"}])))
    n = e.cluster("main").failover.notify
    assert [(c.kind, c.conn_id) for c in n] == [("log", None), ("smtp", "smtp_dba"), ("slack", "slack_ops")]
    assert n[1].to == ["dba@example.com"] and n[2].channel == "#incidents"


# ------------------------------------------------------------------ nodes and roles
def test_unknown_node_names_the_nodes():
    c = _parse(GOOD).cluster("main")
    with pytest.raises(EstateError, match="cluster 'main' has no node 'pg9'; its nodes are pg1, pg2, pg3"):
        c.node("pg9")


def test_with_primary_swaps_the_roles_and_leaves_the_original_alone():
    c = _parse(GOOD).cluster("main")
    swapped = c.with_primary("pg2")
    assert swapped.primary.name == "pg2" and [n.name for n in swapped.standbys] == ["pg1"]
    assert swapped.primary.port == 55433 and swapped.primary.dns_name == "pg2.sandbox.drdrill.internal"
    assert c.primary.name == "pg1"  # a new cluster, not a changed one
    assert swapped.with_primary("pg1") == c


def test_with_primary_of_an_unknown_node_is_refused():
    with pytest.raises(EstateError, match="has no node 'pg9'; its nodes are pg1, pg2"):
        _parse(GOOD).cluster("main").with_primary("pg9")


def test_unknown_node_field_is_refused():
    msg = _error(_mutated(lambda r: r["clusters"][0]["nodes"][0].update(dns="pg1.example.com")))
    assert "clusters[main].nodes[pg1].dns: unknown field" in msg


# ------------------------------------------------------------------ state store
def test_state_store_defaults_beside_the_journal():
    e = _parse(_mutated(lambda r: r["journal"].update(location="s3://evidence/drdrill/", conn_id="aws_dr")))
    assert e.state is None
    assert (e.state_store.location, e.state_store.conn_id) == ("s3://evidence/drdrill/_state", "aws_dr")


def test_explicit_state_store():
    e = _parse(_mutated(lambda r: r.update(state={"location": "s3://dr-state/main", "conn_id": "aws_state"})))
    assert (e.state_store.location, e.state_store.conn_id) == ("s3://dr-state/main", "aws_state")


def test_state_location_must_be_a_url():
    msg = _error(_mutated(lambda r: r.update(state={"location": "/var/lib/drdrill/state"})))
    assert "state.location" in msg and "s3://" in msg
