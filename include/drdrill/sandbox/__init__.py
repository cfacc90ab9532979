"""The embedded sandbox: a real, local DR estate with no cloud account and no Docker.

It reads the sandbox estate file and builds what it describes, under a git-ignored directory:
a PostgreSQL 15 primary archiving through pgBackRest to repo1 (posix) and repo2 (S3 served
over TLS on loopback by moto, repo cipher aes-256-cbc), a streaming standby with its own
archive settings, demo data and backups. Servers run as the ``postgres`` user, are started in
the background with their own session, recorded by PID and stopped by PID.

The same moto server serves Route53: the hosted zone and the database's service record
(``failover.dns``, a CNAME to the primary's ``dns_name``). In front of the database run the
replicas of a demo service (`drdrill.sandbox.service`, "the application") under supervisord, one
per zone, as the estate's ``services:`` entry declares them (``process.replicas``); they find the
database through that record. In front of them, HAProxy serves the service's front door
(``services[].url``), what customers and the customer probe use.

One module per server: `postgres` (the nodes), `pgbackrest` (config, stanza, backups), `aws`
(moto's S3 and Route53), `services` (supervisord and the replicas), `haproxy` (the front door),
`sshd` (an OpenSSH server on loopback for the SSH runner, started on demand by `Sandbox.ssh`);
`layout` (paths, PIDs) and `ports` serve them all. `Sandbox` here only composes them in order.

This package is a tool that builds the estate; drill logic never imports it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

from drdrill.core.errors import DrillError
from drdrill.core.estate import Cluster, Estate, load_estate
from drdrill.core.paths import sandbox_dir
from drdrill.core.runner import LocalRunner
from drdrill.sandbox import ports
from drdrill.sandbox.aws import BUCKET, CONN_ID, REGION, Moto
from drdrill.sandbox.haproxy import HAPROXY, FrontDoor
from drdrill.sandbox.layout import PG_USER, Layout, pid_alive, postmaster_pid, write_as_postgres
from drdrill.sandbox.pgbackrest import PgBackRestRepos
from drdrill.sandbox.postgres import DEMO_SQL, PostgresNodes
from drdrill.sandbox.services import SERVICE_SCRIPT, DemoService, sandbox_services, venv_bin
from drdrill.sandbox.sshd import SandboxSSHD

# Tests and scripts import these from the package; the private name predates the split.
_pid_alive = pid_alive
__all__ = ["BUCKET", "CONN_ID", "DEMO_SQL", "PG_USER", "REGION", "SERVICE_SCRIPT", "Layout", "Sandbox",
           "postmaster_pid"]

log = logging.getLogger("drdrill.sandbox")


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
        source = self.estate.source
        self.postgres = PostgresNodes(self.cluster, self.layout, self.pg, spec.pgbench_scale, spec.tls_nodes)
        self.backrest = PgBackRestRepos(self.cluster, self.layout, spec.s3_port)
        self.aws = Moto(self.cluster, self.dns, self.layout, spec.s3_port, source,
                        [e for e in self.estate.backups.aws_backup if e.conn_id == CONN_ID])
        services = sandbox_services(self.estate, self.cluster, self.layout) if self.service else []
        self.services = DemoService(self.cluster, self.service, self.dns, self.layout, self.aws.endpoint, source,
                                    services)
        self.haproxy = FrontDoor(services, self.layout, source)
        self.sshd = SandboxSSHD(self.layout, spec.ssh_port)

    # ---------------------------------------------------------------- lifecycle
    def up(self) -> None:
        """Build the sandbox, or do nothing when it is already healthy."""
        ports.reserve(self._ports(), self.estate.scratch.port_range)
        problems = self.problems()
        if not problems:
            self.aws.create_backup_vaults()  # idempotent: a moto started before the estate named them
            log.info("sandbox already up at %s", self.layout.root)
            return
        if self.layout.root.exists() and any(self.layout.root.iterdir()):
            log.info("sandbox incomplete (%s): rebuilding", "; ".join(problems))
            self.down()
        self._preflight()
        t0 = time.monotonic()
        from drdrill.core import topology

        topology.reset(self.estate.state_store)
        from drdrill.drills.failover.region import clear_record

        clear_record(self.estate, self.cluster.name)  # a rebuilt sandbox has no region drill half done
        self.layout.create()
        self.aws.tls()
        self.aws.start()
        self.aws.create_records()
        self.aws.create_backup_vaults()
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
        if self.service:
            self.services.write_passfile(self.postgres.drill_password())
            self.services.start()  # they start while the backups run; waited for at the end
        br.run("check", timeout=120)
        self.backrest.full_backups(br)
        self.postgres.psql(primary, "INSERT INTO app.audit_log(event) VALUES ('after full backup')",
                           self.cluster.postgres.database)
        self.backrest.diff_backups(br)
        if self.cluster.dr is not None and self.cluster.dr.mode == "warm":
            self.dr_standby()
        self.services.wait()
        if self.haproxy.backends:
            self.haproxy.start()  # the front door, once every replica behind it answers
        log.info("sandbox up in %.1fs at %s", time.monotonic() - t0, self.layout.root)

    def _preflight(self) -> None:
        missing = [b for b in ("pgbackrest", "openssl", "runuser") if not shutil.which(b)]
        if self.service and not Path(venv_bin("supervisord")).exists():
            missing.append("supervisord (pip install supervisor)")
        if self.haproxy.backends and not Path(HAPROXY).exists():
            missing.append(f"{HAPROXY} (apt-get install -y haproxy)")
        if not (self.bin / "postgres").exists():
            missing.append(str(self.bin / "postgres"))
        if missing:
            raise DrillError(f"missing on this machine: {', '.join(missing)}; run `make install` "
                             f"(apt-get install -y pgbackrest postgresql-15 haproxy)")
        if os.geteuid() != 0:
            raise DrillError("the sandbox starts servers as the postgres user and needs root (runuser)")
        busy = [p for p in self._ports() if ports.in_use(p)]
        if busy:
            raise DrillError(f"port(s) {busy} are in use by another process; stop it or change the ports "
                             f"in {self.estate.source}")

    def _ports(self) -> list[int]:
        return [n.port for n in self.cluster.members] + [self.spec.s3_port, self.spec.ssh_port] + [
            p for _n, _u, p in self.replicas()] + self.haproxy.ports()

    def down(self) -> None:
        """Stop every sandbox server by PID and remove the sandbox (journals and generated secrets are kept).

        The secrets stay (mode 0600, in a 0700 directory) so that the connections already given to an
        Airflow (`airflow_env`: the drills' role's password) still work after the next `up`."""
        from drdrill.core.scratch import remove_all_scratch

        root = self.layout.root
        # The front door and the application first: they stop before the database, as in an orderly shutdown.
        self.haproxy.stop()
        self.services.stop()
        self.sshd.stop()
        if root.exists():
            remove_all_scratch(self.estate.scratch.root, self.pg, self.bin)
        still_running = self.postgres.stop_all()
        self.aws.stop()
        if still_running:  # never delete a data directory under a running postmaster
            raise DrillError(f"sandbox not removed: {', '.join(still_running)} still running after fast, immediate "
                             f"and SIGKILL; stop it by hand, then run `make sandbox-down` again")
        if root.exists():
            for child in root.iterdir():
                if child not in (self.layout.journal, self.layout.secrets):
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        log.info("sandbox removed (journals kept in %s, generated secrets in %s)", self.layout.journal,
                 self.layout.secrets)

    def problems(self) -> list[str]:
        """What is not running as it should; empty when the sandbox is healthy."""
        out = self.aws.problems() + self.postgres.problems() + self.backrest.problems()
        if self.service:
            out += self.services.problems() + self.haproxy.problems()
        return out

    def status(self) -> dict:
        """Servers, ports, PIDs and backups per repo, as data (printed by the CLI)."""
        servers = [self.aws.status(), *self.postgres.status()]
        if self.sshd.pid():
            servers.append(self.sshd.status())
        dns = None
        if self.service:
            servers += self.services.status() + self.haproxy.status()
            if self.aws.pid():
                try:
                    dns = self.dns_record()
                except Exception as e:  # noqa: BLE001 - shown to the user
                    dns = {"error": f"{type(e).__name__}: {e}"}
        problems = self.problems()
        backups = [] if problems else self.backrest.backups()
        return {"root": str(self.layout.root), "servers": servers, "dns": dns, "backups": backups,
                "problems": problems}

    # ---------------------------------------------------------------- what drills' tests and scripts use
    def airflow_env(self) -> dict[str, str]:
        """The Airflow connections to this sandbox, as env vars: moto (S3 and Route53 over TLS),
        ``pgbackrest_default`` (its stanza, for the example DAG and users' own DAGs), the
        PostgreSQL connections the estate names (``postgres.conn_id``, and each node's ``conn_id``:
        the drills' role and its generated password; ``sslmode=verify-full`` against the sandbox's CA
        for a node in ``tls_nodes``), and the SSH connections to the sandbox's sshd once `ssh` has
        started it. The password is only read from the sandbox's secrets here."""
        conn = {"conn_type": "pgbackrest", "login": PG_USER,
                "extra": {"stanza": self.cluster.pgbackrest.stanza, "config": str(self.cluster.pgbackrest.config)}}
        ssh = self.sshd.connections() if self.sshd.pid() else {}
        return {**self.aws.airflow_env(), "AIRFLOW_CONN_PGBACKREST_DEFAULT": json.dumps(conn), **self.pg_connections(),
                **ssh}

    def pg_connections(self) -> dict[str, str]:
        c = self.cluster
        out = {}

        def conn(extra: dict) -> str:
            return json.dumps({"conn_type": "postgres", "login": c.postgres.user,
                               "password": self.postgres.drill_password(), "schema": c.postgres.database,
                               "extra": extra})

        if c.postgres.conn_id:
            out[f"AIRFLOW_CONN_{c.postgres.conn_id.upper()}"] = conn({"sslmode": "prefer"})
        for n in c.nodes:
            if n.conn_id:
                tls = ({"sslmode": "verify-full", "sslrootcert": str(self.layout.ca.resolve())}
                       if n.name in self.spec.tls_nodes else {"sslmode": "prefer"})
                out[f"AIRFLOW_CONN_{n.conn_id.upper()}"] = conn(tls)
        return out

    def ssh(self, estate_file: Path | None = None) -> dict[str, str]:
        """Start the sandbox's sshd (idempotent); with ``estate_file``, write there the sandbox estate with
        SSH runners (`drdrill.sandbox.sshd.ssh_estate`: a connection per node and one for the backup
        host). Returns the SSH connections as env vars."""
        from drdrill.sandbox.sshd import ssh_estate

        self.sshd.start()
        env = self.sshd.connection()
        if estate_file is not None:
            assert self.estate.source is not None
            env.update(ssh_estate(self.estate.source, estate_file, [n.name for n in self.cluster.nodes], self.sshd))
        return env

    def dr_standby(self) -> dict:
        """The warm DR node: a standby of the DR repo alone, built the way the drill's failback rebuilds it."""
        from drdrill.drills.failover.region import DrSite

        self.layout.create()
        return DrSite(self.cluster).build_warm()

    def replicas(self) -> list[tuple[str, str, int]]:
        """(name, base URL, port) of each demo service replica: service-1, service-2, ..."""
        return self.services.replicas()

    def front_door(self, service: str | None = None) -> str:
        """The URL customers use (HAProxy's frontend) of ``service`` (default: the first the sandbox serves)."""
        urls = self.haproxy.urls()
        if not urls:
            raise DrillError(f"{self.estate.source}: no service of services: runs in the sandbox (its "
                             f"process.supervisor_conf must be {self.layout.supervisor_conf}): no front door")
        if service is None:
            return next(iter(urls.values()))
        if service not in urls:
            raise DrillError(f"no front door for service {service!r} in the sandbox; it serves {', '.join(urls)}")
        return urls[service]

    def supervised(self) -> dict[str, dict]:
        """supervisord's view of its programs (``supervisorctl status`` over its socket), by name."""
        return self.services.supervised()

    def s3_client(self):
        return self.aws.s3_client()

    def route53_client(self):
        return self.aws.route53_client()

    def dns_record(self) -> dict | None:
        """The service record as Route53 has it now (``value`` None when it is missing)."""
        return self.aws.dns_record()

    # Private names the integration tests reach for; they delegate to the module that owns the part.
    def _zone_id(self, r53) -> str | None:
        return self.aws.zone_id(r53)

    def _secret(self, name: str) -> str:
        return self.layout.secret(name)

    @staticmethod
    def _bin(name: str) -> str:
        return venv_bin(name)

    def _start_pg(self, node) -> int:
        return self.postgres.start(node)

    @staticmethod
    def _write_as_postgres(path: Path, text: str, mode: int = 0o640) -> None:
        write_as_postgres(path, text, mode)
