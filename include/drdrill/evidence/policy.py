"""The resilience policy checked against measured drills, and its score.

Each disruption type of the estate's ``resilience:`` section (`drdrill.core.resilience`) is proven
by a drill family; per cluster, the newest run of that family that counts (not a dry run, not
skipped) is its evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from drdrill.core.resilience import DISRUPTIONS, Objective
from drdrill.evidence.journals import Run, iso
from drdrill.evidence.windows import CADENCE_DAYS

# Which runs prove a disruption, and which scheduled drill sets its cadence (for the evidence's expiry).
PROOF: dict[str, tuple[tuple[str, ...], Callable[[Run], bool], str]] = {
    "instance": (("dr_weekly_pod_kill",), lambda r: True, "dr_weekly_pod_kill"),
    "az": (("dr_monthly_az_failure",), lambda r: True, "dr_monthly_az_failure"),
    "database_node": (("dr_quarterly_failover_drill", "dr_postgres_primary_failover"),
                      lambda r: r.scope != "region", "dr_quarterly_failover_drill"),
    "region": (("dr_quarterly_failover_drill",), lambda r: r.scope == "region", "dr_quarterly_failover_drill"),
    "data_loss": (("dr_monthly_restore_test",), lambda r: True, "dr_monthly_restore_test"),
}
# Which measured figure is the disruption's RTO and RPO (None: the drill does not measure it).
MEASURES: dict[str, tuple[str, str | None]] = {
    "instance": ("recovery_seconds", None),
    "az": ("recovery_seconds", None),
    "database_node": ("rto_seconds", "rpo_seconds"),
    "region": ("rto_seconds", "rpo_seconds"),
    "data_loss": ("restore_seconds", None),
}
POINTS = {"met": 1.0, "expired": 0.5, "breached": 0.25, "failed": 0.25, "not_run": 0.0}

FORMULA = (
    "Each disruption type the policy declares for a cluster (instance, az, database_node, region, data_loss) "
    "scores the newest run of the drill that proves it (dry runs and skipped runs do not count): 1.0 when it "
    "passed, met the RTO and RPO targets it measures and is fresh (not older than two periods of the drill's "
    "cadence: 2 days daily, 14 days weekly, 62 days monthly, 184 days quarterly); 0.5 when it passed and met them "
    "but is older (expired); 0.25 when it failed or breached a target; 0 when the drill never ran. A cluster's "
    "score is the mean of its disruptions x 100; the overall score is the mean over every cluster's disruptions "
    "x 100."
)


@dataclass
class Row:
    disruption: str
    cluster: str | None
    drill: str
    objective: Objective
    run: Run | None
    status: str
    age_days: float | None

    def to_dict(self) -> dict[str, Any]:
        rto_name, rpo_name = MEASURES[self.disruption]
        rto = self.run.figure(rto_name) if self.run else None
        rpo = self.run.figure(rpo_name) if self.run and rpo_name else None
        return {
            "disruption": self.disruption, "cluster": self.cluster, "drill": self.run.drill if self.run else self.drill,
            "rto_target_seconds": self.objective.rto_seconds, "rpo_target_seconds": self.objective.rpo_seconds,
            "rto_measured_seconds": rto.value if rto else None, "rpo_measured_seconds": rpo.value if rpo else None,
            "rto_met": rto.value <= self.objective.rto_seconds if rto else None,
            "rpo_met": rpo.value <= self.objective.rpo_seconds if rpo else None,
            "status": self.status, "points": POINTS[self.status],
            "evidence_at": iso(self.run.at) if self.run else None, "age_days": self.age_days,
            "run_id": self.run.run_id if self.run else None,
            "dag_run_href": self.run.dag_run_href if self.run else None,
            "journal": self.run.journal if self.run else None,
        }


def evaluate(objectives: dict[str | None, dict[str, Objective]], runs_of: Callable[[str, str | None], list[Run]],
             cadence_of: Callable[[str], str], now: datetime) -> list[Row]:
    """One row per (cluster, declared disruption); ``runs_of(drill, cluster)`` gives that pair's runs, oldest
    first, up to ``now``."""
    rows = []
    for cluster, declared in objectives.items():
        for d in DISRUPTIONS:
            if d not in declared:
                continue
            drills, fits, paced_by = PROOF[d]
            candidates = [r for drill in drills for r in runs_of(drill, cluster) if r.counts and fits(r)]
            run = max(candidates, key=lambda r: r.at, default=None)
            rows.append(_row(d, cluster, paced_by, declared[d], run, cadence_of(paced_by), now))
    return rows


def _row(d: str, cluster: str | None, drill: str, obj: Objective, run: Run | None, cadence: str,
         now: datetime) -> Row:
    if run is None:
        return Row(d, cluster, drill, obj, None, "not_run", None)
    age = round((now - run.at).total_seconds() / 86400, 2)
    if run.status != "passed":
        return Row(d, cluster, drill, obj, run, "failed", age)
    rto_name, rpo_name = MEASURES[d]
    breached = False
    for name, target in ((rto_name, obj.rto_seconds), (rpo_name, obj.rpo_seconds)):
        f = run.figure(name) if name else None
        if f is not None and f.value > target:
            breached = True
    if breached:
        return Row(d, cluster, drill, obj, run, "breached", age)
    fresh_days = 2 * CADENCE_DAYS.get(cadence, CADENCE_DAYS["quarterly"])
    return Row(d, cluster, drill, obj, run, "met" if age <= fresh_days else "expired", age)


def scores(rows: Sequence[Row]) -> dict[str, Any]:
    by: dict[str, list[float]] = {}
    for r in rows:
        by.setdefault(r.cluster or "", []).append(POINTS[r.status])
    every = [p for ps in by.values() for p in ps]
    return {"overall": _pct(every), "clusters": {c: _pct(ps) for c, ps in by.items()}}


def _pct(points: Sequence[float]) -> float | None:
    return round(100 * sum(points) / len(points), 1) if points else None
