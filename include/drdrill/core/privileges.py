"""The database role the drills log in as, and every privilege it needs: in one place.

The drills never need a superuser. Their role (``drdrill`` by convention; whatever login the
cluster's Airflow connection names) gets exactly what the steps below use, each named with the
step that needs it:

=============================================  ==================================================
privilege                                      steps that need it
=============================================  ==================================================
``LOGIN`` + a password (scram-sha-256)         every step (through the Airflow connection)
member of ``pg_monitor``                       daily verification (``pg_stat_replication``,
                                               ``pg_stat_archiver``, archive settings), Assess,
                                               Stabilize (``archive_command``), readiness probes
member of ``pg_read_all_data``                 restore test: exact ``count(*)`` of every user table
                                               in the ledger and on the restored copy
member of ``pg_checkpoint``                    Stabilize / failback: ``CHECKPOINT`` before
                                               ``pg_rewind`` and before a planned switchover
``EXECUTE`` on ``pg_promote(boolean, integer)``  Failover: promote the standby
``EXECUTE`` on ``pg_switch_wal()``             restore ledger (archive the PITR target), rollback
``EXECUTE`` on ``pg_create_restore_point(text)``  marking a drill in the WAL (reserved for PITR by name)
``EXECUTE`` on ``pg_ls_dir``, ``pg_stat_file``,  Stabilize: ``pg_rewind`` reading the new primary
``pg_read_binary_file`` (both signatures)      as a non-superuser source (pg_rewind's documentation)
``REPLICATION``                                Stabilize: create the rebuilt standby's replication
                                               slot, drop the slots a former primary kept
owner of schema ``drdrill``                    canary rows (``drdrill.canary``), the failover's
                                               canary writes table, the runbook's write test table
=============================================  ==================================================

Steps that still need a superuser are not the drills' role: pgBackRest's own connection
(``pg1-user`` in pgbackrest.conf, over the local socket on the database host: ``backup``,
``check``, ``stanza-create``) and the OS user that runs ``pg_ctl``/``pg_rewind`` on the data
directory (``runner.run_as``). The standby's replication connection (``primary_conninfo``) is the
database host's own configuration: the drills keep its user, passfile and TLS options and only
point it at the new primary.

API (what the sandbox and ``estate check`` call):

- `setup_sql(role, schema=True)`: the statements that create or repair the role, as a superuser
  would run them once (idempotent), in each database the drills connect to: ``postgres`` (node
  actions, ``pg_rewind``; ``schema=False``) and the cluster's ``postgres.database`` (ledger,
  checks; ``schema=True``). Function grants are per database; roles and memberships are not. The
  password is set separately (`password_sql`), never in a statement that is logged.
- `missing_privileges(conn, role=None, schema=True)`: read-only; returns ``[(what, fix_sql), ...]``,
  empty when the role has everything. ``conn`` is any DB-API connection to that database; check
  both databases (``schema=False`` for ``postgres``).
- `explain_denied(error, role)`: the message for a SQLSTATE 42501 (permission denied) raised by a
  step: which privilege is missing and the GRANT that fixes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

DEFAULT_ROLE = "drdrill"
SCHEMA = "drdrill"


@dataclass(frozen=True)
class Grant:
    what: str  # as a person reads it
    check: str  # SQL returning one boolean: does %(role)s have it (read-only)
    fix: str  # the statement that grants it; {role} is the quoted role
    needed_by: str
    schema: bool = False  # only in the cluster's database (where the drdrill schema lives)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _fn(sig: str, needed_by: str) -> Grant:
    return Grant(f"EXECUTE on function {sig}",
                 f"SELECT has_function_privilege(%(role)s, 'pg_catalog.{sig}', 'EXECUTE')",
                 f"GRANT EXECUTE ON FUNCTION pg_catalog.{sig} TO {{role}}", needed_by)


def _member(group: str, needed_by: str) -> Grant:
    return Grant(f"membership of {group}", f"SELECT pg_has_role(%(role)s, '{group}', 'USAGE')",
                 f"GRANT {group} TO {{role}}", needed_by)


GRANTS: tuple[Grant, ...] = (
    Grant("LOGIN", "SELECT rolcanlogin FROM pg_roles WHERE rolname = %(role)s",
          "ALTER ROLE {role} LOGIN", "every step"),
    _member("pg_monitor", "daily verification, Assess, Stabilize: replication and archiver views, settings"),
    _member("pg_read_all_data", "restore test: exact row counts of every user table"),
    _member("pg_checkpoint", "Stabilize and failback: CHECKPOINT before pg_rewind and switchover"),
    _fn("pg_promote(boolean, integer)", "Failover: promote the standby"),
    _fn("pg_switch_wal()", "restore ledger and rollback: archive the current WAL segment"),
    _fn("pg_create_restore_point(text)", "named restore points"),
    _fn("pg_ls_dir(text, boolean, boolean)", "pg_rewind from this server"),
    _fn("pg_stat_file(text, boolean)", "pg_rewind from this server"),
    _fn("pg_read_binary_file(text)", "pg_rewind from this server"),
    _fn("pg_read_binary_file(text, bigint, bigint, boolean)", "pg_rewind from this server"),
    Grant("REPLICATION", "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = %(role)s",
          "ALTER ROLE {role} REPLICATION", "Stabilize: create and drop the drills' physical replication slots"),
    Grant(f"ownership of schema {SCHEMA}",
          f"SELECT coalesce((SELECT pg_has_role(%(role)s, nspowner, 'USAGE') FROM pg_namespace "
          f"WHERE nspname = '{SCHEMA}'), false)",
          f"CREATE SCHEMA IF NOT EXISTS {SCHEMA} AUTHORIZATION {{role}}; ALTER SCHEMA {SCHEMA} OWNER TO {{role}}",
          "canary rows, canary writes, the runbook's write test", schema=True),
)


def setup_sql(role: str = DEFAULT_ROLE, schema: bool = True) -> list[str]:
    """Statements a superuser runs once per database to create or repair ``role`` (see module doc).

    Idempotent. No password here: set it with `password_sql` through a channel that is not logged
    (psql's stdin, a secrets tool), or ``\\password`` in psql.
    """
    r = _q(role)
    create = (f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {_lit(role)}) THEN "
              f"CREATE ROLE {r} LOGIN; END IF; END $$")
    return [create, *(g.fix.format(role=r) for g in GRANTS if schema or not g.schema)]


def password_sql(role: str, password: str) -> str:
    """``ALTER ROLE ... PASSWORD`` (hashed by the server with scram-sha-256). Never log it."""
    return f"SET password_encryption = 'scram-sha-256'; ALTER ROLE {_q(role)} PASSWORD {_lit(password)}"


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def missing_privileges(conn: Any, role: str | None = None, schema: bool = True) -> list[tuple[str, str]]:
    """What ``role`` (default: the session's user) lacks, as ``[(what, fix_sql)]``; read-only.

    A superuser lacks nothing. A role that does not exist lacks everything (the fix creates it).
    """
    with conn.cursor() as cur:
        if role is None:
            cur.execute("SELECT current_user")
            role = cur.fetchone()[0]
        cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %(role)s", {"role": role})
        row = cur.fetchone()
        if row is None:
            return [(f"role {role} does not exist", "; ".join(setup_sql(role, schema)))]
        if row[0]:
            return []
        out = []
        for g in GRANTS:
            if g.schema and not schema:
                continue
            cur.execute(g.check, {"role": role})
            ok = cur.fetchone()
            if not (ok and ok[0]):
                out.append((f"{g.what} (needed by {g.needed_by})", g.fix.format(role=_q(role))))
        return out


# What PostgreSQL says when a privilege is missing -> the grant that gives it.
_DENIED = [
    (re.compile(r"permission denied for function (\w+)"), lambda m: _by_function(m.group(1))),
    (re.compile(r"pg_checkpoint"), lambda m: _by_what("membership of pg_checkpoint")),
    (re.compile(r"replication slot|must be superuser or replication role"), lambda m: _by_what("REPLICATION")),
    (re.compile(r"permission denied for database"), lambda m: _by_what(f"ownership of schema {SCHEMA}")),
    (re.compile(rf"permission denied for schema {SCHEMA}\b"), lambda m: _by_what(f"ownership of schema {SCHEMA}")),
    (re.compile(r"permission denied for (table|sequence|schema) "),
     lambda m: _by_what("membership of pg_read_all_data")),
    (re.compile(r"pg_read_all_settings|pg_monitor|pg_read_all_stats"), lambda m: _by_what("membership of pg_monitor")),
]


def _by_function(name: str) -> Grant | None:
    return next((g for g in GRANTS if g.what.startswith(f"EXECUTE on function {name}(")), None)


def _by_what(what: str) -> Grant | None:
    return next((g for g in GRANTS if g.what == what), None)


def explain_denied(error: Exception, role: str | None) -> str:
    """A permission error (SQLSTATE 42501) as the missing privilege and the statement that grants it."""
    text = " ".join(str(error).split())
    who = role or "the drills' role"
    for pattern, find in _DENIED:
        m = pattern.search(text)
        g = find(m) if m else None
        if g:
            return (f"permission denied: role {who} lacks {g.what} (needed by {g.needed_by}). A superuser fixes it "
                    f"with: {g.fix.format(role=_q(role or DEFAULT_ROLE))}. PostgreSQL said: {text}")
    return (f"permission denied for role {who}: {text}. Compare the role with the grants in "
            f"drdrill.core.privileges (include/estate/README.md, 'The drills' role') or run the estate check")
