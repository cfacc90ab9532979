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
from drdrill.sandbox import ports
from drdrill.sandbox.aws import BUCKET, CONN_ID, REGION, Moto
from drdrill.sandbox.layout import PG_USER, Layout, is_ours, pid_alive, postmaster_pid, read_pid, write_as_postgres
from drdrill.sandbox.pgbackrest import PgBackRestRepos
from drdrill.sandbox.postgres import DEMO_SQL, PostgresNodes

log = logging.getLogger("drdrill.sandbox")

# Tests and scripts import these from the package; the private name predates the split.
_pid_alive = pid_alive
__all__ = ["BUCKET", "CONN_ID", "DEMO_SQL", "PG_USER", "REGION", "SERVICE_SCRIPT", "Layout", "Sandbox",
           "postmaster_pid"]

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
        self.postgres = PostgresNodes(self.cluster, self.layout, self.pg, spec.pgbench_scale)
        self.backrest = PgBackRestRepos(self.cluster, self.layout, spec.s3_port)
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

    # ---------------------------------------------------------------- PostgreSQL
    def _start_pg(self, node) -> int:
        return self.postgres.start(node)

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
        self.backrest.write_conf()
        primary = self.cluster.primary
        self.postgres.init_primary(primary)
        self.postgres.start(primary)
        br = self.backrest.hook(self.pg)
        br.run("stanza-create", timeout=120)
        self.postgres.demo_data(primary)
        for node in self.cluster.standbys:
            self.postgres.standby(primary, node)
            self.postgres.start(node)
        self._start_services()  # they start while the backups run; waited for at the end
        br.run("check", timeout=120)
        self.backrest.full_backups(br)
        self.postgres.psql(primary, "INSERT INTO app.audit_log(event) VALUES ('after full backup')",
                           self.cluster.postgres.database)
        self.backrest.diff_backups(br)
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
        self.postgres.stop_all()
        self.aws.stop()
        if root.exists():
            for child in root.iterdir():
                if child != self.layout.journal:
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        log.info("sandbox removed (journals kept in %s)", self.layout.journal)

    def problems(self) -> list[str]:
        """What is not running as it should; empty when the sandbox is healthy."""
        out = self.aws.problems() + self.postgres.problems() + self.backrest.problems()
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
        servers = [self.aws.status(), *self.postgres.status()]
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
        backups = [] if problems else self.backrest.backups()
        return {"root": str(self.layout.root), "servers": servers, "dns": dns, "backups": backups,
                "problems": problems}
