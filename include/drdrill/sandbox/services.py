"""The demo service's replicas ("the application") under supervisord.

Owns supervisord: its config (one program per replica, each running `service.py` by path), its
start in the foreground in its own session with its PID recorded, waiting for every replica's
``/health``, and its stop by PID, replicas it left behind included. `service.py` is the
application itself and imports nothing of drdrill.

The replicas are the ``process.replicas`` of the estate's ``services:`` entries whose
``supervisor_conf`` is this sandbox's supervisord config (`sandbox_services`): program name,
zone and URL (the port) come from there. An estate without such an entry falls back to one
replica per ``failover.service.urls`` entry (service-1, service-2, ...). Either way the URLs
the failover drill checks (``failover.service.urls``) must be replicas the sandbox runs, or a
front door it serves.
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
from drdrill.core.estate import Cluster, Dns, Estate, Service
from drdrill.core.services import ServiceTarget
from drdrill.sandbox.layout import Layout, is_ours, pid_alive, read_pid, recorded_pid, wait_for_exit

log = logging.getLogger("drdrill.sandbox")

# Run as a script by path, so the service imports nothing of drdrill (it is "the application").
SERVICE_SCRIPT = Path(__file__).resolve().with_name("service.py")


def venv_bin(name: str) -> str:
    """A console script of this Python's environment (the venv's supervisord), else from PATH."""
    p = Path(sys.executable).parent / name
    return str(p) if p.exists() else (shutil.which(name) or name)


def loopback_port(url: str, field: str, source: object) -> int:
    """The port of a sandbox URL, which must be ``http://127.0.0.1:PORT`` (the sandbox serves loopback only)."""
    u = urlsplit(url)
    if u.scheme != "http" or u.hostname not in ("127.0.0.1", "localhost") or not u.port:
        raise DrillError(f"{source}: the sandbox serves its demo service on loopback: {field} must be "
                         f"http://127.0.0.1:PORT, got {url!r}")
    return u.port


def sandbox_services(estate: Estate, cluster: Cluster, layout: Layout) -> list[ServiceTarget]:
    """The estate's ``services:`` whose ``process`` replicas this sandbox runs: their ``supervisor_conf``
    is the sandbox's supervisord config (and their ``cluster``, when given, the sandbox's cluster)."""
    out = []
    for s in estate.services:
        if not s.process or Path(s.process.supervisor_conf).resolve() != layout.supervisor_conf.resolve():
            continue
        if s.cluster and s.cluster != cluster.name:
            raise DrillError(f"{estate.source}: services[{s.name}] runs under the sandbox's supervisord "
                             f"({s.process.supervisor_conf}) but names cluster {s.cluster!r}: its replicas use "
                             f"the sandbox's database, so set cluster: {cluster.name}")
        if s.process.runner != "local":
            raise DrillError(f"{estate.source}: services[{s.name}].process.runner must be local in the sandbox "
                             f"(its supervisord runs on this machine), got {s.process.runner!r}")
        out.append(s)
    return out


class DemoService:
    """supervisord and the replicas it runs; they find the database through Route53 at ``endpoint``.

    ``services`` are the estate's entries whose replicas run here (`sandbox_services`); without
    them, one replica per ``failover.service.urls`` entry. Without ``service`` and ``dns``
    (nowhere to find the database) there are no replicas to run, but `stop` still stops a
    supervisord recorded by an earlier bring-up.
    """

    def __init__(self, cluster: Cluster, service: Service | None, dns: Dns | None, layout: Layout, endpoint: str,
                 source: object, services: list[ServiceTarget] | None = None) -> None:
        self.cluster = cluster
        self.service = service
        self.dns = dns
        self.layout = layout
        self.endpoint = endpoint  # moto's Route53, where the replicas look the record up
        self.source = source  # the estate file, named in error messages
        self.services = list(services or [])

    @property
    def passfile(self) -> Path:
        """The application's own credentials: a libpq passfile (mode 0600) its replicas read."""
        return self.layout.service / "pgpass"

    def write_passfile(self, password: str) -> None:
        self.layout.service.mkdir(exist_ok=True)
        self.passfile.write_text(f"*:*:*:{self.cluster.postgres.user}:{password}\n")
        self.passfile.chmod(0o600)

    def replicas(self) -> list[tuple[str, str, int]]:
        """(program name, base URL, port) of each demo service replica, e.g. ("service-1", url, 55610)."""
        if not self.service:
            return []
        if not self.services:
            return [(f"service-{i}", url.rstrip("/"), loopback_port(url, "failover.service.urls", self.source))
                    for i, url in enumerate(self.service.urls, 1)]
        out: list[tuple[str, str, int]] = []
        for s in self.services:
            assert s.process is not None
            for r in s.process.replicas:
                port = loopback_port(r.url, f"services[{s.name}].process.replicas[{r.program}].url", self.source)
                clash = [n for n, _u, p in out if n == r.program or p == port]
                if clash:
                    raise DrillError(f"{self.source}: services[{s.name}] replica {r.program} ({r.url}) clashes with "
                                     f"replica {clash[0]} of another service: program names and ports must be "
                                     f"unique under one supervisord")
                out.append((r.program, r.url.rstrip("/"), port))
        served = {u for _n, u, _p in out} | {s.url.rstrip("/") for s in self.services}
        stray = [u for u in self.service.urls if u.rstrip("/") not in served]
        if stray:
            raise DrillError(f"{self.source}: failover.service.urls {stray} are neither replicas the sandbox runs "
                             f"(services[].process.replicas[].url) nor a service's front door (services[].url): "
                             f"the failover drill would check URLs nothing serves; list the replicas' URLs there")
        return out

    def zones(self) -> dict[str, str]:
        """Each replica's zone by program name (from the estate's ``services:``; empty for the fallback)."""
        return {r.program: r.zone for s in self.services if s.process for r in s.process.replicas}

    def supervisord_conf(self) -> str:
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
                    "--route53-endpoint", self.endpoint, "--ca", str(L.ca),
                    "--zone", dns.zone, "--record", dns.record, "--database", db.database, "--user", db.user,
                    "--passfile", str(self.passfile), "--pidfile", str(L.pidfile(name))]
            for node in self.cluster.members:  # the DR node too: a region failover points the record at it
                if node.dns_name:
                    argv += ["--node", f"{node.dns_name}={node.host}:{node.port}"]
            # autorestart: a replica killed with SIGKILL (the pod-kill drill) is started again at once;
            # startsecs=1: RUNNING after 1 s up; startretries=5: a replica that keeps dying at start
            # (backoff 1, 2, ... 5 s) ends FATAL, which the drills report as "not healed".
            lines += [
                f"[program:{name}]", f"command={q(argv)}", f"directory={L.service}",
                "autostart=true", "autorestart=true", "startsecs=1", "startretries=5",
                "stopsignal=TERM", "stopwaitsecs=5",
                f"stdout_logfile={L.logs / (name + '.log')}", "stdout_logfile_backups=0",
                f"stderr_logfile={L.logs / (name + '.err.log')}", "stderr_logfile_backups=0",
                "environment=PYTHONUNBUFFERED=\"1\"", "",
            ]
        return "\n".join(lines)

    # ---------------------------------------------------------------- run
    def start(self) -> None:
        """supervisord (foreground, own session, recorded by PID) running the replicas."""
        L = self.layout
        L.service.mkdir(exist_ok=True)
        L.supervisor_conf.write_text(self.supervisord_conf())
        logf = open(L.logs / "supervisord.out", "ab")
        proc = subprocess.Popen([venv_bin("supervisord"), "-n", "-c", str(L.supervisor_conf)], stdout=logf,
                                stderr=logf, stdin=subprocess.DEVNULL, start_new_session=True, cwd=L.service)
        L.pidfile("supervisord").write_text(str(proc.pid))
        log.info("supervisord up (pid %s) with %s replicas of the demo service", proc.pid, len(self.replicas()))

    def wait(self, timeout: float = 60) -> None:
        """Until every replica answers /health with 200 (it reached the primary through the record)."""
        deadline = time.monotonic() + timeout
        for name, url, _port in self.replicas():
            while True:
                code, body = httpjson.call(url + "/health", timeout=2)
                if code == 200:
                    log.info("%s healthy on %s (pid %s, db %s)", name, url, body.get("pid"), body.get("db"))
                    break
                if not self.supervisord_pid() or time.monotonic() > deadline:
                    raise DrillError(f"demo service {name} not healthy on {url}: {body.get('error', body)}; see "
                                     f"{self.layout.logs / (name + '.err.log')} and "
                                     f"{self.layout.logs / 'supervisord.log'}")
                time.sleep(0.2)

    def supervisord_pid(self) -> int | None:
        """The recorded supervisord PID if it is running."""
        return recorded_pid(self.layout.pidfile("supervisord"))

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

    def stop(self) -> None:
        """SIGTERM to supervisord (it stops the replicas first), wait for it; strays by their own PID."""
        L = self.layout
        pid = read_pid(L.pidfile("supervisord"))
        if pid_alive(pid) and is_ours(pid, str(L.supervisor_conf)):
            os.kill(pid, signal.SIGTERM)
            if not wait_for_exit(pid, 300):
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
                if not wait_for_exit(spid, 50):
                    os.kill(spid, signal.SIGKILL)

    # ---------------------------------------------------------------- health
    def problems(self) -> list[str]:
        out = []
        if not self.supervisord_pid():
            out.append("supervisord (demo service) not running")
        for name, url, _port in self.replicas():
            code, _body = httpjson.call(url + "/health", timeout=2)
            if code == 0:  # a 503 answers: the service is up, its database may not be
                out.append(f"{name} not answering on {url}")
        return out

    def status(self) -> list[dict]:
        """supervisord's row, then one per replica with what its /health says."""
        sup_pid = self.supervisord_pid()
        rows = [{"name": "supervisord", "role": "demo service", "port": None, "pid": sup_pid,
                 "state": "" if sup_pid else "down"}]
        programs = self.supervised() if sup_pid else {}
        zones = self.zones()
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
            rows.append({"name": name, "role": f"replica, zone {zones[name]}" if name in zones else "demo service",
                         "port": port, "pid": pid, "state": state, "url": url, "zone": zones.get(name)})
        return rows
