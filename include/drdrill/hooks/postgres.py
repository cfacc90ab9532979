"""PostgreSQL servers of a cluster, through the postgres provider's `PostgresHook`.

`PostgresNodeHook` is a `PostgresHook` for one server: credentials (login, password, sslmode,
sslrootcert and every other libpq option in the extra) come from an Airflow Postgres connection;
host, port and database come from the estate, so one connection serves every node of a cluster.
A node may name its own connection (``nodes[].conn_id``, e.g. other TLS settings); it wins over
the cluster's ``postgres.conn_id``. Without any connection the estate's user connects without a
password (trust or peer only: not for production).

Every PostgreSQL session of the drills goes through this hook: tasks (`session`), triggers
(`connect_kwargs`, for psycopg's async connection), Great Expectations (`sqlalchemy_url_string`,
the same libpq options in the URL's query) and command-line tools (`conninfo` without the
password, plus `passfile_text` for a ``PGPASSFILE`` the runner removes afterwards). A permission
error (SQLSTATE 42501) becomes a `DrillError` naming the missing privilege and its GRANT
(`drdrill.core.privileges`).

The functions below are the SQL the drills ask (readiness, user tables, exact row counts);
drill code calls them with a cluster and a node address and never opens a driver connection
itself. The driver is psycopg 3, which the provider picks beside SQLAlchemy 2.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from airflow.providers.postgres.hooks.postgres import PostgresHook

from drdrill.core.errors import DrillError
from drdrill.core.estate import Cluster
from drdrill.core.pgerrors import REFUSED_US, refusal

# libpq options from a connection's extra that also go into the SQLAlchemy URL (Great Expectations)
# and into the conninfo of command-line tools; the password never does.
LIBPQ_OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "sslcrldir", "sslsni",
                 "ssl_min_protocol_version", "ssl_max_protocol_version", "sslcompression", "gssencmode",
                 "krbsrvname", "channel_binding", "target_session_attrs", "require_auth", "keepalives",
                 "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout")

CONNECT_TIMEOUT_SECONDS = 3
# Every session is bounded: a hung statement or a lock held on a table the drill reads fails the
# step naming what hung, instead of holding a worker slot for ever. Counting the biggest table of a
# restored copy is the longest statement the drills run.
STATEMENT_TIMEOUT_SECONDS = 600
LOCK_TIMEOUT_SECONDS = 30


class PostgresNodeHook(PostgresHook):
    """A `PostgresHook` for one server at ``host:port``, credentials from ``postgres_conn_id``.

    :param host: the server's address (overrides the connection's host)
    :param port: the server's port (overrides the connection's port)
    :param database: database to connect to (default: the connection's schema, else ``postgres``)
    :param user: login when the connection names none (default ``postgres``)
    :param postgres_conn_id: Airflow Postgres connection: login, password and libpq options in its extra
        (``sslmode``, ``sslrootcert``...); its host and port are not used (the server's are)
    :param connect_timeout: seconds before a connection attempt gives up
    :param statement_timeout: seconds any statement may run (``statement_timeout``)
    :param lock_timeout: seconds a statement may wait for a lock (``lock_timeout``)

    Usage::

        hook = PostgresNodeHook(host="10.0.0.12", port=5432, database="app", postgres_conn_id="pg_dr")
        with hook.session() as conn:
            ...
    """

    hook_name = "PostgreSQL server (drdrill)"

    def __init__(self, *, host: str, port: int, database: str | None = None, user: str | None = None,
                 postgres_conn_id: str | None = None, connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
                 statement_timeout: float = STATEMENT_TIMEOUT_SECONDS, lock_timeout: float = LOCK_TIMEOUT_SECONDS,
                 **kwargs: Any) -> None:
        from airflow.sdk import Connection

        base = None
        if postgres_conn_id:
            from airflow.sdk import BaseHook

            base = BaseHook.get_connection(postgres_conn_id)
        bounds = f"-c statement_timeout={int(statement_timeout * 1000)} -c lock_timeout={int(lock_timeout * 1000)}"
        base_extra = dict(base.extra_dejson) if base else {}
        libpq = {k: str(v) for k, v in base_extra.items() if k in LIBPQ_OPTIONS and v not in (None, "")}
        extra = {**base_extra, "connect_timeout": int(max(1, connect_timeout)),
                 "application_name": "drdrill",
                 # the same options and bounds for SQLAlchemy users of the URL (Great Expectations)
                 "sqlalchemy_query": {**(base_extra.get("sqlalchemy_query") or {}), **libpq, "options": bounds}}
        conn = Connection(conn_id=postgres_conn_id or "drdrill_node", conn_type="postgres", host=host,
                          port=int(port), login=(base.login if base and base.login else user) or "postgres",
                          password=base.password if base else None,
                          schema=database or (base.schema if base and base.schema else "postgres"),
                          extra=json.dumps(extra))
        super().__init__(postgres_conn_id=conn.conn_id, connection=conn, options=bounds, **kwargs)
        self.host, self.port = host, int(port)
        self.source_conn_id = postgres_conn_id
        self.login: str = conn.login or "postgres"
        self.libpq = libpq

    @classmethod
    def for_node(cls, cluster: Cluster, host: str, port: int, database: str | None = None) -> PostgresNodeHook:
        """The hook for a server of an estate cluster: its user, database and connection (the node's own
        ``conn_id`` when the server at host:port is a node that names one, else the cluster's)."""
        return cls(host=host, port=port, database=database or cluster.postgres.database,
                   user=cluster.postgres.user, postgres_conn_id=conn_id_for(cluster, host, port))

    def connect_kwargs(self) -> dict[str, Any]:
        """psycopg keyword arguments for this server (psycopg's async connection in the triggers).

        Holds the password: pass it to ``connect`` and nowhere else (never log or serialise it).
        """
        c = self.connection
        kw: dict[str, Any] = {"host": c.host, "port": c.port, "user": c.login, "password": c.password,
                              "dbname": self.database or c.schema, "options": self.options}
        kw.update({k: v for k, v in c.extra_dejson.items() if k not in self.ignored_extra_options})
        return {k: v for k, v in kw.items() if v is not None}

    def conninfo(self, dbname: str | None = None, **more: Any) -> str:
        """A libpq conninfo string for command-line tools (``pg_rewind --source-server``): host, port,
        login, database and the connection's TLS options, never the password (see `passfile_text`)."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(host=self.host, port=self.port, user=self.login,
                             dbname=dbname or self.database or "postgres", **self.libpq, **more)

    def passfile_text(self) -> str | None:
        """The password as one ``.pgpass`` line for this server (for ``PGPASSFILE``), or None without one."""
        pw = self.connection.password
        if not pw:
            return None

        def esc(v: object) -> str:
            return str(v).replace("\\", "\\\\").replace(":", "\\:")

        return f"{esc(self.host)}:{self.port}:*:{esc(self.login)}:{esc(pw)}\n"

    @contextmanager
    def passfile_env(self, runner: Any) -> Iterator[dict[str, str]]:
        """``{"PGPASSFILE": path}`` for a libpq command-line tool run through ``runner`` (``pg_rewind``).

        The password goes into a temporary file made by ``mktemp`` where the command runs (mode 0600,
        owned by the runner's OS user), written through stdin (never argv, never a log line), and
        removed afterwards, whatever happens. Without a password: ``{}``.
        """
        text = self.passfile_text()
        if not text:
            yield {}
            return
        path = runner.run(["mktemp", "-t", "drdrill-pgpass.XXXXXXXX"], timeout=30).stdout.strip()
        try:
            runner.run(["dd", f"of={path}", "status=none"], timeout=30, input=text)
            yield {"PGPASSFILE": path}
        finally:
            runner.run(["rm", "-f", path], timeout=30, check=False)

    @contextmanager
    def session(self, *, autocommit: bool = True, isolation: str | None = None,
                read_only: bool = False) -> Iterator[psycopg.Connection]:
        """An open connection, closed on exit. ``isolation``: e.g. ``"REPEATABLE READ"``."""
        conn = self.get_conn()
        try:
            if isolation:
                conn.isolation_level = psycopg.IsolationLevel[isolation.replace(" ", "_").upper()]
            conn.read_only = read_only
            conn.autocommit = autocommit
            yield conn
        except psycopg.errors.InsufficientPrivilege as e:  # SQLSTATE 42501: name the grant that fixes it
            from drdrill.core.privileges import explain_denied

            raise DrillError(f"{self.host}:{self.port}: {explain_denied(e, self.login)}") from e
        finally:
            conn.close()

    def is_ready(self) -> tuple[bool, str]:
        """`pg_isready`-equivalent: (accepts connections, why not)."""
        try:
            with self.session() as c:
                query(c, "SELECT 1")
            return True, "accepting connections"
        except psycopg.Error as e:
            text = str(e).strip()
            first = text.splitlines()[0] if text else type(e).__name__
            why = refusal(e)
            # Up, but not letting us in: never "down" (an incident must not promote beside it).
            return False, f"{REFUSED_US}{why}: {first}" if why else first

    def in_recovery(self) -> bool:
        with self.session() as c:
            return bool(query_one(c, "SELECT pg_is_in_recovery()")[0])

    def promote(self, *, wait_seconds: int = 60) -> dict[str, Any]:
        """``SELECT pg_promote(wait => true)`` on a standby; refuses a server that is already primary."""
        import time

        t0 = time.time()
        with self.session() as c:
            if not query_one(c, "SELECT pg_is_in_recovery()")[0]:
                raise DrillError(f"{self.host}:{self.port} is not in recovery: it is already a primary (split brain "
                                 f"risk); check the topology before going on")
            ok = query_one(c, "SELECT pg_promote(wait => true, wait_seconds => %s::int)", (int(wait_seconds),))[0]
        if not ok:
            raise DrillError(f"pg_promote on {self.host}:{self.port} did not finish within {wait_seconds}s; "
                             f"read the server's log")
        done = time.time()
        self.log.info("%s:%s promoted in %.2fs", self.host, self.port, done - t0)
        return {"host": self.host, "port": self.port, "promoted_at": done, "seconds": round(done - t0, 3)}

    def sqlalchemy_url_string(self) -> str:
        """The SQLAlchemy URL with its password (for Great Expectations; never logged)."""
        return self.sqlalchemy_url.render_as_string(hide_password=False)


# ------------------------------------------------------------------------- estate-level helpers
def conn_id_for(cluster: Cluster, host: str, port: int) -> str | None:
    """The Airflow connection for the server at host:port: its node's ``conn_id``, else the cluster's."""
    for n in cluster.members:
        if n.host == host and int(n.port) == int(port) and n.conn_id:
            return n.conn_id
    return cluster.postgres.conn_id


def hook(cluster: Cluster, host: str, port: int, dbname: str | None = None) -> PostgresNodeHook:
    return PostgresNodeHook.for_node(cluster, host, port, dbname)


@contextmanager
def connect(cluster: Cluster, host: str, port: int, dbname: str | None = None, autocommit: bool = True,
            isolation: str | None = None, read_only: bool = False) -> Iterator[psycopg.Connection]:
    """A connection to one server of ``cluster`` (credentials from its connection), closed on exit."""
    with hook(cluster, host, port, dbname).session(autocommit=autocommit, isolation=isolation,
                                                   read_only=read_only) as conn:
        yield conn


def sqlalchemy_url(cluster: Cluster, host: str, port: int, dbname: str | None = None) -> str:
    """The same target as a SQLAlchemy URL (for Great Expectations)."""
    return hook(cluster, host, port, dbname).sqlalchemy_url_string()


def query(conn: Any, sql: str, params: Any = None) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


def query_one(conn: Any, sql: str, params: Any = None) -> tuple:
    rows = query(conn, sql, params)
    if not rows:
        raise DrillError(f"query returned no row: {sql}")
    return rows[0]


def is_ready(cluster: Cluster, host: str, port: int, dbname: str | None = None) -> tuple[bool, str]:
    """`pg_isready`-equivalent: (accepts connections, why not)."""
    return hook(cluster, host, port, dbname).is_ready()


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


def user_tables(conn: Any, exclude_schemas: list[str] | None = None) -> list[str]:
    """Every user table as schema.table."""
    return [f"{s}.{t}" for s, t in user_table_pairs(conn, exclude_schemas or ())]


def count_rows(conn: Any, tables: list[str]) -> dict[str, int]:
    """Exact ``count(*)`` per table (statistics lie on a freshly restored cluster)."""
    from psycopg import sql

    out: dict[str, int] = {}
    for t in tables:
        schema, name = t.split(".", 1)
        out[t] = query_one(conn, sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(name)))[0]
    return out
