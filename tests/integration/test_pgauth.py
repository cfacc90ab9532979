"""Credentials only from Airflow connections, real password authentication and TLS, least privilege.

Against the real sandbox: scram-sha-256 on every TCP connection, pg2 over TLS checked with
``sslmode=verify-full`` against the sandbox's CA, the drills logged in as the ``drdrill`` role with the
grants of `drdrill.core.privileges`, nothing more.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from drdrill.core import privileges
from drdrill.core.errors import DrillError
from drdrill.core.pgerrors import REFUSED_US
from drdrill.hooks import postgres as pg

pytestmark = pytest.mark.sandbox


def _conn_env(conn_id: str) -> dict:
    return json.loads(os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"])


def test_the_drills_role_is_no_superuser_and_has_every_grant_it_needs(estate):
    c = estate.cluster("main")
    for node in c.nodes:
        with pg.connect(c, node.host, node.port, "postgres") as conn:
            user, superuser, replication = pg.query_one(
                conn, "SELECT current_user, rolsuper, rolreplication FROM pg_roles WHERE rolname = current_user")
            assert (user, superuser, replication) == ("drdrill", False, True)
            assert privileges.missing_privileges(conn, schema=False) == []
    with pg.connect(c, c.primary.host, c.primary.port) as conn:
        assert privileges.missing_privileges(conn) == []
        # What estate check will call for another role: a role that does not exist lacks everything.
        [(what, fix)] = privileges.missing_privileges(conn, role="drdrill_nobody")
        assert what == "role drdrill_nobody does not exist" and 'CREATE ROLE "drdrill_nobody" LOGIN' in fix


def test_pg2_speaks_tls_verified_against_the_sandbox_ca_and_pg1_does_not(estate):
    c = estate.cluster("main")
    pg1, pg2 = c.node("pg1"), c.node("pg2")
    assert pg.conn_id_for(c, pg2.host, pg2.port) == "pg_sandbox_pg2"  # the node's own connection wins
    assert pg.conn_id_for(c, pg1.host, pg1.port) == "pg_sandbox"
    assert _conn_env("pg_sandbox_pg2")["extra"]["sslmode"] == "verify-full"
    for node, tls in ((pg1, False), (pg2, True)):
        with pg.connect(c, node.host, node.port, "postgres") as conn:
            assert pg.query_one(conn, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")[0] is tls
    # Great Expectations' URL carries the same TLS options.
    url = pg.sqlalchemy_url(c, pg2.host, pg2.port)
    assert "sslmode=verify-full" in url and "sslrootcert=" in url


def test_a_certificate_that_does_not_verify_is_a_refusal_naming_tls(estate, monkeypatch, tmp_path):
    c = estate.cluster("main")
    pg2 = c.node("pg2")
    other = tmp_path / "other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other",
                    "-keyout", str(tmp_path / "other.key"), "-out", str(other)], check=True, capture_output=True)
    conn = _conn_env("pg_sandbox_pg2")
    conn["extra"]["sslrootcert"] = str(other)
    monkeypatch.setenv("AIRFLOW_CONN_PG_OTHER_CA", json.dumps(conn))
    ok, why = pg.PostgresNodeHook(host=pg2.host, port=pg2.port, postgres_conn_id="pg_other_ca").is_ready()
    assert not ok and why.startswith(REFUSED_US + "TLS refused"), why


def test_a_wrong_password_is_refused_clearly_and_never_shown(estate, monkeypatch):
    c = estate.cluster("main")
    conn = {**_conn_env(c.postgres.conn_id), "password": "wrong-password-0123"}
    monkeypatch.setenv("AIRFLOW_CONN_PG_WRONG", json.dumps(conn))
    wrong = c.model_copy(update={"postgres": c.postgres.model_copy(update={"conn_id": "pg_wrong"})})
    ok, why = pg.is_ready(wrong, c.primary.host, c.primary.port)
    assert not ok and why.startswith(REFUSED_US + "password authentication failed"), why
    assert 'password authentication failed for user "drdrill"' in why and "wrong-password-0123" not in why


@pytest.fixture
def revoked(sandbox, estate):
    """Revoke one grant as the superuser (local socket), and always give it back."""
    done = []

    def revoke(sql_revoke: str, sql_grant: str, db: str) -> None:
        sandbox.postgres.psql(estate.cluster("main").primary, sql_revoke, db)
        done.append((sql_grant, db))

    yield revoke
    for sql_grant, db in done:
        sandbox.postgres.psql(estate.cluster("main").primary, sql_grant, db)


def test_a_step_without_its_grant_fails_naming_the_privilege_and_the_grant(estate, revoked):
    from drdrill.drills import restore

    c = estate.cluster("main")
    revoked("REVOKE EXECUTE ON FUNCTION pg_catalog.pg_switch_wal() FROM drdrill",
            "GRANT EXECUTE ON FUNCTION pg_catalog.pg_switch_wal() TO drdrill", c.postgres.database)
    with pg.connect(c, c.primary.host, c.primary.port) as conn:
        [(what, fix)] = privileges.missing_privileges(conn)
    assert what.startswith("EXECUTE on function pg_switch_wal()")
    assert fix == 'GRANT EXECUTE ON FUNCTION pg_catalog.pg_switch_wal() TO "drdrill"'
    # The restore ledger switches WAL so the PITR target is archived: it fails naming the grant.
    plan = restore.Plan(c.name, 1, "latest", None, False, None, None)
    with pytest.raises(DrillError) as e:
        restore.ledger(plan, "test-revoked-pg-switch-wal", estate)
    msg = str(e.value)
    assert "lacks EXECUTE on function pg_switch_wal()" in msg and fix in msg, msg


def test_a_checkpoint_without_pg_checkpoint_fails_naming_it(estate, revoked):
    from drdrill.drills.failover.node_ops import NodeOps

    c = estate.cluster("main")
    revoked("REVOKE pg_checkpoint FROM drdrill", "GRANT pg_checkpoint TO drdrill", "postgres")
    with pytest.raises(DrillError) as e:
        NodeOps(c).checkpoint_timeline(c.primary)  # what Stabilize does before pg_rewind
    assert "lacks membership of pg_checkpoint" in str(e.value) and 'GRANT pg_checkpoint TO "drdrill"' in str(e.value)


def test_pg_rewind_gets_the_password_from_a_passfile_never_from_argv(estate, sandbox):
    """What NodeOps._rewind hands the runner: the conninfo without the password, a PGPASSFILE that works for
    a real libpq tool (psql as the postgres OS user, like pg_rewind), and that is gone afterwards."""
    from drdrill.core.runner import runner_for

    c = estate.cluster("main")
    runner = runner_for(c.runner)
    h = pg.hook(c, c.node("pg2").host, c.node("pg2").port, "postgres")
    password = sandbox.postgres.drill_password()
    info = h.conninfo("postgres")
    assert password not in info and "password" not in info
    assert "user=drdrill" in info and "sslmode=verify-full" in info
    with h.passfile_env(runner) as env:
        path = env["PGPASSFILE"]
        res = runner.run([str(c.postgres.bin_dir / "psql"), "-X", "-At", "-d", info, "-c",
                          "SELECT current_user || ' ' || ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"],
                         timeout=30, env=env)
        assert res.stdout.strip() == "drdrill true"
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert not os.path.exists(path)


def test_the_estate_check_fails_a_missing_grant_naming_it_and_the_grant(estate, revoked):
    """What `python -m drdrill estate check` reports when the role lacks one privilege (here on every node:
    role memberships replicate to the standby), through `privileges.missing_privileges`."""
    from drdrill.drills.estatecheck import check_estate

    revoked("REVOKE pg_read_all_data FROM drdrill", "GRANT pg_read_all_data TO drdrill", "postgres")
    bad = {f"{r.name} [{r.target}]": r for r in check_estate(estate.source) if r.failed}
    assert set(bad) == {"privileges [main/pg1]", "privileges [main/pg2]"}, {k: v.message for k, v in bad.items()}
    msg = bad["privileges [main/pg1]"].message
    assert "'drdrill' lacks: membership of pg_read_all_data" in msg and 'GRANT pg_read_all_data TO "drdrill"' in msg


def test_the_estate_check_looks_at_the_function_grants_of_the_postgres_database_too(estate, revoked):
    """Function grants are per database: promote and pg_rewind run in `postgres`, the ledger in `app`."""
    from drdrill.drills.estatecheck import check_estate

    revoked('REVOKE EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) FROM "drdrill"',
            'GRANT EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) TO "drdrill"', "postgres")
    bad = {f"{r.name} [{r.target}]": r for r in check_estate(estate.source) if r.failed}
    assert set(bad) == {"privileges [main/pg1]", "privileges [main/pg2]"}, {k: v.message for k, v in bad.items()}
    msg = bad["privileges [main/pg1]"].message
    assert "pg_promote" in msg and "in database postgres" in msg, msg
    assert 'GRANT EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) TO "drdrill"' in msg, msg
