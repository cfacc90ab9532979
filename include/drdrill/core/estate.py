"""The estate: everything the drills know about, described in one YAML file and validated once.

The file is chosen by ``$DRDRILL_ESTATE`` (default: the sandbox estate). It is loaded when a
task first needs it, never at DAG parse time (the DAG files read only its ``schedules:``
section, tolerantly: `drdrill.core.schedules.read_schedules`). ``${VAR}`` in string values is expanded from the
environment; ``${DRDRILL_SANDBOX_DIR}`` defaults to the project's ``.sandbox`` directory.
Errors name the file, the field and the fix.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from drdrill.core.backups import Backups
from drdrill.core.errors import EstateError
from drdrill.core.paths import INSTALLED, estate_path, sandbox_dir
from drdrill.core.resilience import Resilience
from drdrill.core.schedules import Schedules, UnattendedWindow
from drdrill.core.services import ServiceTarget

DRILLS = (
    "dr_daily_verification",
    "dr_monthly_restore_test",
    "dr_quarterly_failover_drill",
    "dr_postgres_primary_failover",
)

Port = Annotated[int, Field(ge=1, le=65535)]


class _Model(BaseModel):
    # Unknown keys are almost always typos ("max_restor_minutes"): refuse them.
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunnerSpec(_Model):
    """How commands reach a host: a local process, SSH (an Airflow SSH connection), or a pod in Kubernetes.

    ``local`` runs on the Airflow worker itself: only for nodes whose host is this machine.
    ``ssh`` runs on the host of the Airflow SSH connection ``ssh_conn_id`` (one per host), as
    ``run_as`` through ``sudo -n -u`` when that differs from the connection's login.
    """

    kind: Literal["local", "ssh", "kubernetes"] = "local"
    run_as: str | None = Field(None, description="OS user for pgBackRest/PostgreSQL commands (local: runuser "
                               "when the worker is root; ssh: sudo -n -u when the SSH login differs)")
    ssh_conn_id: str | None = Field(None, description="ssh: the Airflow SSH connection of the host")
    kubernetes_conn_id: str | None = None
    namespace: str | None = None
    pod: str | None = None
    container: str | None = None

    @model_validator(mode="after")
    def _needs(self) -> RunnerSpec:
        if self.kind == "ssh" and not self.ssh_conn_id:
            raise ValueError("runner kind 'ssh' needs ssh_conn_id (an Airflow SSH connection id)")
        if self.kind == "kubernetes" and not (self.namespace and self.pod):
            raise ValueError("runner kind 'kubernetes' needs namespace and pod")
        return self


class Node(_Model):
    """One PostgreSQL server of a cluster."""

    name: str
    role: Literal["primary", "standby"]
    host: str
    port: Port = 5432
    data_dir: Path | None = Field(None, description="PGDATA on the host (needed for local actions)")
    socket_dir: Path | None = None
    dns_name: str | None = Field(None, description="what the service record points at while this node is primary")
    log_file: Path | None = Field(None, description="server log for pg_ctl start (default: <data_dir>/pg_ctl.log)")
    runner: RunnerSpec | None = Field(None, description="where this node's commands run (pg_ctl, pg_rewind, kill, "
                                      "a standby restore); default: the cluster's runner")
    conn_id: str | None = Field(None, description="Airflow Postgres connection for this node only (e.g. its own "
                                "TLS settings); default: the cluster's postgres.conn_id")
    region: str | None = Field(None, description="the region (or site) the node runs in; required with the "
                               "cluster's dr: section")


class Repo(_Model):
    """A pgBackRest repository as the stanza's config numbers it (repo1, repo2...)."""

    index: int = Field(ge=1, le=256)
    type: Literal["posix", "s3", "gcs", "azure", "cifs", "sftp"]
    description: str = ""
    max_backup_age_hours: dict[Literal["full", "diff", "incr"], float] | None = Field(
        None, description="replaces the cluster's thresholds for this repo (e.g. full-only offsite copy)")
    probe_timeout_seconds: float = Field(
        3, ge=0, le=60, description="remote repos (s3, gcs, azure, sftp): the daily verification first asks the "
        "endpoint, and runs no pgBackRest command on a repo that does not answer within this; 0 = do not ask")
    region: str | None = Field(None, description="the region the repo's storage is in; required with the "
                               "cluster's dr: section (the DR region needs a repo of its own)")
    pitr_window_hours: float | None = Field(None, gt=0, description="replaces targets.pitr_window_hours for this "
                                            "repo (e.g. a shorter-retention copy)")


class PgBackRest(_Model):
    stanza: str
    config: Path | None = Field(None, description="pgbackrest.conf on the database host; holds the secrets")
    process_max: int = Field(2, ge=1, le=64)
    command_timeout_seconds: float = Field(
        120, gt=0, le=3600, description="the daily verification's check, info and repo-ls are killed after this "
        "and fail naming the command (pgBackRest retries an unreachable store for minutes)")
    repos: list[Repo] = Field(min_length=1)
    runner: RunnerSpec | None = Field(
        None, description="the backup host: where the restore test restores and runs its scratch server, and "
        "where info, verify, repo-ls and check run; default: the current primary's runner")

    def repo(self, index: int) -> Repo:
        for r in self.repos:
            if r.index == index:
                return r
        known = ", ".join(str(r.index) for r in self.repos)
        raise EstateError(f"stanza {self.stanza!r} has no repo{index}; the estate lists repo {known}")


class Postgres(_Model):
    bin_dir: Path = Path("/usr/lib/postgresql/15/bin")
    database: str = "postgres"
    user: str = Field("postgres", description="login when the connection names none")
    conn_id: str | None = Field(None, description="Airflow Postgres connection: login, password, sslmode and "
                                "the other libpq options of every session the drills open")


class Targets(_Model):
    """Targets and thresholds every drill compares its measurements with."""

    rpo_minutes: float = Field(5, gt=0)
    rto_minutes: float = Field(30, gt=0)
    max_backup_age_hours: dict[Literal["full", "diff", "incr"], float] = Field(
        default_factory=lambda: {"full": 192.0, "diff": 36.0})
    max_wal_archive_lag_seconds: float = Field(300, gt=0)
    max_archive_failures: int = Field(0, ge=0)
    max_ready_wal_files: int = Field(16, ge=0)
    max_replication_lag_bytes: int = Field(16 * 1024 * 1024, ge=0)
    max_replication_lag_seconds: float = Field(60, gt=0)
    max_restore_minutes: float = Field(60, gt=0)
    pitr_window_hours: float | None = Field(
        168, gt=0, description="every repo can recover any second of at least this many past hours (continuous WAL "
        "from a backup this old to the newest segment); the seed's 7 days. null: not checked")


class RestoreTest(_Model):
    """What the monthly restore test proves on the restored copy."""

    critical_tables: list[str] = Field(default_factory=list)
    row_count_tolerance: dict[str, int] = Field(default_factory=dict, description="table -> allowed +/- rows")
    exclude_schemas: list[str] = Field(default_factory=list)

    @field_validator("critical_tables")
    @classmethod
    def _qualified(cls, v: list[str]) -> list[str]:
        bad = [t for t in v if "." not in t]
        if bad:
            raise ValueError(f"tables must be schema-qualified (e.g. public.orders), got {bad}")
        return v


class Dns(_Model):
    """The service endpoint applications resolve: a Route53 record switched to the new primary."""

    conn_id: str = Field("aws_default", description="Airflow AWS connection (endpoint_url in its extra for moto)")
    zone: str = Field(description="hosted zone name, e.g. prod.example.com")
    hosted_zone_id: str | None = Field(None, description="needed only when several zones share the name")
    record: str = Field(description="the service record, e.g. db.prod.example.com")
    type: Literal["CNAME", "A"] = "CNAME"
    ttl: int = Field(60, ge=0, le=86400)
    insync_timeout_seconds: float = Field(300, gt=0)

    @field_validator("zone", "record")
    @classmethod
    def _fqdn(cls, v: str) -> str:
        return v.rstrip(".").lower()

    @model_validator(mode="after")
    def _in_zone(self) -> Dns:
        if not (self.record == self.zone or self.record.endswith("." + self.zone)):
            raise ValueError(f"record {self.record!r} is not inside zone {self.zone!r}")
        return self


class Service(_Model):
    """The application in front of the database: the customer-visible probe and the canary path."""

    urls: list[str] = Field(min_length=1, description="base URLs of the replicas (or one load balancer)")
    health_path: str = "/health"
    write_path: str = "/write"
    timeout_seconds: float = Field(2, gt=0)


class Notify(_Model):
    """Where the runbook's communication messages go; every message is also logged."""

    kind: Literal["log", "smtp", "slack"]
    conn_id: str | None = None
    to: list[str] = Field(default_factory=list, description="smtp: recipients")
    channel: str | None = Field(None, description="slack: channel")

    @model_validator(mode="after")
    def _needs(self) -> Notify:
        if self.kind in ("smtp", "slack") and not self.conn_id:
            raise ValueError(f"notify kind {self.kind!r} needs conn_id (an Airflow connection)")
        if self.kind == "smtp" and not self.to:
            raise ValueError("notify kind 'smtp' needs 'to' (recipients)")
        return self


class Failover(_Model):
    """The PostgreSQL primary failure runbook for this cluster (both failover DAGs)."""

    health_check_failed_minutes: float = Field(2, gt=0, description="incident trigger: primary down this long")
    health_check_interval_seconds: float = Field(10, gt=0)
    max_standby_lag_bytes: int | None = Field(None, ge=0, description="default: targets.max_replication_lag_bytes")
    max_standby_lag_seconds: float | None = Field(None, gt=0,
                                                  description="default: targets.max_replication_lag_seconds")
    promote_timeout_seconds: float = Field(300, gt=0)
    new_standby: Literal["rewind", "restore"] = Field(
        "rewind", description="rebuild the old primary as standby: pg_rewind, or pgBackRest --type=standby")
    standby_streaming_timeout_seconds: float = Field(600, gt=0)
    canary_interval_ms: int = Field(100, ge=10, le=10000)
    dns: Dns | None = None
    service: Service | None = None
    notify: list[Notify] = Field(default_factory=lambda: [Notify(kind="log")])
    incident_contact: str = Field("on-call engineer (PagerDuty)", description="named in every message")


class SandboxSpec(_Model):
    """Only read by the sandbox bring-up, never by drill logic."""

    pgbench_scale: int = Field(20, ge=1)
    s3_port: Port = 55443
    ssh_port: Port = Field(55622, description="the sandbox's sshd (started on demand, for the SSH runner's tests)")
    tls_nodes: list[str] = Field(default_factory=list, description="nodes served over TLS (ssl=on, a certificate "
                                 "signed by the sandbox's CA); give each a conn_id (verify-full)")


class DrNode(_Model):
    """The recovery node in the DR region: it does not exist (cold) or is an archive-recovery standby (warm)."""

    name: str
    host: str
    port: Port = 5432
    data_dir: Path = Field(description="PGDATA on the DR host: the cold drill restores into it (it must be absent "
                           "or empty before the drill), the warm standby lives in it")
    socket_dir: Path | None = None
    dns_name: str | None = Field(None, description="what the service record points at while this node is primary")
    log_file: Path | None = None
    runner: RunnerSpec | None = Field(None, description="where the DR node's commands run (pgBackRest restore, "
                                      "pg_ctl); default: the cluster's runner")
    conn_id: str | None = Field(None, description="Airflow Postgres connection for the DR node only")


class DisasterRecovery(_Model):
    """Where the cluster comes back when its whole primary region is lost: a node in the DR region, recovered
    from the repo in that region alone (the region failover drill, scope ``region``)."""

    region: str = Field(description="the DR region; it must differ from every node's region")
    mode: Literal["cold", "warm"] = Field(
        "cold", description="cold: the DR node is restored from the DR repo by the drill; warm: it is a standby "
        "kept current by archive recovery from the DR repo alone (restore_command = archive-get), promoted by it")
    repo: int | None = Field(None, description="the repo in the DR region (default: the only repo whose region "
                             "is the DR region)")
    node: DrNode
    pgbackrest_config: Path = Field(description="pgbackrest.conf on the DR host; it must name only the DR repo "
                                    "(repo1 is in the lost region) and holds its secrets")
    settings: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="PostgreSQL settings of the DR node, written to its postgresql.auto.conf "
        "after a restore (port, listen_addresses, unix_socket_directories and its archive/restore commands "
        "through pgbackrest_config are set by the drill)")
    replay_timeout_seconds: float = Field(600, gt=0, description="the DR node must have replayed what the DR repo "
                                          "holds within this after its start (cold) or the fault (warm)")
    max_replay_lag_seconds: float | None = Field(
        None, gt=0, description="warm: the standby's replay may be this far behind the DR repo's newest WAL "
        "(default: targets.rpo_minutes)")
    failback_backup: Literal["incr", "diff", "full", "none"] = Field(
        "incr", description="after the failback, a backup of this type to every repo: the lost region's repo "
        "never received the DR timeline's WAL")


class Cluster(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    description: str = ""
    unattended: bool = Field(False, description="true skips human approval gates (sandbox only)")
    # Scheduled failover drills inside this window need no approval (drdrill.core.schedules).
    unattended_window: UnattendedWindow | None = None
    allowed_drills: list[str] = Field(default_factory=list)
    runner: RunnerSpec = Field(RunnerSpec(), description="where commands run for nodes without their own runner "
                               "(and pgBackRest without pgbackrest.runner)")
    postgres: Postgres = Postgres()
    nodes: list[Node] = Field(min_length=1)
    pgbackrest: PgBackRest
    targets: Targets = Targets()
    restore_test: RestoreTest = RestoreTest()
    failover: Failover | None = None
    dr: DisasterRecovery | None = Field(None, description="the DR region and its recovery node (region failover)")
    sandbox: SandboxSpec | None = None

    @field_validator("allowed_drills")
    @classmethod
    def _known_drills(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - set(DRILLS))
        if unknown:
            raise ValueError(f"unknown drill(s) {unknown}; known drills are {list(DRILLS)}")
        return v

    @model_validator(mode="after")
    def _one_primary(self) -> Cluster:
        primaries = [n.name for n in self.nodes if n.role == "primary"]
        if len(primaries) != 1:
            raise ValueError(f"a cluster needs exactly one node with role 'primary', found {primaries or 'none'}")
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"node names must be unique, got {names}")
        return self

    @model_validator(mode="after")
    def _local_only_here(self) -> Cluster:
        from drdrill.core.hosts import is_this_machine

        for n in self.nodes:
            spec = self.runner_of(n)
            if spec.kind == "local" and not is_this_machine(n.host):
                where = f"nodes[{n.name}].runner" if n.runner else "runner"
                raise ValueError(
                    f"{where}: kind 'local' runs commands on this Airflow worker, but node {n.name}'s host "
                    f"{n.host!r} is not this machine; a local runner would act on this machine's disk, not "
                    f"on {n.name}. Use kind 'ssh' with an Airflow SSH connection to {n.host} (ssh_conn_id), "
                    f"per node or for the cluster")
        return self

    @model_validator(mode="after")
    def _dr_region(self) -> Cluster:
        d = self.dr
        if d is None:
            return self
        unnamed = [f"nodes[{n.name}]" for n in self.nodes if not n.region] + [
            f"pgbackrest.repos[{r.index}]" for r in self.pgbackrest.repos if not r.region]
        if unnamed:
            raise ValueError(f"dr: every node and repo must name its region; add region: to {', '.join(unnamed)}")
        same = [n.name for n in self.nodes if n.region == d.region]
        if same:
            raise ValueError(f"dr.region {d.region!r} is the region of node(s) {same}: the DR region must be another "
                             f"region than the nodes it replaces; name the recovery region there")
        in_dr = [r.index for r in self.pgbackrest.repos if r.region == d.region]
        if d.repo is None and len(in_dr) != 1:
            raise ValueError(f"dr: {'no repo is' if not in_dr else f'repos {in_dr} are'} in the DR region "
                             f"{d.region!r}: the region failover restores from a repo that survives the primary "
                             f"region; give that repo region: {d.region} (or set dr.repo)")
        if d.repo is not None:
            repo = next((r for r in self.pgbackrest.repos if r.index == d.repo), None)
            if repo is None or repo.region != d.region:
                where = "not a repo of the stanza" if repo is None else f"in region {repo.region!r}"
                raise ValueError(f"dr.repo: repo{d.repo} is {where}; it must be a repo in the DR region {d.region!r}")
        if d.node.name in {n.name for n in self.nodes}:
            raise ValueError(f"dr.node.name {d.node.name!r} is already a node of the cluster; give the DR node its "
                             f"own name")
        for n in self.nodes:
            if n.host == d.node.host and n.port == d.node.port:
                raise ValueError(f"dr.node: port {d.node.port} on {d.node.host} is node {n.name}'s; give the DR node "
                                 f"a port of its own")
            if n.host == d.node.host and n.data_dir and n.data_dir == d.node.data_dir:
                raise ValueError(f"dr.node.data_dir {d.node.data_dir} is node {n.name}'s data directory on the same "
                                 f"host: the cold drill restores into it; give the DR node a directory of its own")
        spec = d.node.runner or self.runner
        from drdrill.core.hosts import is_this_machine

        if spec.kind == "local" and not is_this_machine(d.node.host):
            raise ValueError(f"dr.node.runner: kind 'local' runs on this Airflow worker, but the DR node's host "
                             f"{d.node.host!r} is not this machine; use kind 'ssh' with an SSH connection to it")
        return self

    @property
    def dr_repo(self) -> int | None:
        """The repo in the DR region (None without a dr: section)."""
        if self.dr is None:
            return None
        return self.dr.repo or next(r.index for r in self.pgbackrest.repos if r.region == self.dr.region)

    @property
    def dr_node(self) -> Node | None:
        """The DR node as a node of the cluster (a standby in the DR region), or the current node of that name
        when a region failover made it primary."""
        if self.dr is None:
            return None
        for n in self.nodes:
            if n.name == self.dr.node.name:
                return n
        return Node(role="standby", region=self.dr.region, **self.dr.node.model_dump(exclude_none=True))

    @property
    def primary_region(self) -> str | None:
        """The region the DR region stands in for: its nodes' (None without regions)."""
        dr = self.dr.region if self.dr else None
        return next((n.region for n in self.nodes if n.region and n.region != dr), None)

    def runner_of(self, node: Node | str) -> RunnerSpec:
        """Where ``node``'s commands run: its own ``runner``, else the cluster's."""
        n = self.node(node) if isinstance(node, str) else node
        return n.runner or self.runner

    @property
    def backup_runner(self) -> RunnerSpec:
        """Where pgBackRest reads the repos (restore tests, info, verify, check): ``pgbackrest.runner``,
        else the current primary's runner."""
        return self.pgbackrest.runner or self.runner_of(self.primary)

    @property
    def primary(self) -> Node:
        return next(n for n in self.nodes if n.role == "primary")

    @property
    def standbys(self) -> list[Node]:
        return [n for n in self.nodes if n.role == "standby"]

    def allows(self, drill: str) -> bool:
        return drill in self.allowed_drills

    @property
    def members(self) -> list[Node]:
        """Every node, the DR node included (what the service record may point at)."""
        dr = self.dr_node
        return [*self.nodes, *([dr] if dr is not None and dr.name not in {n.name for n in self.nodes} else [])]

    def node(self, name: str) -> Node:
        for n in self.members:
            if n.name == name:
                return n
        raise EstateError(f"cluster {self.name!r} has no node {name!r}; its nodes are "
                          f"{', '.join(n.name for n in self.members)}")

    def with_primary(self, name: str) -> Cluster:
        """The same cluster with ``name`` as primary and every other node as standby.

        The DR node (a region failover made it primary) joins the nodes as their primary."""
        members = self.members if self.dr and name == self.dr.node.name else self.nodes
        self.node(name)
        nodes = [n.model_copy(update={"role": "primary" if n.name == name else "standby"}) for n in members]
        return self.model_copy(update={"nodes": nodes})


class Scratch(_Model):
    """Where restore tests may create throw-away servers. Never a production path or port."""

    root: Path
    port_range: tuple[Port, Port] = (55500, 55599)
    host: str = "127.0.0.1"
    disk_margin_percent: float = Field(
        20, ge=0, le=1000, description="restore preflight: the scratch root needs the backup's database size plus "
        "this much free, or the restore is refused before anything is written")

    @model_validator(mode="after")
    def _range(self) -> Scratch:
        lo, hi = self.port_range
        if lo > hi:
            raise ValueError(f"port_range must be [low, high], got [{lo}, {hi}]")
        return self


def _object_url(v: str) -> str:
    if not re.match(r"^(file|s3|gs|gcs|abfs|az)://", v):
        raise ValueError(f"location must be a URL like file:///var/lib/drdrill/journal or "
                         f"s3://bucket/drdrill, got {v!r}")
    return v


class Journal(_Model):
    location: str = Field(description="file:///dir or s3://bucket/prefix (through ObjectStoragePath)")
    conn_id: str | None = Field(None, description="Airflow connection for object storage (e.g. aws_default)")

    @field_validator("location")
    @classmethod
    def _scheme(cls, v: str) -> str:
        return _object_url(v)


class State(_Model):
    """Where drills record what changes at run time (who is primary after a failover)."""

    location: str = Field(description="file:///dir or s3://bucket/prefix (through ObjectStoragePath)")
    conn_id: str | None = None

    @field_validator("location")
    @classmethod
    def _scheme(cls, v: str) -> str:
        return _object_url(v)


class Estate(_Model):
    version: Literal[1] = 1
    name: str
    journal: Journal
    state: State | None = Field(None, description="default: <journal.location>/_state")
    scratch: Scratch
    clusters: list[Cluster] = Field(min_length=1)
    # What customers use and how far the chaos drills may hurt it (drdrill.core.services).
    services: list[ServiceTarget] = Field(default_factory=list)
    # When drills run, in which timezone (drdrill.core.schedules); also read at DAG parse time.
    schedules: Schedules = Schedules()
    # Velero, AWS Backup, S3 Object Lock and the 3-2-1-1-0 scorecard (drdrill.core.backups).
    backups: Backups = Backups()
    # RTO / RPO targets per disruption type, checked against measured drills (drdrill.core.resilience).
    resilience: Resilience = Resilience()
    source: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _unique(self) -> Estate:
        names = [c.name for c in self.clusters]
        if len(set(names)) != len(names):
            raise ValueError(f"cluster names must be unique, got {names}")
        services = [s.name for s in self.services]
        if len(set(services)) != len(services):
            raise ValueError(f"service names must be unique, got {services}")
        for s in self.services:
            if s.cluster and s.cluster not in names:
                raise ValueError(f"services[{s.name}].cluster {s.cluster!r} is not a cluster of this estate "
                                 f"({', '.join(names)}): name one of them or remove the field")
            if s.postgres:
                if s.postgres.cluster not in names:
                    raise ValueError(f"services[{s.name}].postgres.cluster {s.postgres.cluster!r} is not a cluster "
                                     f"of this estate ({', '.join(names)})")
                c = self.cluster(s.postgres.cluster)
                nodes = {n.name: n for n in c.nodes}
                for n in s.postgres.nodes:
                    if n not in nodes:
                        raise ValueError(f"services[{s.name}].postgres.nodes: {n!r} is not a node of cluster "
                                         f"{c.name} ({', '.join(nodes)})")
                    if nodes[n].role == "primary":
                        raise ValueError(f"services[{s.name}].postgres.nodes: {n} is the primary of {c.name}; the "
                                         f"pod kill kills standbys only (the failover drill is the primary's)")
        for name in self.resilience.clusters:
            if name not in names:
                raise ValueError(f"resilience.clusters: {name!r} is not a cluster of this estate ({', '.join(names)}): "
                                 f"name one of them or remove the entry")
        for c in self.clusters:
            d = c.dr
            if d is None:
                continue
            for other in self.clusters:
                for n in other.nodes:
                    if other is not c and n.host == d.node.host and (
                            n.port == d.node.port or (n.data_dir and n.data_dir == d.node.data_dir)):
                        what = f"port {n.port}" if n.port == d.node.port else f"data directory {n.data_dir}"
                        raise ValueError(f"clusters[{c.name}].dr.node: {what} on {n.host} is node {n.name}'s of "
                                         f"cluster {other.name}; give the DR node its own")
            lo, hi = self.scratch.port_range
            if self.scratch.host == d.node.host and lo <= d.node.port <= hi:
                raise ValueError(f"clusters[{c.name}].dr.node.port {d.node.port} is inside scratch.port_range "
                                 f"[{lo}, {hi}]: a restore test could take it; move one of them")
        for kind in ("velero", "aws_backup", "object_lock"):
            for e in getattr(self.backups, kind):
                for copy in e.copies:
                    if copy.cluster not in names:
                        raise ValueError(f"backups.{kind}[{e.name}].copies: cluster {copy.cluster!r} is not a cluster "
                                         f"of this estate ({', '.join(names)})")
                    if copy.repo is not None:
                        repos = [r.index for r in self.cluster(copy.cluster).pgbackrest.repos]
                        if copy.repo not in repos:
                            raise ValueError(f"backups.{kind}[{e.name}].copies: repo {copy.repo} is not a pgBackRest "
                                             f"repo of cluster {copy.cluster} (repos {repos})")
        from drdrill.core.hosts import is_this_machine

        for c in self.clusters_for("dr_monthly_restore_test"):
            if c.backup_runner.kind == "local" and not is_this_machine(self.scratch.host):
                raise ValueError(f"scratch.host {self.scratch.host!r} is not this machine, but cluster {c.name}'s "
                                 f"restore test runs its scratch server here (local runner); set "
                                 f"clusters[{c.name}].pgbackrest.runner to kind 'ssh' for the backup host, or "
                                 f"scratch.host to this machine's address")
        return self

    def cluster(self, name: str) -> Cluster:
        for c in self.clusters:
            if c.name == name:
                return c
        known = ", ".join(c.name for c in self.clusters)
        raise EstateError(f"unknown cluster {name!r} in estate {self.source}: the estate defines {known}. "
                          f"Pick one of those or add the cluster to the estate file.")

    def service(self, name: str) -> ServiceTarget:
        for s in self.services:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.services) or "none"
        raise EstateError(f"unknown service {name!r} in estate {self.source}: the estate's services are {known}. "
                          f"Pick one of those or add it under services: in the estate file.")

    def services_for(self, drill: str) -> list[ServiceTarget]:
        return [s for s in self.services if s.allows(drill)]

    @property
    def state_store(self) -> State:
        return self.state or State(location=self.journal.location.rstrip("/") + "/_state",
                                   conn_id=self.journal.conn_id)

    def clusters_for(self, drill: str) -> list[Cluster]:
        return [c for c in self.clusters if c.allows(drill)]


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_vars(value: Any, path: Path) -> Any:
    """``${VAR}`` in every string of ``value`` from the environment; `EstateError` naming an unset one."""
    return _expand(value, path)


def _expand(value: Any, path: Path) -> Any:
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name == "DRDRILL_SANDBOX_DIR":
                return str(sandbox_dir())
            if name not in os.environ:
                raise EstateError(f"{path}: ${{{name}}} is used but not set in the environment; "
                                  f"export it or write the value into the estate file")
            return os.environ[name]
        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, path) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, path) for v in value]
    return value


def _field_path(loc: tuple[Any, ...], raw: Any) -> str:
    """Turn pydantic's location into estate words: clusters[main].targets.rpo_minutes."""
    out: list[str] = []
    node = raw
    for part in loc:
        if isinstance(part, int) and isinstance(node, list):
            item = node[part] if part < len(node) else None
            label = item.get("name") if isinstance(item, dict) and "name" in item else part
            out[-1] = f"{out[-1]}[{label}]" if out else f"[{label}]"
            node = item
        else:
            out.append(str(part))
            node = node.get(part) if isinstance(node, dict) else None
    return ".".join(out)


def parse_estate(text: str, path: Path) -> Estate:
    """Validate estate YAML text; raise `EstateError` naming file, field and fix."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise EstateError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}. "
                          f"Fix the syntax (indentation, quotes, colons).") from None
    if not isinstance(raw, dict):
        raise EstateError(f"{path}: expected a mapping with keys name, journal, scratch, clusters; "
                          f"found {type(raw).__name__}")
    raw = _expand(raw, path)
    try:
        return Estate.model_validate({**raw, "source": path})
    except ValidationError as e:
        lines = []
        for err in e.errors():
            field = _field_path(err["loc"], raw) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                msg = "required field is missing: add it"
            elif err["type"] == "extra_forbidden":
                msg = "unknown field: check the spelling against include/estate/README.md"
            lines.append(f"  {field}: {msg}")
        raise EstateError(f"{path}: the estate file is invalid:\n" + "\n".join(lines)) from None


@lru_cache(maxsize=8)
def _load_cached(path: Path, mtime_ns: int) -> Estate:
    return parse_estate(path.read_text(), path)


def load_estate(path: Path | str | None = None, *, topology: bool = True) -> Estate:
    """Load and validate the estate (cached per file version).

    With ``topology`` (the default) each cluster's roles are the ones recorded by the last
    failover (`drdrill.core.topology`); without it, the roles as written in the file.
    """
    if not path and not os.environ.get("DRDRILL_ESTATE") and INSTALLED:
        raise EstateError("DRDRILL_ESTATE is not set: drdrill is installed as a package, which has no "
                          "sandbox estate to fall back on; set DRDRILL_ESTATE to your estate file on every "
                          "Airflow component that runs drdrill tasks (workers, triggerer)")
    p = Path(path) if path else estate_path()
    try:
        st = p.stat()
    except FileNotFoundError:
        raise EstateError(f"estate file {p} does not exist; set DRDRILL_ESTATE to your estate file "
                          f"(default: include/estate/sandbox.yaml)") from None
    estate = _load_cached(p.resolve(), st.st_mtime_ns)
    if not topology:
        return estate
    from drdrill.core import topology as topo

    return topo.apply(estate)


def json_schema() -> dict[str, Any]:
    """The estate file's JSON schema (what `python -m drdrill estate schema` prints)."""
    schema = Estate.model_json_schema()
    schema["properties"].pop("source", None)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "drdrill estate"
    schema["description"] = ("Everything the drills know about: database clusters, backup repos, DNS, services. "
                             "See include/estate/README.md.")
    return schema
