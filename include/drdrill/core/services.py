"""The estate's ``services:`` section: what customers use, and how far the chaos drills may hurt it.

A service is judged by what its customers see: ``url`` is its front door (the sandbox's HAProxy,
production's public URL or load balancer), where the customer probe sends a steady stream of
writes and reads before, during and after every fault. Its chaos targets:

- ``process``: replicas run by supervisord on a host reached through a runner (the sandbox's
  demo service, one replica per zone): the weekly pod kill SIGKILLs one, the AZ failure stops
  the replicas of one zone;
- ``kubernetes``: a workload behind a label selector in a namespace of a Kubernetes cluster
  (an Airflow Kubernetes connection): the weekly pod kill deletes one pod;
- ``az_failure``: how the monthly AZ failure runs: ``sandbox`` (stops the ``process`` replicas of
  one zone) or ``fis`` (an AWS FIS experiment template stopping ECS tasks in one AZ).

Guards every chaos drill applies (`drdrill.drills.chaos.guards`): the time window, the
allow-list of drills, ``unattended`` (else a human approves), the blast radius (``max_victims``,
``percent``), and the kill switch and target locks every drill shares. The section is validated
with the rest of the estate (`drdrill.core.estate`); errors name the field and the fix.
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drdrill.core.schedules import UnattendedWindow

CHAOS_DRILLS = ("dr_weekly_pod_kill", "dr_monthly_az_failure")

_ISO_DURATION = re.compile(r"^P(?!$)(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def iso_duration_seconds(text: str) -> float:
    """Seconds of an ISO 8601 duration as FIS takes it (``PT5M``, ``PT90S``, ``PT1H30M``, ``P1D``)."""
    m = _ISO_DURATION.match(str(text).strip().upper())
    if not m:
        raise ValueError(f"duration {text!r} is not an ISO 8601 duration: write it like PT5M (5 minutes), "
                         f"PT90S or PT1H")
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    seconds = d * 86400 + h * 3600 + mi * 60 + s
    if seconds <= 0:
        raise ValueError(f"duration {text!r} is zero: give a positive duration like PT5M")
    return seconds


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _http_url(v: str) -> str:
    if not re.match(r"^https?://[^/\s]+", v):
        raise ValueError(f"expected an http(s) URL like http://127.0.0.1:55600, got {v!r}")
    return v.rstrip("/")


class Alarm(_Model):
    """A CloudWatch alarm on the load balancer's 5xx (an extra signal beside the probe)."""

    name: str = Field(description="the alarm's name")
    conn_id: str = Field("aws_default", description="Airflow AWS connection")
    region: str | None = None


class Probe(_Model):
    """The customer probe (`drdrill.core.probe.CustomerProbe`) and what customers may see."""

    rate: float = Field(20, gt=0, le=2000, description="requests per second through the front door")
    write_path: str | None = Field("/write", description="POST path of a customer write (null: reads only)")
    read_path: str = "/read"
    timeout_seconds: float = Field(2, gt=0, description="an answer later than this is a customer-visible error")
    concurrency: int = Field(8, ge=1, le=256)
    baseline_seconds: float = Field(5, gt=0, description="steady state: probed this long before the fault")
    after_seconds: float = Field(5, ge=0, description="probed this long after recovery (latency back to normal)")
    max_errors: int = Field(0, ge=0, description="customer-visible errors tolerated over the whole fault; more "
                            "fails the drill (and aborts the observation early)")
    max_p99_ms: float = Field(1000, gt=0, description="p99 latency bound during and after the fault")
    alarm: Alarm | None = Field(None, description="optional CloudWatch alarm that must not fire")


class Replica(_Model):
    """One replica of a ``process`` target: a supervisord program with its own health URL."""

    program: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="supervisord program name")
    zone: str = Field(pattern=r"^[A-Za-z0-9_-]+$", description="availability zone (a, b, c or eu-west-1a)")
    url: str = Field(description="the replica's own base URL (health checks bypass the front door)")
    tags: dict[str, str] = Field(default_factory=dict, description="e.g. {Environment: production}")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _http_url(v)


class ProcessTarget(_Model):
    """Replicas run by supervisord on one host (restarted by supervisord when killed)."""

    supervisor_conf: str = Field(description="supervisord's config file on that host (supervisorctl -c)")
    runner: Literal["local", "ssh"] = "local"
    ssh_conn_id: str | None = Field(None, description="runner ssh: the Airflow SSH connection of the host")
    run_as: str | None = Field(None, description="OS user for supervisorctl and kill (default: the runner's)")
    health_path: str = "/health"
    replicas: list[Replica] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> ProcessTarget:
        if self.runner == "ssh" and not self.ssh_conn_id:
            raise ValueError("runner 'ssh' needs ssh_conn_id (an Airflow SSH connection id)")
        names = [r.program for r in self.replicas]
        if len(set(names)) != len(names):
            raise ValueError(f"replica programs must be unique, got {names}")
        return self

    def zones(self) -> list[str]:
        return sorted({r.zone for r in self.replicas})


class KubernetesTarget(_Model):
    """A workload's pods behind a label selector in one namespace."""

    conn_id: str = Field("kubernetes_default", description="Airflow Kubernetes connection")
    namespace: str
    selector: str = Field(min_length=1, description="label selector, e.g. app=web")
    namespaces_allowed: list[str] = Field(min_length=1, description="the only namespaces a pod may be killed in")
    min_pod_age_seconds: float = Field(300, ge=0, description="younger pods are never victims")
    grace_period_seconds: int | None = Field(None, ge=0, description="pod deletion grace (default: the pod's)")

    @model_validator(mode="after")
    def _allowed(self) -> KubernetesTarget:
        if self.namespace not in self.namespaces_allowed:
            raise ValueError(f"namespace {self.namespace!r} is not in namespaces_allowed "
                             f"{self.namespaces_allowed}: add it there deliberately or pick an allowed namespace")
        return self


class PostgresTarget(_Model):
    """The "instance" case: a PostgreSQL standby of an estate cluster, its postmaster killed with SIGKILL.

    Healed = a new postmaster on the node and the standby streaming from the primary again. Who
    restarts it: ``auto`` (production: systemd ``Restart=on-failure``, Patroni; the drill only
    watches) or ``drill`` (no init system supervises it, as on the sandbox: the drill starts it
    right after the kill, as systemd would).
    """

    cluster: str = Field(description="an estate cluster")
    nodes: list[str] = Field(default_factory=list, description="the standbys that may be killed (default: every "
                             "standby); the primary never is")
    restart: Literal["auto", "drill"] = "auto"


class Fis(_Model):
    """The AWS FIS experiment template of the AZ failure (created, or checked for drift, by the drill)."""

    conn_id: str = Field("aws_default", description="Airflow AWS connection")
    region: str | None = None
    template_name: str = Field(description="the template's Name tag; the drill finds it by this tag")
    role_arn: str = Field(description="IAM role FIS assumes to stop the tasks")
    ecs_cluster: str = Field(description="ECS cluster name or ARN")
    ecs_services: list[str] = Field(min_length=1, description="services that must be back at desired count")
    target_tags: dict[str, str] = Field(default_factory=lambda: {"Environment": "production"})
    zones: list[str] = Field(min_length=1, description="the AZs a run may pick from, e.g. [eu-west-1a, eu-west-1b]")
    stop_alarm_arn: str = Field(description="CloudWatch alarm ARN: the experiment's stop condition")


class AzFailure(_Model):
    """The monthly AZ failure: one zone's share of the service stopped for a while."""

    engine: Literal["sandbox", "fis"]
    percent: float = Field(33, description="share of the zone's replicas/tasks stopped, in (0, 100]")
    duration: str = Field("PT5M", description="ISO 8601 duration of the fault (FIS: the action's duration)")
    fis: Fis | None = None

    @field_validator("percent")
    @classmethod
    def _percent(cls, v: float) -> float:
        if not 0 < v <= 100:
            raise ValueError(f"percent must be in (0, 100], got {v:g}: e.g. 33 stops a third")
        return v

    @field_validator("duration")
    @classmethod
    def _duration(cls, v: str) -> str:
        iso_duration_seconds(v)
        return v

    @property
    def duration_seconds(self) -> float:
        return iso_duration_seconds(self.duration)

    def share(self, n: int) -> int:
        """How many of ``n`` replicas ``percent`` stops (at least one when there is one)."""
        return min(n, max(1, math.ceil(n * self.percent / 100 - 1e-9))) if n else 0


class ServiceTarget(_Model):
    """One entry of ``services:``."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    description: str = ""
    cluster: str | None = Field(None, description="the database cluster it uses: drills on either never overlap")
    url: str = Field(description="the front door customers use (the probe's target)")
    unattended: bool = Field(False, description="true: chaos runs without a human's approval")
    allowed_drills: list[str] = Field(default_factory=list, description=f"of {', '.join(CHAOS_DRILLS)}")
    window: UnattendedWindow | None = Field(None, description="when chaos may act (schedules.timezone); "
                                            "outside it a run is skipped. Default: always")
    heal_seconds: float = Field(300, gt=0, description="the service must be healthy again within this")
    max_victims: int = Field(1, ge=1, le=100, description="blast radius of one pod kill")
    probe: Probe = Probe()
    process: ProcessTarget | None = None
    kubernetes: KubernetesTarget | None = None
    postgres: PostgresTarget | None = None
    az_failure: AzFailure | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _http_url(v)

    @model_validator(mode="after")
    def _check(self) -> ServiceTarget:
        unknown = [d for d in self.allowed_drills if d not in CHAOS_DRILLS]
        if unknown:
            raise ValueError(f"allowed_drills {unknown} are not chaos drills: services take "
                             f"{', '.join(CHAOS_DRILLS)}")
        kinds = [k for k in ("process", "kubernetes", "postgres") if getattr(self, k)]
        if len(kinds) > 1:
            raise ValueError(f"give one pod-kill target kind (process, kubernetes or postgres), not {kinds}: "
                             f"describe each as its own service")
        if "dr_weekly_pod_kill" in self.allowed_drills and not kinds:
            raise ValueError("dr_weekly_pod_kill needs a target: add process (supervisord replicas), kubernetes "
                             "or postgres (a standby)")
        az = self.az_failure
        if "dr_monthly_az_failure" in self.allowed_drills and not az:
            raise ValueError("dr_monthly_az_failure needs az_failure (engine sandbox or fis)")
        if az and az.engine == "sandbox" and not self.process:
            raise ValueError("az_failure engine 'sandbox' stops process replicas: add process")
        if az and az.engine == "fis" and not az.fis:
            raise ValueError("az_failure engine 'fis' needs az_failure.fis (the experiment template)")
        if self.process and self.max_victims > len(self.process.replicas) - 1:
            raise ValueError(f"max_victims {self.max_victims} would leave no replica of {len(self.process.replicas)} "
                             f"serving: at most {len(self.process.replicas) - 1}")
        return self

    @property
    def kind(self) -> str:
        return next((k for k in ("process", "kubernetes", "postgres") if getattr(self, k)), "none")

    def allows(self, drill: str) -> bool:
        return drill in self.allowed_drills

    def lock_keys(self) -> list[str]:
        """What a chaos action on this service touches, for the cross-drill lock."""
        clusters = {c for c in (self.cluster, self.postgres.cluster if self.postgres else None) if c}
        return [f"service:{self.name}"] + [f"cluster:{c}" for c in sorted(clusters)]

    def zones(self) -> list[str]:
        az = self.az_failure
        if az and az.engine == "fis" and az.fis:
            return list(az.fis.zones)
        return self.process.zones() if self.process else []
