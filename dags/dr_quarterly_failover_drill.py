"""Quarterly failover drill: the PostgreSQL primary failure runbook, with the fault injected.

Scope ``region`` (the default for a cluster with a ``dr:`` section, the seed's "full region failover"):
every node of the primary region is stopped hard, the DR node comes back from the DR region's repo
alone (cold: restored by the drill; warm: a standby replaying that repo), is promoted and takes the
service record; RTO per phase and RPO (acknowledged writes the DR repo did not hold) are measured;
the failback rebuilds the primary region from it. Scope ``node``: the standby in the same region.

preflight -> assess -> approval (skipped for unattended clusters, and for scheduled runs inside the
cluster's unattended window) -> failover (canary writer, safeguards, then one task for the critical
path: fault (stop or kill -9 of the primary), promote, wait for writes, DNS UPSERT) -> dns_switch
(INSYNC, read back) -> verify ->
stabilize (archiving, old primary rebuilt as standby, topology recorded) -> failback
(planned switchover back) ; rollback when verify fails ; measure RTO/RPO ; journal + timeline.
The graph is built by ``drdrill.runbook``; the logic lives in ``drdrill.drills.failover``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Param, dag

from drdrill.core.limits import DRILL_POOL, TASK_TIMEOUT
from drdrill.runbook import build_runbook
from drdrill.timetables import schedule_for


@dag(
    dag_id="dr_quarterly_failover_drill",
    # The estate's schedules section (default: the first Tuesday of the quarter, 10:00 in its timezone,
    # holidays excluded). Never a past run on unpause: a failover must not start because someone
    # switched the DAG on.
    schedule=schedule_for("dr_quarterly_failover_drill"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["dr", "failover", "postgres", "runbook", "drill"],
    # Every task in the drills' pool; the steps that act on servers or DNS in dr_destructive (1 slot).
    default_args={"owner": "platform", "retries": 0, "execution_timeout": TASK_TIMEOUT, "pool": DRILL_POOL},
    params={
        "cluster": Param("main", type="string", description="cluster name from the estate"),
        "scope": Param(None, type=["null", "string"], enum=[None, "node", "region"],
                       description="region: the whole primary region is lost and the cluster comes back on its DR "
                                   "node from the DR repo alone; node: the standby in the same region takes over. "
                                   "Default: region when the cluster has a dr: section, else node"),
        "fault": Param("kill", enum=["kill", "stop"],
                       description="kill: kill -9 of the primary's postmaster; stop: pg_ctl stop -m immediate"),
        "failback": Param(True, type="boolean", description="switch back to the original primary at the end"),
        "standby": Param(None, type=["null", "string"], description="standby to promote (default: the only one)"),
        "dry_run": Param(False, type="boolean", description="walk every step without acting"),
    },
    doc_md=__doc__,
)
def dr_quarterly_failover_drill():
    build_runbook("drill")


dr_quarterly_failover_drill()
