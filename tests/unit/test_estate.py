"""Estate validation: the sandbox estate is valid, and each kind of bad file says what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drdrill.core.errors import EstateError
from drdrill.core.estate import load_estate, parse_estate
from drdrill.core.paths import DEFAULT_ESTATE

GOOD = DEFAULT_ESTATE.read_text()


def _mutated(fn) -> str:
    raw = yaml.safe_load(GOOD)
    fn(raw)
    return yaml.safe_dump(raw)


def _error(text: str) -> str:
    with pytest.raises(EstateError) as e:
        parse_estate(text, Path("/etc/drdrill/estate.yaml"))
    return str(e.value)


def test_sandbox_estate_is_valid():
    e = load_estate(DEFAULT_ESTATE)
    c = e.cluster("main")
    assert c.primary.name == "pg1" and [n.name for n in c.standbys] == ["pg2"]
    assert [r.index for r in c.pgbackrest.repos] == [1, 2]
    assert c.allows("dr_monthly_restore_test")
    assert str(c.primary.data_dir).endswith(".sandbox/pg1/data")
    assert e.journal.location.startswith("file://")


def test_sandbox_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DRDRILL_SANDBOX_DIR", str(tmp_path))
    e = parse_estate(GOOD, DEFAULT_ESTATE)
    assert e.cluster("main").primary.data_dir == tmp_path / "pg1" / "data"


def test_malformed_yaml_names_file_and_line():
    msg = _error("name: x\nclusters: [\n  - name: a\n")
    assert "/etc/drdrill/estate.yaml" in msg and "not valid YAML" in msg and "line" in msg


def test_not_a_mapping():
    assert "expected a mapping" in _error("- just\n- a list\n")


def test_missing_field_names_the_field_path():
    msg = _error(_mutated(lambda r: r["clusters"][0]["pgbackrest"].pop("stanza")))
    assert "clusters[main].pgbackrest.stanza: required field is missing" in msg


def test_unknown_field_is_refused_as_a_typo():
    msg = _error(_mutated(lambda r: r["clusters"][0]["targets"].update(max_restor_minutes=5)))
    assert "clusters[main].targets.max_restor_minutes: unknown field" in msg


def test_wrong_type_names_the_field():
    msg = _error(_mutated(lambda r: r["clusters"][0]["targets"].update(rpo_minutes="soon")))
    assert "clusters[main].targets.rpo_minutes" in msg


def test_remote_repos_are_probed_for_3_s_and_commands_killed_after_120_s_by_default():
    c = load_estate(DEFAULT_ESTATE).cluster("main")
    assert [r.probe_timeout_seconds for r in c.pgbackrest.repos] == [3, 3]
    assert c.pgbackrest.command_timeout_seconds == 120


def test_a_negative_probe_timeout_is_refused_and_0_turns_the_probe_off():
    msg = _error(_mutated(lambda r: r["clusters"][0]["pgbackrest"]["repos"][1].update(probe_timeout_seconds=-1)))
    assert "clusters[main].pgbackrest.repos[1].probe_timeout_seconds" in msg
    off = parse_estate(_mutated(lambda r: r["clusters"][0]["pgbackrest"]["repos"][1].update(probe_timeout_seconds=0)),
                       DEFAULT_ESTATE)
    assert off.cluster("main").pgbackrest.repo(2).probe_timeout_seconds == 0


def test_unknown_drill_in_allow_list():
    msg = _error(_mutated(lambda r: r["clusters"][0]["allowed_drills"].append("dr_yolo")))
    assert "unknown drill(s) ['dr_yolo']" in msg


def test_two_primaries_are_refused():
    msg = _error(_mutated(lambda r: r["clusters"][0]["nodes"][1].update(role="primary")))
    assert "exactly one node with role 'primary'" in msg


def test_unqualified_critical_table():
    msg = _error(_mutated(lambda r: r["clusters"][0]["restore_test"].update(critical_tables=["orders"])))
    assert "schema-qualified" in msg


def test_journal_location_must_be_a_url():
    msg = _error(_mutated(lambda r: r["journal"].update(location="/var/lib/journal")))
    assert "journal.location" in msg and "s3://" in msg


def test_unset_environment_variable():
    msg = _error(GOOD.replace("port: 55432", "port: ${PRIMARY_PORT_NOT_SET}"))
    assert "${PRIMARY_PORT_NOT_SET} is used but not set" in msg


def test_ssh_runner_needs_a_connection():
    msg = _error(_mutated(lambda r: r["clusters"][0].update(runner={"kind": "ssh"})))
    assert "ssh_conn_id" in msg


def test_a_local_runner_is_refused_for_a_node_on_another_host():
    msg = _error(_mutated(lambda r: r["clusters"][0]["nodes"][1].update(host="10.0.2.10")))
    assert "clusters[main]" in msg and "runner: kind 'local' runs commands on this Airflow worker" in msg
    assert "node pg2's host '10.0.2.10' is not this machine" in msg and "Use kind 'ssh'" in msg
    # A node's own runner is named when it is the local one.
    msg = _error(_mutated(lambda r: r["clusters"][0]["nodes"][0].update(
        host="db-a.invalid", runner={"kind": "local", "run_as": "postgres"})))
    assert "nodes[pg1].runner: kind 'local'" in msg and "'db-a.invalid' is not this machine" in msg


def test_this_machine_is_loopback_its_hostname_or_an_address_it_has():
    import socket

    from drdrill.core.hosts import is_this_machine

    assert is_this_machine("127.0.0.1") and is_this_machine("localhost") and is_this_machine("::1")
    assert is_this_machine(socket.gethostname())
    assert not is_this_machine("192.0.2.77") and not is_this_machine("db-a.invalid")


def test_node_runners_override_the_cluster_and_pgbackrest_has_the_backup_host():
    def edit(r):
        c = r["clusters"][0]
        c["runner"] = {"kind": "ssh", "ssh_conn_id": "ssh_db"}
        c["nodes"][0].update(host="10.0.1.10", runner={"kind": "ssh", "ssh_conn_id": "ssh_pg1"})
        c["nodes"][1].update(host="10.0.2.10")
    c = parse_estate(_mutated(edit), Path("estate.yaml")).cluster("main")
    assert c.runner_of("pg1").ssh_conn_id == "ssh_pg1" and c.runner_of("pg2").ssh_conn_id == "ssh_db"
    assert c.backup_runner.ssh_conn_id == "ssh_pg1"  # no pgbackrest.runner: the current primary's host
    assert c.with_primary("pg2").backup_runner.ssh_conn_id == "ssh_db"

    def backup_host(r):
        edit(r)
        r["clusters"][0]["pgbackrest"]["runner"] = {"kind": "ssh", "ssh_conn_id": "ssh_backup", "run_as": "postgres"}
    c = parse_estate(_mutated(backup_host), Path("estate.yaml")).cluster("main")
    assert c.backup_runner.ssh_conn_id == "ssh_backup" and c.backup_runner.run_as == "postgres"


def test_a_scratch_host_elsewhere_needs_the_backup_host_runner():
    msg = _error(_mutated(lambda r: r["scratch"].update(host="10.0.3.10")))
    assert "scratch.host '10.0.3.10' is not this machine" in msg and "pgbackrest.runner" in msg

    def remote(r):
        r["scratch"]["host"] = "10.0.3.10"
        r["clusters"][0]["pgbackrest"]["runner"] = {"kind": "ssh", "ssh_conn_id": "ssh_backup"}
    assert parse_estate(_mutated(remote), Path("estate.yaml")).scratch.host == "10.0.3.10"


def test_unknown_cluster_lists_the_known_ones():
    with pytest.raises(EstateError, match="unknown cluster 'billing'.*defines main"):
        load_estate(DEFAULT_ESTATE).cluster("billing")


def test_missing_file(tmp_path):
    with pytest.raises(EstateError, match="does not exist; set DRDRILL_ESTATE"):
        load_estate(tmp_path / "nope.yaml")


def test_estate_selected_by_environment(monkeypatch, tmp_path):
    f = tmp_path / "prod.yaml"
    f.write_text(GOOD.replace("name: sandbox", "name: production-eu"))
    monkeypatch.setenv("DRDRILL_ESTATE", str(f))
    assert load_estate().name == "production-eu"


def test_the_documented_production_example_is_a_valid_estate():
    readme = (DEFAULT_ESTATE.parent / "README.md").read_text()
    block = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    e = parse_estate(block, Path("include/estate/README.md"))
    c = e.cluster("main")
    assert e.journal.location.startswith("s3://")
    assert c.pgbackrest.repo(2).max_backup_age_hours == {"full": 192}
    assert c.restore_test.row_count_tolerance == {"public.events": 100}
    assert c.dr.region == "eu-central-1" and c.dr_repo == 2 and c.primary_region == "eu-west-1"
