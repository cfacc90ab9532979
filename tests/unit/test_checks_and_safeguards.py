"""Threshold logic, scratch safeguards and secret redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from drdrill.core import scratch
from drdrill.core.checks import CheckResult, Status, at_most, summarize
from drdrill.core.errors import PreflightError
from drdrill.core.estate import load_estate
from drdrill.core.paths import DEFAULT_ESTATE
from drdrill.core.runner import LocalRunner, redact


def test_at_most_passes_fails_and_skips():
    assert at_most("lag", 10, 300, unit="s").status is Status.PASS
    assert at_most("lag", 300, 300, unit="s").status is Status.PASS
    r = at_most("lag", 301.5, 300, unit="s", target="main/pg1", fix="Check archiving.")
    assert r.status is Status.FAIL
    assert r.message == "lag 301.5s exceeds the target of 300s. Check archiving."
    assert at_most("lag", 1, None).status is Status.SKIP


def test_nothing_measured_is_a_failure_not_a_pass():
    r = at_most("backup_age", None, 24, unit="h")
    assert r.failed and "nothing measured" in r.message


def test_summary_lists_failures_first():
    rs = [CheckResult("a", Status.PASS, "fine"), CheckResult("b", Status.FAIL, "broken", "main")]
    s = summarize(rs)
    assert s.splitlines()[0] == "1 of 2 checks failed"
    assert s.splitlines()[1] == "FAIL b [main]: broken"


def test_result_round_trips_through_xcom_dicts():
    r = CheckResult("x", Status.FAIL, "m", "t", 1, 2, {"k": "v"})
    assert CheckResult.from_dict(r.to_dict()) == r


@pytest.fixture
def estate():
    return load_estate(DEFAULT_ESTATE)


def test_scratch_inside_a_data_directory_is_refused(estate):
    data = estate.cluster("main").primary.data_dir
    for target in (data, data / "sub", data.parent):
        with pytest.raises(PreflightError, match="overlaps the data directory"):
            scratch.refuse_production(estate, target, None)


def test_scratch_on_a_server_port_is_refused(estate):
    with pytest.raises(PreflightError, match="scratch port 55433 is the port of a server"):
        scratch.refuse_production(estate, estate.scratch.root / "x", 55433)


def test_allocation_picks_a_free_port_in_range_and_a_tagged_dir(estate):
    s = scratch.allocate(estate, "manual__2026-01-01T00:00:00+00:00")
    lo, hi = estate.scratch.port_range
    assert lo <= s.port <= hi
    assert Path(s.dir).parent == estate.scratch.root
    assert Path(s.dir).name == "manual__2026-01-01T00_00_00_00_00"


def test_untagged_directory_is_never_removed(tmp_path):
    (tmp_path / "precious").mkdir()
    with pytest.raises(PreflightError, match="has no drdrill-scratch.json"):
        scratch.remove(tmp_path / "precious", LocalRunner(None), Path("/usr/lib/postgresql/15/bin"))
    assert (tmp_path / "precious").exists()


def test_leftovers_skip_the_current_run(tmp_path):
    for rid in ("run_a", "run_b"):
        s = scratch.Scratch(rid, str(tmp_path / rid), 1, "127.0.0.1")
        scratch.create(s, LocalRunner(None), None)
    (tmp_path / "not-ours").mkdir()
    assert scratch.leftovers(tmp_path, keep_run_id="run_b") == [tmp_path / "run_a"]


def test_secrets_are_redacted_from_logged_commands():
    line = redact(["pgbackrest", "--repo2-cipher-pass=hunter2", "--repo2-s3-key-secret=abc", "--stanza=main"])
    assert "hunter2" not in line and "abc" not in line
    assert "--stanza=main" in line and "--repo2-cipher-pass=***" in line


def test_scratch_of_a_run_still_active_is_not_a_leftover(tmp_path):
    for rid in ("dead_run", "live_run"):
        scratch.create(scratch.Scratch(rid, str(tmp_path / rid), 1, "127.0.0.1", "dr_x"), LocalRunner(None), None)
    active = {"live_run"}
    found = scratch.leftovers(tmp_path, keep_run_id="me", is_active=lambda tag: tag["run_id"] in active)
    assert found == [tmp_path / "dead_run"]
    assert scratch.read_tag(tmp_path / "live_run")["dag_id"] == "dr_x"


def test_the_kubernetes_runner_is_refused_naming_the_ssh_runner():
    from drdrill.core.errors import EstateError
    from drdrill.core.estate import RunnerSpec
    from drdrill.core.runner import SSHRunner, runner_for

    r = runner_for(RunnerSpec(kind="kubernetes", namespace="db", pod="pg-0"))
    with pytest.raises(EstateError, match="runner kind 'kubernetes' \\(pod db/pg-0\\) is not available in this "
                                          "version; use kind 'ssh'"):
        r.run(["pgbackrest", "info"])
    ssh = runner_for(RunnerSpec(kind="ssh", ssh_conn_id="db_host", run_as="postgres"))
    assert isinstance(ssh, SSHRunner) and ssh.ssh_conn_id == "db_host" and ssh.run_as == "postgres"


def test_streamed_command_logs_each_line_and_returns_the_output(caplog):
    import logging

    caplog.set_level(logging.INFO, logger="drdrill.core.runner")
    res = LocalRunner(None).run(["sh", "-c", "echo one; echo two >&2; echo three"], stream=True)
    assert res.stdout == "one\nthree\n" and res.stderr == "two\n"
    logged = [r.getMessage() for r in caplog.records]
    assert "  one" in logged and "  two" in logged and "  three" in logged


def test_failed_command_says_exit_code_and_tail():
    from drdrill.core.errors import CommandError

    with pytest.raises(CommandError, match="exit code 3 from: sh -c .*\nboom"):
        LocalRunner(None).run(["sh", "-c", "echo boom >&2; exit 3"])


def test_timeout_kills_the_process_group():
    from drdrill.core.errors import CommandError

    with pytest.raises(CommandError, match="timed out after 1s"):
        LocalRunner(None).run(["sh", "-c", "sleep 30 & sleep 30"], timeout=1)


def test_scratch_configuration_is_its_own_whatever_the_restored_files_say(tmp_path):
    """The restored copy's own files (a Debian primary has none; a copy of another names the production
    port and archive_command) are set aside; only pgBackRest's recovery settings are kept."""
    from drdrill.drills.restore import configure_scratch

    s = scratch.Scratch("r", str(tmp_path / "it's a dir"), 55501, "127.0.0.1")
    s.data_dir.mkdir(parents=True)
    (s.data_dir / "postgresql.conf").write_text("port = 5432\narchive_mode = on\ninclude '/etc/nowhere.conf'\n")
    (s.data_dir / "postgresql.auto.conf").write_text(
        "archive_command = 'cp %p /prod'\nport = '5432'\nprimary_conninfo = 'host=prod'\n"
        "# Recovery settings generated by pgBackRest restore\n"
        "restore_command = 'pgbackrest archive-get %f \"%p\"'\nrecovery_target_time = '2026-12-01 10:00:00+00'\n")
    out = configure_scratch(LocalRunner(None), s, role="drdrill")
    assert out["restored_config_set_aside"] == ["postgresql.conf"]
    conf = (s.data_dir / "postgresql.conf").read_text()
    assert "port = '55501'\n" in conf and "archive_mode = 'off'\n" in conf and "archive_command = ''\n" in conf
    assert f"unix_socket_directories = '{tmp_path}/it''s a dir/run'\n" in conf
    assert "include" not in conf and "5432" not in conf
    auto = (s.data_dir / "postgresql.auto.conf").read_text()
    assert "restore_command = 'pgbackrest archive-get %f \"%p\"'" in auto and "recovery_target_time" in auto
    assert "archive_command" not in auto and "port" not in auto and "primary_conninfo" not in auto
    assert (s.data_dir / "postgresql.conf.restored").read_text().startswith("port = 5432")
    hba = (s.data_dir / "pg_hba.conf").read_text()
    assert 'host all "drdrill" all scram-sha-256' in hba and "trust" not in hba


def test_no_free_scratch_port_is_a_clear_preflight_error(estate):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        narrow = estate.model_copy(update={"scratch": estate.scratch.model_copy(update={"port_range": (port, port)})})
        with pytest.raises(PreflightError, match=f"no free port in scratch.port_range {port}-{port}"):
            scratch.allocate(narrow, "r")
        with pytest.raises(PreflightError, match=f"scratch port {port} is already in use"):
            scratch.allocate(estate, "r", port=port)


class _AirflowAPI:
    """The one call `active_in_airflow` makes of a task instance, answering as Airflow would (or failing)."""

    def __init__(self, active: set[str], fail: bool = False) -> None:
        self.active, self.fail, self.asked = active, fail, []

    def get_dr_count(self, *, dag_id: str, run_ids: list[str], states: list[str]) -> int:
        self.asked.append((dag_id, run_ids, states))
        if self.fail:
            raise ConnectionError("execution API unreachable")
        return sum(r in self.active for r in run_ids)


def test_asking_airflow_which_scratch_is_a_leftover(tmp_path):
    for rid in ("dead_run", "live_run"):
        scratch.create(scratch.Scratch(rid, str(tmp_path / rid), 1, "127.0.0.1", "dr_x"), LocalRunner(None), None)
    api = _AirflowAPI({"live_run"})
    found = scratch.leftovers(tmp_path, keep_run_id="me", is_active=scratch.active_in_airflow(api, "dr_default"))
    assert found == [tmp_path / "dead_run"]
    assert ("dr_x", ["live_run"], ["queued", "running"]) in api.asked


def test_an_error_asking_airflow_keeps_the_scratch_and_says_so(tmp_path, caplog):
    scratch.create(scratch.Scratch("some_run", str(tmp_path / "some_run"), 1, "127.0.0.1", "dr_x"),
                   LocalRunner(None), None)
    is_active = scratch.active_in_airflow(_AirflowAPI(set(), fail=True), "dr_x")
    assert scratch.leftovers(tmp_path, keep_run_id="me", is_active=is_active) == []
    assert "could not ask Airflow whether run some_run" in caplog.text and "keeping its scratch" in caplog.text


def test_a_scratch_past_its_lease_is_a_leftover_whatever_airflow_says(tmp_path, caplog):
    import time

    scratch.create(scratch.Scratch("killed_run", str(tmp_path / "killed_run"), 1, "127.0.0.1", "dr_x"),
                   LocalRunner(None), None, lease=0.2)
    scratch.create(scratch.Scratch("live_run", str(tmp_path / "live_run"), 1, "127.0.0.1", "dr_x"),
                   LocalRunner(None), None, lease=0.2)
    time.sleep(0.3)
    assert scratch.renew(tmp_path / "live_run")  # a step of the live run renews its lease
    # Airflow reads both runs as running (a killed `dags test` process stays "running" for ever).
    found = scratch.leftovers(tmp_path, keep_run_id="me", is_active=lambda tag: True)
    assert found == [tmp_path / "killed_run"]
    assert "its lease ran out" in caplog.text


def test_what_libpq_reports_as_text_is_classified_as_a_refusal_or_an_outage():
    import psycopg

    from drdrill.triggers.postgres import refusal

    def err(text):
        return psycopg.OperationalError(text)

    # A password the server rejects (the sandbox trusts every local login, so the text is libpq's own).
    assert refusal(err('connection failed: FATAL:  password authentication failed for user "drdrill"')) == \
        "password authentication failed"
    assert refusal(err('FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "drdrill", database "app"'))
    assert refusal(err("FATAL:  sorry, too many clients already")) == "too many connections"
    # Down: nothing answered, or the server is starting or stopping.
    assert refusal(err('connection to server at "10.0.0.5", port 5432 failed: Connection refused')) is None
    assert refusal(err("connection timeout expired")) is None
    assert refusal(err("FATAL:  the database system is shutting down")) is None
    assert refusal(err("FATAL:  the database system is starting up")) is None


def test_a_scratch_port_on_another_host_is_free_when_that_host_refuses_it(monkeypatch):
    """The backup host's ports cannot be bound from the worker: asked by connecting (refused = free)."""
    import socket

    from drdrill.core import hosts

    monkeypatch.setattr(hosts, "is_this_machine", lambda host: False)
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        busy = srv.getsockname()[1]
        assert scratch.port_free("127.0.0.1", busy) is False  # something answers there
    assert scratch.port_free("127.0.0.1", busy) is True  # refused now
