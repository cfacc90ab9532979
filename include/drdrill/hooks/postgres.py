"""Connections to the PostgreSQL servers of a cluster, and the SQL the drills ask them.

Credentials come from the cluster's Airflow connection (``postgres.conn_id``) when set; the
host and port always come from the estate, so one connection serves every node.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.extensions

from drdrill.core.errors import DrillError
from drdrill.core.estate import Cluster


def _password(cluster: Cluster) -> str | None:
    if not cluster.postgres.conn_id:
        return None
    from airflow.sdk import BaseHook  # only when a connection is configured

    return BaseHook.get_connection(cluster.postgres.conn_id).password


def dsn(cluster: Cluster, host: str, port: int, dbname: str | None = None) -> dict[str, Any]:
    """Keyword arguments for psycopg2.connect (password included when configured)."""
    kw: dict[str, Any] = {"host": host, "port": port, "user": cluster.postgres.user,
                          "dbname": dbname or cluster.postgres.database, "connect_timeout": 3,
                          "application_name": "drdrill"}
    pw = _password(cluster)
    if pw:
        kw["password"] = pw
    return kw


def sqlalchemy_url(cluster: Cluster, host: str, port: int, dbname: str | None = None) -> str:
    """The same target as a SQLAlchemy URL (for Great Expectations)."""
    from sqlalchemy.engine import URL

    return URL.create("postgresql+psycopg2", username=cluster.postgres.user, password=_password(cluster),
                      host=host, port=port, database=dbname or cluster.postgres.database).render_as_string(
                          hide_password=False)


@contextmanager
def connect(cluster: Cluster, host: str, port: int, dbname: str | None = None,
            autocommit: bool = True) -> Iterator[psycopg2.extensions.connection]:
    conn = psycopg2.connect(**dsn(cluster, host, port, dbname))
    conn.autocommit = autocommit
    try:
        yield conn
    finally:
        conn.close()


def query(conn: psycopg2.extensions.connection, sql: str, params: Any = None) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


def query_one(conn: psycopg2.extensions.connection, sql: str, params: Any = None) -> tuple:
    rows = query(conn, sql, params)
    if not rows:
        raise DrillError(f"query returned no row: {sql}")
    return rows[0]


def is_ready(cluster: Cluster, host: str, port: int, dbname: str | None = None) -> tuple[bool, str]:
    """`pg_isready`-equivalent: (accepts connections, why not)."""
    try:
        with connect(cluster, host, port, dbname) as c:
            query(c, "SELECT 1")
        return True, "accepting connections"
    except psycopg2.Error as e:
        return False, str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


# The one definition of "user table", used by the ledger on the primary and by the data-quality
# check on the restored copy, so both sides list the same set: ordinary and partitioned tables and
# each partition (a lost partition shows up by name), no temporary tables, not drdrill's own schema.
USER_TABLES_SQL = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'drdrill')
  AND n.nspname NOT LIKE 'pg_toast%%' AND n.nspname NOT LIKE 'pg_temp%%'
  AND NOT (n.nspname = ANY(%s))
ORDER BY 1, 2
"""


def user_table_pairs(conn: Any, exclude_schemas: list[str] | tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """Every user table as (schema, table); ``conn`` is any DB-API connection to PostgreSQL."""
    with conn.cursor() as cur:
        cur.execute(USER_TABLES_SQL, (list(exclude_schemas),))
        return [(r[0], r[1]) for r in cur.fetchall()]


def user_tables(conn: psycopg2.extensions.connection, exclude_schemas: list[str] | None = None) -> list[str]:
    """Every user table as schema.table."""
    return [f"{s}.{t}" for s, t in user_table_pairs(conn, exclude_schemas or ())]


def count_rows(conn: psycopg2.extensions.connection, tables: list[str]) -> dict[str, int]:
    """Exact ``count(*)`` per table (statistics lie on a freshly restored cluster)."""
    from psycopg2 import sql

    out: dict[str, int] = {}
    for t in tables:
        schema, name = t.split(".", 1)
        out[t] = query_one(conn, sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(name)).as_string(conn))[0]
    return out


def wait_until(predicate, *, timeout: float, interval: float = 0.2, what: str) -> Any:
    """Poll ``predicate`` until it returns a truthy value; raise DrillError naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise DrillError(f"timed out after {timeout:.0f}s waiting for {what}")
