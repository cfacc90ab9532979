"""SSHRunner against a real OpenSSH server (Debian openssh-server on loopback, generated keys).

Its own sshd (the sandbox's `SandboxSSHD` in a private directory on another port), so these
tests need neither PostgreSQL nor the rest of the sandbox. Every command the server runs is
recorded by the connection key's forced command: a test that passed through a local process
would find nothing there.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from drdrill.core.errors import CommandError, EstateError, RunnerConnectionError
from drdrill.core.runner import SSHRunner
from drdrill.sandbox.layout import PG_USER, Layout
from drdrill.sandbox.sshd import SandboxSSHD

PORT = 55623  # the sandbox's own sshd has 55622


@pytest.fixture(scope="module")
def sshd():
    # sshd checks that no directory above authorized_keys is group/world writable: not under /tmp.
    root = Path(tempfile.mkdtemp(prefix="drdrill-sshd-test-", dir="/run"))
    root.chmod(0o755)
    d = SandboxSSHD(Layout(root), PORT)
    d.start()
    yield d
    SSHRunner.close_all()
    d.stop()
    assert d.pid() is None
    shutil.rmtree(root)


@pytest.fixture
def conn(sshd, monkeypatch):
    """A fresh connection name per test (own key, own lines in the command log)."""
    def make(name: str, **extra) -> str:
        env = sshd.connection(name)
        if extra:
            (k, v), = env.items()
            c = json.loads(v)
            c["extra"].update(extra)
            env = {k: json.dumps(c)}
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        return sshd.conn_id(name)
    return make


def _procs(needle: str) -> list[int]:
    """PIDs whose command line contains ``needle`` (read from /proc, not by name)."""
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if needle.encode() in (p / "cmdline").read_bytes().replace(b"\0", b" "):
                    out.append(int(p.name))
            except OSError:
                continue
    return out


def test_a_command_runs_on_the_host_as_the_login_and_is_seen_by_sshd(sshd, conn):
    r = SSHRunner(conn("ids"))
    res = r.run(["id", "-un"])
    assert res.stdout.strip() == PG_USER and res.returncode == 0 and r.user == PG_USER
    # sshd ran it: the forced recorder logged the quoted argv under this connection's key.
    assert sshd.recorded_commands("ids")[-1].endswith("timeout -s KILL 600.000 id -un")


def test_arguments_are_quoted_never_interpreted_by_a_shell(sshd, conn):
    r = SSHRunner(conn("quoting"))
    odd = ["a b", "$HOME", "`id`", "x;y", "'q'", '"d"', "*"]
    assert r.run(["printf", "%s\\n", *odd]).stdout.splitlines() == odd


def test_input_goes_to_stdin(sshd, conn, tmp_path):
    r = SSHRunner(conn("stdin"))
    assert r.run(["cat"], input="line one\nline two\n").stdout == "line one\nline two\n"
    target = Path(tempfile.mkdtemp(dir="/run")) / "written.conf"
    shutil.chown(target.parent, PG_USER, PG_USER)
    try:
        r.run(["tee", str(target)], input="port = '55500'\n")
        assert target.read_text() == "port = '55500'\n" and target.owner() == PG_USER
    finally:
        shutil.rmtree(target.parent)


def test_a_failing_command_raises_command_error_with_exit_code_and_tail(sshd, conn):
    r = SSHRunner(conn("fails"))
    with pytest.raises(CommandError) as e:
        r.run(["sh", "-c", "echo partial; echo 'ERROR: stanza missing' >&2; exit 3"])
    assert e.value.returncode == 3 and e.value.timed_out_after is None
    assert "ERROR: stanza missing" in e.value.output and "exit code 3" in str(e.value)
    assert "drdrill-remote-pid" not in e.value.output  # the runner's own marker is not the command's output
    res = r.run(["sh", "-c", "exit 4"], check=False)
    assert res.returncode == 4


def test_timeout_kills_the_remote_command_and_its_children(sshd, conn):
    r = SSHRunner(conn("timeout"))
    t0 = time.monotonic()
    with pytest.raises(CommandError) as e:
        r.run(["sh", "-c", "sleep 291.5 & sleep 292.5"], timeout=1.5)
    assert e.value.timed_out_after == 1.5 and "timed out after" in str(e.value)
    assert time.monotonic() - t0 < 6
    # Killed on the host, the whole process group: neither the child nor the grandchild survives.
    deadline = time.monotonic() + 5
    while (_procs("sleep 291.5") or _procs("sleep 292.5")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _procs("sleep 291.5") == [] and _procs("sleep 292.5") == []


def test_stream_logs_each_line_as_it_arrives(sshd, conn, caplog):
    caplog.set_level(logging.INFO, logger="drdrill.core.runner")
    r = SSHRunner(conn("stream"))
    res = r.run(["sh", "-c", "echo one; sleep 0.3; echo two >&2; echo three"], stream=True)
    assert res.stdout == "one\nthree\n" and res.stderr == "two\n"
    logged = [(rec.getMessage(), rec.created) for rec in caplog.records]
    msgs = [m for m, _ in logged]
    assert "  one" in msgs and "  two" in msgs and "  three" in msgs
    t = dict(logged)
    assert t["  three"] - t["  one"] >= 0.25, "lines were logged at the end, not as they came"


def test_secrets_in_arguments_are_redacted_in_logs_and_errors(sshd, conn, caplog):
    caplog.set_level(logging.INFO, logger="drdrill.core.runner")
    r = SSHRunner(conn("redact"))
    r.run(["true", "--repo2-cipher-pass=hunter2", "--stanza=main"])
    with pytest.raises(CommandError) as e:
        r.run(["false", "--password=hunter3"])
    assert "hunter2" not in caplog.text and "hunter3" not in caplog.text and "hunter3" not in str(e.value)
    assert "--repo2-cipher-pass=***" in caplog.text and "--password=***" in str(e.value)


def test_env_is_passed_and_secret_values_are_refused(sshd, conn):
    r = SSHRunner(conn("env"))
    assert r.run(["sh", "-c", 'echo "$PGPASSFILE"'], env={"PGPASSFILE": "/var/lib/x/.pgpass"}).stdout.strip() \
        == "/var/lib/x/.pgpass"
    before = len(sshd.recorded_commands("env"))
    with pytest.raises(EstateError, match=r"PGPASSWORD.*process list.*PGPASSFILE"):
        r.run(["psql"], env={"PGPASSWORD": "hunter2"})
    assert len(sshd.recorded_commands("env")) == before  # refused before anything was sent


def test_one_ssh_connection_serves_many_commands(sshd, conn):
    logins = sshd.logfile.read_text().count("Accepted publickey")
    name = conn("reuse")
    for _ in range(3):
        SSHRunner(name).run(["true"])  # a new runner per step, as the drills make them
    assert sshd.logfile.read_text().count("Accepted publickey") == logins + 1


def test_run_as_another_user_goes_through_sudo(sshd, conn):
    r = SSHRunner(conn("sudo"), run_as="backup")
    argv = r.remote_argv(["pgbackrest", "info"], timeout=30)
    assert argv[:5] == ["sudo", "-n", "-u", "backup", "--"] and argv[-2:] == ["pgbackrest", "info"]
    assert SSHRunner(conn("sudo"), run_as=PG_USER).remote_argv(["true"], timeout=1)[0] == "sh"
    # postgres has no sudo rule for 'backup' here (or no sudo at all): the refusal names the fix.
    with pytest.raises(RunnerConnectionError, match="postgres could not run commands as 'backup' through sudo.*"
                                                    "NOPASSWD rule for postgres"):
        r.run(["id"])


# ------------------------------------------------------------------ SSH itself fails: no command ran
def test_a_key_the_server_does_not_accept_fails_naming_the_connection(sshd, conn, tmp_path):
    wrong = tmp_path / "wrong_key"
    from drdrill.sandbox.sshd import _keygen

    _keygen(wrong, "not-authorized")
    name = conn("wrongkey", key_file=str(wrong))
    with pytest.raises(RunnerConnectionError) as e:
        SSHRunner(name).run(["id"])
    msg = str(e.value)
    assert f"SSH connection {name!r}" in msg and "authentication as 'postgres' failed" in msg
    assert str(wrong) in msg and "authorized_keys" in msg and "No command ran" in msg
    assert not isinstance(e.value, CommandError) and e.value.conn_id == name
    assert sshd.recorded_commands("wrongkey") == []


def test_a_host_key_other_than_the_pinned_one_is_refused(sshd, conn, tmp_path):
    from drdrill.sandbox.sshd import _keygen

    _keygen(tmp_path / "other_host", "other")
    other = " ".join((tmp_path / "other_host.pub").read_text().split()[:2])
    name = conn("hostkey", host_key=other)
    with pytest.raises(RunnerConnectionError, match=r"host key of 127\.0\.0\.1:55623 .* not the one pinned.*"
                                                    r"ssh-keyscan -p 55623 127\.0\.0\.1"):
        SSHRunner(name).run(["id"])
    assert sshd.recorded_commands("hostkey") == []


def test_an_unknown_host_key_is_refused_without_a_pin(sshd, conn, monkeypatch):
    monkeypatch.setenv("HOME", "/nonexistent")  # no known_hosts to fall back on
    env = sshd.connection("nopin")
    (k, v), = env.items()
    c = json.loads(v)
    c["extra"].pop("host_key")
    monkeypatch.setenv(k, json.dumps(c))
    with pytest.raises(RunnerConnectionError, match="host key of 127.0.0.1:55623 is unknown.*host_key"):
        SSHRunner(sshd.conn_id("nopin")).run(["id"])


def test_an_unreachable_host_fails_naming_the_connection(conn, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DB_GONE", json.dumps(
        {"conn_type": "ssh", "host": "127.0.0.1", "port": 1, "login": PG_USER}))
    t0 = time.monotonic()
    with pytest.raises(RunnerConnectionError, match=r"'db_gone'.*cannot reach 127\.0\.0\.1:1.*sshd runs there"):
        SSHRunner("db_gone").run(["id"])
    assert time.monotonic() - t0 < 5  # refused at once, not retried for long


def test_a_missing_connection_names_itself_and_how_to_create_it():
    with pytest.raises(EstateError, match="ssh_conn_id 'no_such_host' is not an Airflow connection.*"
                                          "airflow connections add no_such_host --conn-type ssh"):
        SSHRunner("no_such_host").run(["id"])


def test_a_scratch_directory_lives_on_the_runners_host(sshd, conn):
    """create / tag / renew / leftovers / remove of `drdrill.core.scratch` through the SSH runner: the
    directories are made by the login over SSH (owned by it), and every step went through sshd."""
    from drdrill.core import scratch

    r = SSHRunner(conn("scratch"))
    root = Path(tempfile.mkdtemp(dir="/run")) / "scratch"
    root.parent.chmod(0o755)
    shutil.chown(root.parent, PG_USER, PG_USER)
    try:
        sc = scratch.Scratch("run_1", str(root / "run_1"), 55590, "127.0.0.1", "dr_monthly_restore_test")
        scratch.create(sc, r, PG_USER, lease=60)
        assert (root / "run_1").owner() == PG_USER and sc.data_dir.stat().st_mode & 0o777 == 0o700
        tag = scratch.read_tag(root / "run_1", r)
        assert tag["run_id"] == "run_1" and tag["lease_seconds"] == 60
        assert scratch.renew(root / "run_1", r) >= tag["lease_until"]
        from drdrill.drills.restore import configure_scratch

        configure_scratch(r, sc, role="drdrill")  # the copy's own configuration, written over SSH
        assert "port = '55590'" in (sc.data_dir / "postgresql.conf").read_text()
        with pytest.raises(scratch.PreflightError, match="already exists"):
            scratch.create(sc, r, PG_USER)
        (root / "not_ours").mkdir()
        assert scratch.leftovers(root, keep_run_id="other", runner=r) == [root / "run_1"]
        assert scratch.leftovers(root, keep_run_id="other", runner=r, dag_ids=("dr_quarterly_failover_drill",)) == []
        scratch.remove(root / "run_1", r, Path("/usr/lib/postgresql/15/bin"))
        assert not (root / "run_1").exists() and (root / "not_ours").exists()
        with pytest.raises(scratch.PreflightError, match="no drdrill-scratch.json"):
            scratch.remove(root / "not_ours", r, Path("/usr/lib/postgresql/15/bin"))
        ran = " ".join(sshd.recorded_commands("scratch"))
        assert "mkdir -m 700 -- " + str(sc.data_dir) in ran and "rm -rf -- " + str(root / "run_1") in ran
    finally:
        shutil.rmtree(root.parent)


def test_a_pgbackrest_connection_with_ssh_conn_id_runs_pgbackrest_on_that_host(sshd, conn, monkeypatch):
    from drdrill.hooks.pgbackrest import PgBackRestHook

    ssh = conn("pgbackrest")
    monkeypatch.setenv("AIRFLOW_CONN_PGBR_REMOTE", json.dumps(
        {"conn_type": "pgbackrest", "host": "db-a.invalid", "login": PG_USER,
         "extra": {"stanza": "main", "ssh_conn_id": ssh}}))
    hook = PgBackRestHook("pgbr_remote")
    assert isinstance(hook.runner, SSHRunner) and hook.runner.ssh_conn_id == ssh
    assert hook.run("version").stdout.startswith("pgBackRest ")
    last = sshd.recorded_commands("pgbackrest")[-1]
    assert last.endswith("pgbackrest --stanza=main --log-level-console=warn version")
    monkeypatch.setenv("AIRFLOW_CONN_PGBR_ELSEWHERE", json.dumps(
        {"conn_type": "pgbackrest", "host": "db-a.invalid", "login": PG_USER, "extra": {"stanza": "main"}}))
    with pytest.raises(EstateError, match="set ssh_conn_id \\(an Airflow SSH connection to db-a.invalid\\)"):
        PgBackRestHook("pgbr_elsewhere")


class _InterruptOn(logging.Handler):
    """Raises KeyboardInterrupt when a given line is logged: the task is interrupted mid-command."""

    def __init__(self, line: str) -> None:
        super().__init__()
        self.line = line

    def handle(self, record: logging.LogRecord) -> bool:
        if record.getMessage() == self.line:
            raise KeyboardInterrupt
        return True


def test_an_interrupted_task_kills_its_remote_command_at_once(sshd, conn):
    r = SSHRunner(conn("interrupt"))
    logger = logging.getLogger("drdrill.core.runner")
    handler, level = _InterruptOn("  started"), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with pytest.raises(KeyboardInterrupt):
            r.run(["sh", "-c", "echo started; sleep 296.5"], stream=True, timeout=300)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    # Not left to its 300 s remote timeout: the runner killed its process group from a new session.
    deadline = time.monotonic() + 5
    while _procs("sleep 296.5") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _procs("sleep 296.5") == []
    assert any(re.fullmatch(r"env kill -s KILL -- -\d+", c) for c in sshd.recorded_commands("interrupt"))


def test_a_handshake_cut_short_is_tried_again_then_fails_naming_the_connection(monkeypatch):
    """A server that accepts and hangs up at once (sshd's MaxStartups throttling looks like this)."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    accepted = []

    def serve() -> None:
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            accepted.append(1)
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    port = srv.getsockname()[1]
    monkeypatch.setenv("AIRFLOW_CONN_DB_THROTTLED", json.dumps(
        {"conn_type": "ssh", "host": "127.0.0.1", "port": port, "login": PG_USER}))
    try:
        with pytest.raises(RunnerConnectionError, match=f"'db_throttled'.*SSH handshake with 127.0.0.1:{port} failed"):
            SSHRunner("db_throttled").run(["id"])
    finally:
        srv.close()
    assert len(accepted) == 3
