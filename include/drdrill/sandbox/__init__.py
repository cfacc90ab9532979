"""The embedded sandbox: a real, local DR estate with no cloud account and no Docker.

It reads the sandbox estate file and builds what it describes, under a git-ignored directory:
a PostgreSQL 15 primary archiving through pgBackRest to repo1 (posix) and repo2 (S3 served
over TLS on loopback by moto, repo cipher aes-256-cbc), a streaming standby with its own
archive settings, demo data and backups. Servers run as the ``postgres`` user, are started in
the background with their own session, recorded by PID and stopped by PID.

The same moto server serves Route53: the hosted zone and the database's service record
(``failover.dns``, a CNAME to the primary's ``dns_name``). In front of the database run two
replicas of a demo service (`drdrill.sandbox.service`, "the application") under supervisord,
at ``failover.service.urls``; they find the database through that record.

This module is a tool that builds the estate; drill logic never imports it.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from drdrill.core import httpjson
from drdrill.core.errors import DrillError
from drdrill.core.estate import Cluster, Estate, load_estate
from drdrill.core.paths import sandbox_dir
from drdrill.core.runner import LocalRunner
from drdrill.hooks.pgbackrest import PgBackRestHook
from drdrill.sandbox import ports
from drdrill.sandbox.aws import BUCKET, CONN_ID, REGION, Moto
from drdrill.sandbox.layout import PG_USER, Layout, is_ours, pid_alive, postmaster_pid, read_pid, write_as_postgres

log = logging.getLogger("drdrill.sandbox")

# Tests and scripts import these from the package; the private name predates the split.
_pid_alive = pid_alive
__all__ = ["BUCKET", "CONN_ID", "PG_USER", "REGION", "SERVICE_SCRIPT", "Layout", "Sandbox", "postmaster_pid"]

# Run as a script by path, so the service imports nothing of drdrill (it is "the application").
SERVICE_SCRIPT = Path(__file__).resolve().with_name("service.py")


def _cluster(estate: Estate) -> Cluster:
    for c in estate.clusters:
        if c.sandbox is not None:
            return c
    raise DrillError(f"{estate.source}: no cluster has a 'sandbox:' block; the sandbox builds only the "
                     f"estate in include/estate/sandbox.yaml")


class Sandbox:
    """Bring-up, tear-down and status of the sandbox estate."""

    def __init__(self, estate: Estate | None = None) -> None:
        # The roles as written: the sandbox is built with pg1 primary; a rebuild forgets failovers.
        self.estate = estate or load_estate(topology=False)
        self.cluster = _cluster(self.estate)
        self.layout = Layout(sandbox_dir())
        self.pg = LocalRunner(PG_USER)
        self.bin = self.cluster.postgres.bin_dir
        spec = self.cluster.sandbox
        assert spec is not None
        self.spec = spec
        failover = self.cluster.failover
        self.dns = failover.dns if failover else None
        self.service = failover.service if failover and self.dns else None
        self.aws = Moto(self.cluster, self.dns, self.layout, spec.s3_port, self.estate.source)

    def replicas(self) -> list[tuple[str, str, int]]:
        """(name, base URL, port) of each demo service replica: service-1, service-2, ..."""
        if not self.service:
            return []
        out = []
        for i, url in enumerate(self.service.urls, 1):
            u = urlsplit(url)
            if u.scheme != "http" or u.hostname not in ("127.0.0.1", "localhost") or not u.port:
                raise DrillError(f"{self.estate.source}: the sandbox runs its demo service on loopback: "
                                 f"failover.service.urls must be http://127.0.0.1:PORT, got {url!r}")
            out.append((f"service-{i}", url.rstrip("/"), u.port))
        return out

    # ---------------------------------------------------------------- helpers
    def _pgbin(self, name: str) -> str:
        return str(self.bin / name)

    def _node_conf(self, node) -> str:
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
            "wal_level = replica",
            "max_wal_senders = 10",
            "max_replication_slots = 10",
            "wal_log_hints = on",
            "hot_standby = on",
            "shared_buffers = 128MB",
            "max_wal_size = 1GB",
            "checkpoint_timeout = 5min",
            "fsync = on",
            "",
        ])

    @staticmethod
    def _write_as_postgres(path: Path, text: str, mode: int = 0o640) -> None:
        write_as_postgres(path, text, mode)

    # ---------------------------------------------------------------- moto (S3, Route53)
    def s3_client(self):
        return self.aws.s3_client()

    def route53_client(self):
        return self.aws.route53_client()

    def airflow_env(self) -> dict[str, str]:
        """The Airflow connection to this sandbox's moto (S3 and Route53 over TLS), as env vars."""
        return self.aws.airflow_env()

    def _zone_id(self, r53) -> str | None:
        return self.aws.zone_id(r53)

    def dns_record(self) -> dict | None:
        """The service record as Route53 has it now (``value`` None when it is missing)."""
        return self.aws.dns_record()

    # ---------------------------------------------------------------- demo service (supervisord)
    def _bin(self, name: str) -> str:
        """A console script of this Python's environment (the venv's supervisord), else from PATH."""
        p = Path(sys.executable).parent / name
        return str(p) if p.exists() else (shutil.which(name) or name)

    def _supervisord_conf(self) -> str:
        L, dns = self.layout, self.dns
        assert dns is not None
        db = self.cluster.postgres

        def q(argv: list[str]) -> str:
            return shlex.join(argv).replace("%", "%%")  # supervisord expands %(name)s in values

        lines = [
            "; Written by drdrill's sandbox: the demo service's replicas. `supervisorctl -c <this file> status`",
            "[unix_http_server]", f"file={L.supervisor_sock}", "chmod=0700", "",
            "[supervisord]", "nodaemon=true", "silent=true", "user=root",
            f"logfile={L.logs / 'supervisord.log'}", "logfile_backups=0",
            f"pidfile={L.pidfile('supervisord')}", f"childlogdir={L.logs}", "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
            "[supervisorctl]", f"serverurl=unix://{L.supervisor_sock}", "",
        ]
        for name, _url, port in self.replicas():
            argv = [sys.executable, str(SERVICE_SCRIPT), "--name", name, "--port", str(port),
                    "--route53-endpoint", self.aws.endpoint, "--ca", str(L.ca),
                    "--zone", dns.zone, "--record", dns.record, "--database", db.database, "--user", db.user,
                    "--pidfile", str(L.pidfile(name))]
            for node in self.cluster.nodes:
                if node.dns_name:
                    argv += ["--node", f"{node.dns_name}={node.host}:{node.port}"]
            lines += [
                f"[program:{name}]", f"command={q(argv)}", f"directory={L.service}",
                "autostart=true", "autorestart=true", "startsecs=1", "startretries=5",
                "stopsignal=TERM", "stopwaitsecs=5",
                f"stdout_logfile={L.logs / (name + '.log')}", "stdout_logfile_backups=0",
                f"stderr_logfile={L.logs / (name + '.err.log')}", "stderr_logfile_backups=0",
                "environment=PYTHONUNBUFFERED=\"1\"", "",
            ]
        return "\n".join(lines)

    def _start_services(self) -> None:
        """supervisord (foreground, own session, recorded by PID) running the replicas."""
        if not self.service:
            return
        L = self.layout
        L.service.mkdir(exist_ok=True)
        L.supervisor_conf.write_text(self._supervisord_conf())
        logf = open(L.logs / "supervisord.out", "ab")
        proc = subprocess.Popen([self._bin("supervisord"), "-n", "-c", str(L.supervisor_conf)], stdout=logf,
                                stderr=logf, stdin=subprocess.DEVNULL, start_new_session=True, cwd=L.service)
        L.pidfile("supervisord").write_text(str(proc.pid))
        log.info("supervisord up (pid %s) with %s replicas of the demo service", proc.pid, len(self.replicas()))

    def _wait_services(self, timeout: float = 60) -> None:
        """Until every replica answers /health with 200 (it reached the primary through the record)."""
        deadline = time.monotonic() + timeout
        for name, url, _port in self.replicas():
            while True:
                code, body = httpjson.call(url + "/health", timeout=2)
                if code == 200:
                    log.info("%s healthy on %s (pid %s, db %s)", name, url, body.get("pid"), body.get("db"))
                    break
                if not pid_alive(read_pid(self.layout.pidfile("supervisord"))) or time.monotonic() > deadline:
                    raise DrillError(f"demo service {name} not healthy on {url}: {body.get('error', body)}; see "
                                     f"{self.layout.logs / (name + '.err.log')} and "
                                     f"{self.layout.logs / 'supervisord.log'}")
                time.sleep(0.2)

    def supervised(self) -> dict[str, dict]:
        """supervisord's view of its programs (``supervisorctl status`` over its socket), by name."""
        import xmlrpc.client

        from supervisor.xmlrpc import SupervisorTransport

        sock = self.layout.supervisor_sock
        if not sock.exists():
            return {}
        proxy = xmlrpc.client.ServerProxy("http://127.0.0.1",
                                          transport=SupervisorTransport(serverurl=f"unix://{sock}"))
        try:
            infos = proxy.supervisor.getAllProcessInfo()
        except (OSError, xmlrpc.client.Error):
            return {}
        return {i["name"]: {"pid": i["pid"] or None, "state": i["statename"]} for i in infos}

    def _stop_services(self) -> None:
        """SIGTERM to supervisord (it stops the replicas first), wait for it; strays by their own PID."""
        L = self.layout
        pid = read_pid(L.pidfile("supervisord"))
        if pid_alive(pid) and is_ours(pid, str(L.supervisor_conf)):
            os.kill(pid, signal.SIGTERM)
            for _ in range(300):
                if not pid_alive(pid):
                    break
                time.sleep(0.1)
            else:
                log.warning("supervisord (pid %s) still running 30s after SIGTERM: SIGKILL", pid)
                os.kill(pid, signal.SIGKILL)
            log.info("supervisord and the demo service stopped (pid %s)", pid)
        # A replica left behind (supervisord killed with -9) is found by its own pidfile, checked
        # against its command line so a recycled PID is never signalled.
        for name, _url, _port in self.replicas():
            spid = read_pid(L.pidfile(name))
            if pid_alive(spid) and is_ours(spid, str(SERVICE_SCRIPT), str(L.root)):
                log.warning("%s (pid %s) outlived supervisord: SIGTERM", name, spid)
                os.kill(spid, signal.SIGTERM)
                for _ in range(50):
                    if not pid_alive(spid):
                        break
                    time.sleep(0.1)
                else:
                    os.kill(spid, signal.SIGKILL)

    def _secret(self, name: str) -> str:
        return self.layout.secret(name)

    # ---------------------------------------------------------------- pgBackRest
    def _backrest_conf(self) -> None:
        L = self.layout
        primary = self.cluster.primary
        conf = "\n".join([
            "# Written by drdrill's sandbox. Holds secrets: mode 0640, owner postgres, never in git.",
            "[global]",
            f"repo1-path={L.backrest / 'repo1'}",
            "repo1-retention-full=2",
            "repo2-type=s3",
            f"repo2-s3-bucket={BUCKET}",
            "repo2-s3-endpoint=localhost",
            f"repo2-storage-port={self.spec.s3_port}",
            f"repo2-s3-region={REGION}",
            "repo2-s3-uri-style=path",
            f"repo2-storage-ca-file={L.ca}",
            f"repo2-s3-key={self._secret('s3-key')}",
            f"repo2-s3-key-secret={self._secret('s3-key-secret')}",
            "repo2-path=/pgbackrest",
            "repo2-retention-full=2",
            "repo2-cipher-type=aes-256-cbc",
            f"repo2-cipher-pass={self._secret('repo2-cipher-pass')}",
            "compress-type=lz4",
            f"process-max={self.cluster.pgbackrest.process_max}",
            "start-fast=y",
            f"log-path={L.backrest / 'log'}",
            f"lock-path={L.backrest / 'lock'}",
            f"spool-path={L.backrest / 'spool'}",
            "log-level-file=info",
            "io-timeout=20",
            "",
            f"[{self.cluster.pgbackrest.stanza}]",
            f"pg1-path={primary.data_dir}",
            f"pg1-port={primary.port}",
            f"pg1-socket-path={primary.socket_dir}",
            f"pg1-user={self.cluster.postgres.user}",
            "",
        ])
        cfg = self.cluster.pgbackrest.config
        assert cfg is not None
        self._write_as_postgres(cfg, conf, 0o640)

    # ---------------------------------------------------------------- PostgreSQL
    def _start_pg(self, node) -> int:
        logfile = self.layout.logs / f"{node.name}.log"
        self.pg.run([self._pgbin("pg_ctl"), "-D", str(node.data_dir), "-l", str(logfile), "-w", "-t", "60",
                     "start"], timeout=90)
        pid = postmaster_pid(node.data_dir)
        if not pid:
            raise DrillError(f"{node.name} did not start; see {logfile}")
        self.layout.pidfile(node.name).write_text(str(pid))
        log.info("%s (%s) up on %s:%s, pid %s", node.name, node.role, node.host, node.port, pid)
        return pid

    def _psql(self, node, sql: str, db: str = "postgres") -> str:
        return self.pg.run([self._pgbin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(node.socket_dir),
                            "-p", str(node.port), "-d", db, "-At", "-c", sql], timeout=600).stdout.strip()

    def _init_primary(self, node) -> None:
        data = node.data_dir
        data.parent.mkdir(parents=True, exist_ok=True)
        shutil.chown(data.parent, PG_USER, PG_USER)
        self.pg.run([self._pgbin("initdb"), "-D", str(data), "--data-checksums", "-U", self.cluster.postgres.user,
                     "--auth=trust", "--no-instructions", "-E", "UTF8", "--locale=C"], timeout=120)
        self._write_node_conf(node)
        # Sandbox only: trust on loopback, replication included. Production uses its own pg_hba.
        self._write_as_postgres(data / "pg_hba.conf", "\n".join([
            "local all all trust", "host all all 127.0.0.1/32 trust",
            "local replication all trust", "host replication all 127.0.0.1/32 trust", ""]), 0o600)

    def _write_node_conf(self, node) -> None:
        data = node.data_dir
        main_conf = data / "postgresql.conf"
        text = main_conf.read_text()
        if "include_if_exists = 'node.conf'" not in text:
            self._write_as_postgres(main_conf, text + "\ninclude_if_exists = 'node.conf'\n", 0o600)
        self._write_as_postgres(data / "node.conf", self._node_conf(node), 0o600)

    def _demo_data(self, node) -> None:
        db = self.cluster.postgres.database
        self._psql(node, f"CREATE DATABASE {db}")
        t0 = time.monotonic()
        self.pg.run([self._pgbin("pgbench"), "-i", "-q", "-I", "dtGvp", "-s", str(self.spec.pgbench_scale),
                     "-h", str(node.socket_dir), "-p", str(node.port), db], timeout=900)
        log.info("pgbench scale %s loaded in %.1fs", self.spec.pgbench_scale, time.monotonic() - t0)
        self._psql(node, DEMO_SQL, db)

    def _standby(self, primary, node) -> None:
        node.data_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.chown(node.data_dir.parent, PG_USER, PG_USER)
        self.pg.run([self._pgbin("pg_basebackup"), "-h", primary.host, "-p", str(primary.port),
                     "-U", self.cluster.postgres.user, "-D", str(node.data_dir), "-R", "-C", "-S", node.name,
                     "-X", "stream", "-c", "fast"], timeout=900)
        # Name the walsender after the node so the primary's pg_stat_replication says who is who.
        auto = node.data_dir / "postgresql.auto.conf"
        self._write_as_postgres(auto, auto.read_text().replace(
            "primary_conninfo = '", f"primary_conninfo = 'application_name={node.name} ", 1), 0o600)
        self._write_node_conf(node)

    # ---------------------------------------------------------------- lifecycle
    def up(self) -> None:
        """Build the sandbox, or do nothing when it is already healthy."""
        ports.reserve(self._ports(), self.estate.scratch.port_range)
        problems = self.problems()
        if not problems:
            log.info("sandbox already up at %s", self.layout.root)
            return
        if self.layout.root.exists() and any(self.layout.root.iterdir()):
            log.info("sandbox incomplete (%s): rebuilding", "; ".join(problems))
            self.down()
        self._preflight()
        t0 = time.monotonic()
        from drdrill.core import topology

        topology.reset(self.estate.state_store)
        self.layout.create()
        self.aws.tls()
        self.aws.start()
        self.aws.create_records()
        self._backrest_conf()
        primary = self.cluster.primary
        self._init_primary(primary)
        self._start_pg(primary)
        br = PgBackRestHook.for_cluster(self.cluster, self.pg)
        br.run("stanza-create", timeout=120)
        self._demo_data(primary)
        for node in self.cluster.standbys:
            self._standby(primary, node)
            self._start_pg(node)
        self._start_services()  # they start while the backups run; waited for at the end
        br.run("check", timeout=120)
        for repo in self.cluster.pgbackrest.repos:
            t = time.monotonic()
            br.backup(repo=repo.index, type="full")
            log.info("full backup to repo%s in %.1fs", repo.index, time.monotonic() - t)
        self._psql(primary, "INSERT INTO app.audit_log(event) VALUES ('after full backup')",
                   self.cluster.postgres.database)
        for repo in self.cluster.pgbackrest.repos:
            br.backup(repo=repo.index, type="diff")
        self._wait_services()
        log.info("sandbox up in %.1fs at %s", time.monotonic() - t0, self.layout.root)

    def _preflight(self) -> None:
        missing = [b for b in ("pgbackrest", "openssl", "runuser") if not shutil.which(b)]
        if self.service and not Path(self._bin("supervisord")).exists():
            missing.append("supervisord (pip install supervisor)")
        if not (self.bin / "postgres").exists():
            missing.append(str(self.bin / "postgres"))
        if missing:
            raise DrillError(f"missing on this machine: {', '.join(missing)}; run `make install` "
                             f"(apt-get install -y pgbackrest postgresql-15)")
        if os.geteuid() != 0:
            raise DrillError("the sandbox starts servers as the postgres user and needs root (runuser)")
        busy = [p for p in self._ports() if ports.in_use(p)]
        if busy:
            raise DrillError(f"port(s) {busy} are in use by another process; stop it or change the ports "
                             f"in {self.estate.source}")

    def _ports(self) -> list[int]:
        return [n.port for n in self.cluster.nodes] + [self.spec.s3_port] + [p for _n, _u, p in self.replicas()]

    def down(self) -> None:
        """Stop every sandbox server by PID and remove the sandbox (journals are kept)."""
        from drdrill.core.scratch import remove_all_scratch

        root = self.layout.root
        # The application first: it stops before its database, as in an orderly shutdown.
        self._stop_services()
        if root.exists():
            remove_all_scratch(self.estate.scratch.root, self.pg, self.bin)
        for node in reversed(self.cluster.nodes):
            if node.data_dir and postmaster_pid(node.data_dir):
                self.pg.run([self._pgbin("pg_ctl"), "-D", str(node.data_dir), "-m", "fast", "-w", "stop"],
                            timeout=120, check=False)
                log.info("%s stopped", node.name)
        self.aws.stop()
        if root.exists():
            for child in root.iterdir():
                if child != self.layout.journal:
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        log.info("sandbox removed (journals kept in %s)", self.layout.journal)

    def problems(self) -> list[str]:
        """What is not running as it should; empty when the sandbox is healthy."""
        out = self.aws.problems()
        for node in self.cluster.nodes:
            if not (node.data_dir and postmaster_pid(node.data_dir)):
                out.append(f"{node.name} not running")
        if not (self.cluster.pgbackrest.config and self.cluster.pgbackrest.config.exists()):
            out.append("no pgbackrest.conf")
        if self.service:
            if not pid_alive(read_pid(self.layout.pidfile("supervisord"))):
                out.append("supervisord (demo service) not running")
            for name, url, _port in self.replicas():
                code, _body = httpjson.call(url + "/health", timeout=2)
                if code == 0:  # a 503 answers: the service is up, its database may not be
                    out.append(f"{name} not answering on {url}")
        return out

    def status(self) -> dict:
        """Servers, ports, PIDs and backups per repo, as data (printed by the CLI)."""
        from drdrill.hooks import postgres as pg

        servers = []
        servers.append(self.aws.status())
        for node in self.cluster.nodes:
            pid = postmaster_pid(node.data_dir) if node.data_dir else None
            state = "down"
            if pid:
                try:
                    with pg.connect(self.cluster, node.host, node.port, "postgres") as c:
                        rec = pg.query_one(c, "SELECT pg_is_in_recovery()")[0]
                    state = "in recovery" if rec else "read-write"
                except Exception as e:  # noqa: BLE001 - shown to the user as the state
                    state = f"not accepting connections ({e.__class__.__name__})"
            servers.append({"name": node.name, "role": node.role, "port": node.port, "pid": pid, "state": state})
        dns = None
        if self.service:
            sup_pid = read_pid(self.layout.pidfile("supervisord"))
            sup_alive = pid_alive(sup_pid)
            servers.append({"name": "supervisord", "role": "demo service", "port": None,
                            "pid": sup_pid if sup_alive else None, "state": "" if sup_alive else "down"})
            programs = self.supervised() if sup_alive else {}
            for name, url, port in self.replicas():
                code, body = httpjson.call(url + "/health", timeout=2)
                prog = programs.get(name, {})
                pid = prog.get("pid") or body.get("pid")
                if code == 200:
                    state = f"ok, db {body.get('db')} ({body.get('db_addr')})"
                elif code:
                    state = f"degraded: {body.get('error')}"
                else:
                    state = f"not answering ({prog.get('state', 'no supervisord')})"
                servers.append({"name": name, "role": "demo service", "port": port, "pid": pid, "state": state,
                                "url": url})
            if self.aws.pid():
                try:
                    dns = self.dns_record()
                except Exception as e:  # noqa: BLE001 - shown to the user
                    dns = {"error": f"{type(e).__name__}: {e}"}
        problems = self.problems()
        backups: list[dict] = []
        if not problems:
            try:
                for st in PgBackRestHook.for_cluster(self.cluster).info():
                    for b in st.backups:
                        backups.append({"repo": b.repo_key, "label": b.label, "type": b.type,
                                        "stop": b.stop.isoformat(timespec="seconds")})
            except DrillError as e:
                backups.append({"error": str(e)})
        return {"root": str(self.layout.root), "servers": servers, "dns": dns, "backups": backups,
                "problems": problems}


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
CREATE SCHEMA drdrill;
CREATE TABLE drdrill.canary (id bigserial PRIMARY KEY, run_id text NOT NULL, kind text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp());
-- The demo service's writes (a failover drill's canary); production drills create it IF NOT EXISTS.
CREATE TABLE drdrill.canary_writes (run_id text NOT NULL, seq bigint NOT NULL,
  committed_at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (run_id, seq));
ANALYZE;
"""
