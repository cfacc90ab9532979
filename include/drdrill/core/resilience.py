"""The estate's ``resilience:`` section: RTO and RPO targets per disruption type.

Like AWS Resilience Hub's policy, but checked against measured drills instead of estimates
(`drdrill.evidence.policy`): each disruption type is proven by one drill family

- ``instance``: a pod / process / instance of a service dies (``dr_weekly_pod_kill``);
- ``az``: a whole availability zone of a service fails (``dr_monthly_az_failure``);
- ``database_node``: the PostgreSQL primary is lost (``dr_quarterly_failover_drill``, node scope, and
  the incident runbook ``dr_postgres_primary_failover``);
- ``region``: the primary region is lost (``dr_quarterly_failover_drill``, region scope);
- ``data_loss``: data is destroyed and comes back from a backup (``dr_monthly_restore_test``).

Every cluster gets the estate-wide targets; ``clusters.<name>`` replaces some of them for one
cluster (field by field), and ``null`` there takes a disruption out of that cluster's policy
(e.g. a cluster without a DR region: ``region: null``). Pure pydantic: safe anywhere.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DISRUPTIONS = ("instance", "az", "database_node", "region", "data_loss")
Disruption = Literal["instance", "az", "database_node", "region", "data_loss"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Objective(_Model):
    """The recovery objectives for one disruption type."""

    rto_seconds: float = Field(gt=0, description="recovery time objective: service back within this many seconds")
    rpo_seconds: float = Field(ge=0, description="recovery point objective: at most this many seconds of data lost "
                                                 "(0: none)")


class ObjectiveOverride(_Model):
    """A cluster's replacement for some fields of the estate-wide objective."""

    rto_seconds: float | None = Field(None, gt=0, description="replaces the estate-wide rto_seconds")
    rpo_seconds: float | None = Field(None, ge=0, description="replaces the estate-wide rpo_seconds")


class ClusterPolicy(_Model):
    """One cluster's overrides: a field replaces the estate-wide one; ``null`` drops the disruption."""

    instance: ObjectiveOverride | None = ObjectiveOverride()
    az: ObjectiveOverride | None = ObjectiveOverride()
    database_node: ObjectiveOverride | None = ObjectiveOverride()
    region: ObjectiveOverride | None = ObjectiveOverride()
    data_loss: ObjectiveOverride | None = ObjectiveOverride()


class Resilience(_Model):
    """The estate's ``resilience:`` section (defaults: the seed's targets)."""

    instance: Objective = Field(Objective(rto_seconds=300, rpo_seconds=0),
                                description="a pod / process dies: healed within rto (chaos recovery time)")
    az: Objective = Field(Objective(rto_seconds=300, rpo_seconds=0),
                          description="an availability zone fails: the service recovers within rto")
    database_node: Objective = Field(Objective(rto_seconds=1800, rpo_seconds=300),
                                     description="the PostgreSQL primary is lost: failover RTO / RPO")
    region: Objective = Field(Objective(rto_seconds=3600, rpo_seconds=900),
                              description="the primary region is lost: region failover RTO / RPO")
    data_loss: Objective = Field(Objective(rto_seconds=3600, rpo_seconds=300),
                                 description="data destroyed: restored from backup within rto (restore time)")
    clusters: dict[str, ClusterPolicy] = Field(default_factory=dict,
                                               description="per cluster name: overrides, or null to drop one")

    @model_validator(mode="before")
    @classmethod
    def _hint(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [k for k in data if k not in (*DISRUPTIONS, "clusters")]
            if unknown:
                raise ValueError(f"unknown disruption {unknown[0]!r} in resilience: use {', '.join(DISRUPTIONS)} "
                                 f"(each with rto_seconds and rpo_seconds), or clusters")
        return data

    def for_cluster(self, cluster: str | None) -> dict[str, Objective]:
        """The objectives of ``cluster``: the estate-wide ones with its overrides; dropped ones absent."""
        over = self.clusters.get(cluster or "")
        out: dict[str, Objective] = {}
        for d in DISRUPTIONS:
            base: Objective = getattr(self, d)
            if over is None:
                out[d] = base
                continue
            o = getattr(over, d)
            if o is None:
                continue
            out[d] = Objective(rto_seconds=o.rto_seconds if o.rto_seconds is not None else base.rto_seconds,
                               rpo_seconds=o.rpo_seconds if o.rpo_seconds is not None else base.rpo_seconds)
        return out
