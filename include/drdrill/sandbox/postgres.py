"""The sandbox's PostgreSQL 15 servers: the primary and its streaming standbys.

Owns each node's data directory (initdb, its own ``node.conf``, the sandbox's ``pg_hba.conf``),
start through ``pg_ctl`` as the postgres user with the postmaster's PID recorded, stop by that
data directory, the standbys' base backups, and the demo data (pgbench plus small app tables).

Authentication as in production: every TCP connection uses ``scram-sha-256`` with a generated
password (the sandbox's secrets, mode 0600); only the local socket lets the ``postgres`` OS user in
(``peer``: the bring-up and pgBackRest). Roles: the drills' least-privilege login (the estate's
``postgres.user``, grants from `drdrill.core.privileges`) and ``replicator`` for streaming (its
password in a passfile the standbys' ``primary_conninfo`` names). Nodes listed in the sandbox's
``tls_nodes`` serve TLS with a certificate signed by the sandbox's CA.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from pathlib import Path

from drdrill.core.errors import DrillError
from drdrill.core.estate import Cluster, Node
from drdrill.core.runner import LocalRunner
from drdrill.sandbox.layout import PG_USER, REPLICATION_ROLE, Layout, postmaster_pid, write_as_postgres

log = logging.getLogger("drdrill.sandbox")


class PostgresNodes:
    """The cluster's nodes on this machine, run as the postgres user through ``runner``."""

    def __init__(self, cluster: Cluster, layout: Layout, runner: LocalRunner, pgbench_scale: int,
                 tls_nodes: list[str] | tuple[str, ...] = ()) -> None:
        self.cluster = cluster
        self.layout = layout
        self.pg = runner
        self.bin: Path = cluster.postgres.bin_dir
        self.pgbench_scale = pgbench_scale
        self.tls_nodes = tuple(tls_nodes)

    @property
    def drill_role(self) -> str:
        return self.cluster.postgres.user

    def drill_password(self) -> str:
        return self.layout.secret(f"pg-{self.drill_role}-password")

    def replication_password(self) -> str:
        return self.layout.secret(f"pg-{REPLICATION_ROLE}-password")

    @property
    def replication_passfile(self) -> Path:
        return self.layout.pgpass / REPLICATION_ROLE

    def tls_files(self, node: Node) -> tuple[Path, Path]:
        return self.layout.tls / f"{node.name}.crt", self.layout.tls / f"{node.name}.key"

    def pgbin(self, name: str) -> str:
        return str(self.bin / name)

    # ---------------------------------------------------------------- configuration
    def node_conf(self, node: Node) -> str:
        """Settings that differ per node: its port, socket and its own archive command.

        Each node archives with ``--pg1-path`` set to its own data directory, so after a
        promotion the new primary archives correctly (a foreign pg1-path silently loses WAL).
        """
        cfg = self.cluster.pgbackrest.config
        stanza = self.cluster.pgbackrest.stanza
        push = f"pgbackrest --config={cfg} --stanza={stanza} --pg1-path={node.data_dir} archive-push %p"
        get = f"pgbackrest --config={cfg} --stanza={stanza} --pg1-path={node.data_dir} archive-get %f \"%p\""
        return "\n".join([
            "# Written by drdrill's sandbox: this node's own settings.",
            f"port = {node.port}",
            f"listen_addresses = '{node.host}'",
            f"unix_socket_directories = '{node.socket_dir}'",
            "archive_mode = on",
            f"archive_command = '{push}'",
            f"restore_command = '{get.replace(chr(39), chr(39) * 2)}'",
            "archive_timeout = 60",
            # logical, as on many production primaries (CDC): drills must leave logical slots alone.
            "wal_level = logical",
            "max_wal_senders = 10",
            "max_replication_slots = 10",
            "wal_log_hints = on",
            "hot_standby = on",
            "shared_buffers = 128MB",
            "max_wal_size = 1GB",
            "checkpoint_timeout = 5min",
            "fsync = on",
            "password_encryption = 'scram-sha-256'",
            *self._tls_conf(node),
            "",
        ])

    def _tls_conf(self, node: Node) -> list[str]:
        if node.name not in self.tls_nodes:
            return []
        crt, key = self.tls_files(node)
        return ["ssl = on", f"ssl_cert_file = '{crt}'", f"ssl_key_file = '{key}'"]

    def server_cert(self, node: Node) -> None:
        """A server certificate for ``node`` signed by the sandbox's CA (the moto certificate, CA:TRUE),
        for its host as an IP SAN and localhost, so ``sslmode=verify-full`` checks it for real."""
        crt, key = self.tls_files(node)
        csr = self.layout.tls / f"{node.name}.csr"
        ext = self.layout.tls / f"{node.name}.ext"
        run = LocalRunner(None).run
        run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={node.host}",
             "-keyout", str(key), "-out", str(csr)], timeout=60)
        ext.write_text(f"subjectAltName=IP:{node.host},DNS:localhost\nbasicConstraints=CA:FALSE\n")
        run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(self.layout.ca), "-CAkey", str(self.layout.key),
             "-CAcreateserial", "-days", "3650", "-extfile", str(ext), "-out", str(crt)], timeout=60)
        csr.unlink()
        ext.unlink()
        write_as_postgres(key, key.read_text(), 0o600)  # the server refuses a key others can read
        write_as_postgres(crt, crt.read_text(), 0o644)

    def write_node_conf(self, node: Node) -> None:
        data = node.data_dir
        main_conf = data / "postgresql.conf"
        text = main_conf.read_text()
        if "include_if_exists = 'node.conf'" not in text:
            write_as_postgres(main_conf, text + "\ninclude_if_exists = 'node.conf'\n", 0o600)
        write_as_postgres(data / "node.conf", self.node_conf(node), 0o600)

    # ---------------------------------------------------------------- build
    def init_primary(self, node: Node) -> None:
        data = node.data_dir
        data.parent.mkdir(parents=True, exist_ok=True)
        shutil.chown(data.parent, PG_USER, PG_USER)
        self.pg.run([self.pgbin("initdb"), "-D", str(data), "--data-checksums", "-U", PG_USER,
                     "--auth-local=peer", "--auth-host=scram-sha-256", "--no-instructions", "-E", "UTF8",
                     "--locale=C"], timeout=120)
        for n in self.cluster.nodes:
            if n.name in self.tls_nodes:
                self.server_cert(n)
        self.write_node_conf(node)
        # As in production: a password (scram-sha-256) on every TCP connection, replication included;
        # the local socket lets only the postgres OS user in, as the postgres role (bring-up, pgBackRest).
        write_as_postgres(data / "pg_hba.conf", "\n".join([
            "# Written by drdrill's sandbox.",
            f"local all {PG_USER} peer", f"local replication {PG_USER} peer",
            f"host replication {REPLICATION_ROLE} 127.0.0.1/32 scram-sha-256",
            "host all all 127.0.0.1/32 scram-sha-256", ""]), 0o600)

    def roles(self, node: Node) -> None:
        """The drills' least-privilege role (grants in both databases they use) and the replication role.

        Passwords go to psql through stdin: never in argv (``ps``) nor in a log line.
        """
        from drdrill.core import privileges

        db = self.cluster.postgres.database
        self.psql(node, ";\n".join(privileges.setup_sql(self.drill_role, schema=False)))
        self.psql(node, ";\n".join(privileges.setup_sql(self.drill_role, schema=True)), db)
        self.psql(node, f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{REPLICATION_ROLE}') "
                        f"THEN CREATE ROLE {REPLICATION_ROLE} LOGIN REPLICATION; END IF; END $$")
        self.psql_stdin(node, privileges.password_sql(self.drill_role, self.drill_password()) + ";\n"
                        + privileges.password_sql(REPLICATION_ROLE, self.replication_password()) + ";\n")
        L = self.layout
        L.pgpass.mkdir(exist_ok=True)
        shutil.chown(L.pgpass, PG_USER, PG_USER)
        L.pgpass.chmod(0o700)
        write_as_postgres(self.replication_passfile, f"*:*:*:{REPLICATION_ROLE}:{self.replication_password()}\n",
                          0o600)
        log.info("roles %s (least privilege) and %s (replication) ready, password authentication on TCP",
                 self.drill_role, REPLICATION_ROLE)

    def standby(self, primary: Node, node: Node) -> None:
        node.data_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.chown(node.data_dir.parent, PG_USER, PG_USER)
        # The replication login over TCP, its password from the passfile (never in argv); -R writes the
        # passfile's path into primary_conninfo, and with it the password, which is taken out below.
        self.pg.run([self.pgbin("pg_basebackup"), "-h", primary.host, "-p", str(primary.port),
                     "-U", REPLICATION_ROLE, "-D", str(node.data_dir), "-R", "-C", "-S", node.name,
                     "-X", "stream", "-c", "fast"], timeout=900, env={"PGPASSFILE": str(self.replication_passfile)})
        # Name the walsender after the node so the primary's pg_stat_replication says who is who.
        auto = node.data_dir / "postgresql.auto.conf"
        lines = []
        for ln in auto.read_text().splitlines():
            if ln.startswith("primary_conninfo = '"):
                ln = re.sub(r"\s*password=\S+", "", ln)  # the passfile has it
                ln = ln.replace("primary_conninfo = '", f"primary_conninfo = 'application_name={node.name} ", 1)
            lines.append(ln)
        write_as_postgres(auto, "\n".join(lines) + "\n", 0o600)
        self.write_node_conf(node)

    def psql(self, node: Node, sql: str, db: str = "postgres") -> str:
        """SQL as the postgres superuser over the node's local socket (peer)."""
        return self.pg.run([self.pgbin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(node.socket_dir),
                            "-p", str(node.port), "-d", db, "-At", "-c", sql], timeout=600).stdout.strip()

    def psql_stdin(self, node: Node, sql: str, db: str = "postgres") -> None:
        """The same, the SQL through stdin: for statements holding a secret (never argv, never logged)."""
        self.pg.run([self.pgbin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(node.socket_dir),
                     "-p", str(node.port), "-d", db, "-At", "-f", "-"], timeout=60, input=sql)

    def demo_data(self, node: Node) -> None:
        db = self.cluster.postgres.database
        self.psql(node, f"CREATE DATABASE {db}")
        self.roles(node)
        t0 = time.monotonic()
        self.pg.run([self.pgbin("pgbench"), "-i", "-q", "-I", "dtGvp", "-s", str(self.pgbench_scale),
                     "-h", str(node.socket_dir), "-p", str(node.port), db], timeout=900)
        log.info("pgbench scale %s loaded in %.1fs", self.pgbench_scale, time.monotonic() - t0)
        self.psql(node, DEMO_SQL.replace("{role}", self.drill_role), db)

    # ---------------------------------------------------------------- run
    def start(self, node: Node) -> int:
        logfile = self.layout.logs / f"{node.name}.log"
        self.pg.run([self.pgbin("pg_ctl"), "-D", str(node.data_dir), "-l", str(logfile), "-w", "-t", "60",
                     "start"], timeout=90)
        pid = postmaster_pid(node.data_dir)
        if not pid:
            raise DrillError(f"{node.name} did not start; see {logfile}")
        self.layout.pidfile(node.name).write_text(str(pid))
        log.info("%s (%s) up on %s:%s, pid %s", node.name, node.role, node.host, node.port, pid)
        return pid

    def stop_all(self, timeout: int = 60) -> list[str]:
        """Standbys before the primary, each stopped for sure (fast, then immediate, then SIGKILL).

        Returns what could not be stopped (with its PID); the caller must not remove its data.
        """
        from drdrill.core import pgctl

        left = []
        for node in reversed(self.cluster.members):  # the DR node first: it exists when warm or mid-drill
            if node.data_dir and postmaster_pid(node.data_dir):
                try:
                    pgctl.stop(self.pg, self.cluster.postgres.bin_dir, node.data_dir, mode="fast", timeout=timeout,
                               name=node.name)
                except DrillError as e:
                    log.error("%s", e)
                    left.append(f"{node.name} (pid {postmaster_pid(node.data_dir)})")
        return left

    # ---------------------------------------------------------------- health
    def problems(self) -> list[str]:
        out = [f"{node.name} not running" for node in self.expected()
               if not (node.data_dir and postmaster_pid(node.data_dir))]
        secret = self.layout.secrets / f"pg-{self.drill_role}-password"
        if not secret.exists() or not self.replication_passfile.exists():
            out.append(f"no password for role {self.drill_role} (built before password authentication)")
        return out

    def expected(self) -> list[Node]:
        """The nodes that run while the sandbox is up: the DR node only in warm mode."""
        dr = self.cluster.dr
        return self.cluster.members if dr and dr.mode == "warm" else list(self.cluster.nodes)

    def status(self) -> list[dict]:
        """One row per node (the DR node when warm or present); its state asks the server itself."""
        rows = []
        for node in self.cluster.members:
            if node not in self.expected() and not (node.data_dir and node.data_dir.exists()):
                continue
            pid = postmaster_pid(node.data_dir) if node.data_dir else None
            state = "down"
            if pid:
                try:  # over the local socket as the superuser: the sandbox's own view, no connection needed
                    rec = self.psql(node, "SELECT pg_is_in_recovery()") == "t"
                    state = "in recovery" if rec else "read-write"
                except Exception as e:  # noqa: BLE001 - shown to the user as the state
                    state = f"not accepting connections ({e.__class__.__name__})"
            rows.append({"name": node.name, "role": node.role, "port": node.port, "pid": pid, "state": state})
        return rows


# Small application tables beside pgbench's: different sizes, a critical one, an append-only log.
DEMO_SQL = """
CREATE SCHEMA app;
CREATE TABLE app.customers (id bigint PRIMARY KEY, name text NOT NULL, created_at timestamptz DEFAULT now());
INSERT INTO app.customers SELECT g, 'customer ' || g, now() - g * interval '1 minute' FROM generate_series(1, 5000) g;
CREATE TABLE app.orders (id bigserial PRIMARY KEY, customer_id bigint REFERENCES app.customers,
  amount numeric(12,2) NOT NULL, created_at timestamptz DEFAULT now());
INSERT INTO app.orders (customer_id, amount) SELECT 1 + g % 5000, (g % 997) / 10.0 FROM generate_series(1, 50000) g;
CREATE TABLE app.settings (key text PRIMARY KEY, value text);
INSERT INTO app.settings VALUES ('currency', 'EUR'), ('region', 'eu-west-1'), ('tier', 'gold');
CREATE TABLE app.audit_log (id bigserial PRIMARY KEY, event text NOT NULL, at timestamptz DEFAULT clock_timestamp());
INSERT INTO app.audit_log (event) SELECT 'seed ' || g FROM generate_series(1, 200) g;
-- The drills' schema belongs to their role (drdrill.core.privileges.setup_sql), and so do its tables.
SET ROLE {role};
CREATE TABLE drdrill.canary (id bigserial PRIMARY KEY, run_id text NOT NULL, kind text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp());
-- The demo service's writes (a failover drill's canary); production drills create it IF NOT EXISTS.
CREATE TABLE drdrill.canary_writes (run_id text NOT NULL, seq bigint NOT NULL,
  committed_at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (run_id, seq));
RESET ROLE;
ANALYZE;
"""
