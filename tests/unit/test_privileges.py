"""The drills' role in one place, and how a connection becomes libpq options (no server needed)."""

from __future__ import annotations

import json

import pytest

from drdrill.core import privileges
from drdrill.core.pgerrors import refusal


def test_setup_sql_grants_every_privilege_once_and_the_schema_only_where_asked():
    everywhere = privileges.setup_sql("drdrill", schema=False)
    app = privileges.setup_sql("drdrill")
    assert everywhere[0].startswith("DO $$") and 'CREATE ROLE "drdrill" LOGIN' in everywhere[0]
    assert 'GRANT EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) TO "drdrill"' in everywhere
    assert 'GRANT pg_read_all_data TO "drdrill"' in everywhere and 'ALTER ROLE "drdrill" REPLICATION' in everywhere
    assert not any("SCHEMA" in s for s in everywhere)
    assert [s for s in app if s not in everywhere] == [
        'CREATE SCHEMA IF NOT EXISTS drdrill AUTHORIZATION "drdrill"; ALTER SCHEMA drdrill OWNER TO "drdrill"']
    assert not any("SUPERUSER" in s.upper() for s in app)
    assert "O''Brien" in privileges.password_sql("x", "O'Brien")


@pytest.mark.parametrize(("said", "what", "fix"), [
    ("permission denied for function pg_switch_wal", "EXECUTE on function pg_switch_wal()",
     'GRANT EXECUTE ON FUNCTION pg_catalog.pg_switch_wal() TO "ops"'),
    ("permission denied for function pg_read_binary_file", "EXECUTE on function pg_read_binary_file(text)",
     "pg_read_binary_file(text) TO"),
    ("must be superuser or have privileges of pg_checkpoint role to CHECKPOINT", "membership of pg_checkpoint",
     'GRANT pg_checkpoint TO "ops"'),
    ("permission denied to use replication slots", "REPLICATION", 'ALTER ROLE "ops" REPLICATION'),
    ("permission denied for table orders", "membership of pg_read_all_data", 'GRANT pg_read_all_data TO "ops"'),
    ("permission denied for database app", "ownership of schema drdrill", "AUTHORIZATION \"ops\""),
])
def test_a_permission_error_names_the_privilege_and_the_grant(said, what, fix):
    msg = privileges.explain_denied(Exception(said), "ops")
    assert f"role ops lacks {what}" in msg and fix in msg and said in msg


def test_an_unknown_permission_error_still_says_where_the_grants_are():
    msg = privileges.explain_denied(Exception("permission denied for large object 5"), "ops")
    assert "large object 5" in msg and "drdrill.core.privileges" in msg


@pytest.mark.parametrize(("text", "why"), [
    ('connection failed: fe_sendauth: no password supplied', "the server asks for a password"),
    ("SSL error: certificate verify failed", "TLS refused"),
    ('server certificate for "localhost" does not match host name "127.0.0.1"', "TLS refused"),
])
def test_libpq_refusals_without_sqlstate_are_refusals(text, why):
    assert refusal(Exception(text)).startswith(why)


def test_the_hook_takes_login_password_and_tls_from_the_connection_never_into_conninfo(monkeypatch, tmp_path):
    from drdrill.hooks.postgres import PostgresNodeHook

    monkeypatch.setenv("AIRFLOW_CONN_PG_UNIT", json.dumps({
        "conn_type": "postgres", "login": "drdrill", "password": "p:a\\ss w",
        "extra": {"sslmode": "verify-full", "sslrootcert": "/etc/ca.pem"}}))
    h = PostgresNodeHook(host="10.0.0.5", port=5433, database="app", user="ignored", postgres_conn_id="pg_unit")
    kw = h.connect_kwargs()
    assert (kw["host"], kw["port"], kw["user"], kw["password"], kw["dbname"]) == (
        "10.0.0.5", 5433, "drdrill", "p:a\\ss w", "app")
    assert kw["sslmode"] == "verify-full" and kw["sslrootcert"] == "/etc/ca.pem"
    info = h.conninfo("postgres")
    assert "password" not in info and "p:a" not in info
    assert "sslmode=verify-full" in info and "user=drdrill" in info and "dbname=postgres" in info
    assert h.passfile_text() == "10.0.0.5:5433:*:drdrill:p\\:a\\\\ss w\n"
    url = h.sqlalchemy_url_string()
    assert "sslmode=verify-full" in url and "sslrootcert=%2Fetc%2Fca.pem" in url


def test_a_node_connection_wins_over_the_cluster_connection():
    from drdrill.core.estate import load_estate
    from drdrill.hooks.postgres import conn_id_for

    c = load_estate(topology=False).cluster("main")
    assert conn_id_for(c, c.node("pg2").host, c.node("pg2").port) == c.node("pg2").conn_id == "pg_sandbox_pg2"
    assert conn_id_for(c, c.node("pg1").host, c.node("pg1").port) == c.postgres.conn_id == "pg_sandbox"
    assert conn_id_for(c, "127.0.0.1", 55500) == "pg_sandbox"  # a scratch server: the cluster's


def test_a_rebuilt_standby_keeps_the_hosts_replication_conninfo_and_only_follows_the_new_primary():
    """user, passfile and TLS options are the database host's; host, port and application_name change."""
    from drdrill.core.estate import load_estate
    from drdrill.drills.failover.node_ops import NodeOps, _quote, _setting

    c = load_estate(topology=False).cluster("main")
    saved = {"postgresql.auto.conf": "# ALTER SYSTEM\nprimary_conninfo = 'application_name=pg1 user=replicator "
                                     "passfile=''/var/lib/my pass'' host=10.0.0.9 port=5432 sslmode=verify-full'\n"}
    info = NodeOps(c)._conninfo(c.node("pg2"), "pg1", saved)
    from psycopg.conninfo import conninfo_to_dict

    d = conninfo_to_dict(info)
    assert d == {"user": "replicator", "passfile": "/var/lib/my pass", "sslmode": "verify-full",
                 "host": c.node("pg2").host, "port": str(c.node("pg2").port), "application_name": "pg1"}
    assert _setting(f"primary_conninfo = {_quote(info)}\n", "primary_conninfo") == info
