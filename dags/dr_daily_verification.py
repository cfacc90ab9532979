"""Daily backup verification, for every cluster the estate allows (dynamic task mapping).

pgBackRest `check` (archive round trip) and `info` (backup age per type per repo, error
flags, WAL range) through `PgBackRestCheckOperator`, `verify` per repo through
`PgBackRestVerifyOperator`, WAL archiving health and replication health. Each remote repo's
endpoint is asked first (a few seconds): one that does not answer fails at once and gets no
pgBackRest command, and every command is scoped to one repo, so a dead object store neither
stalls the run nor hides the other repos' checks. Each repo's recoverable window (``pitr_window``)
is checked against ``targets.pitr_window_hours``. The estate's ``backups:`` section adds one task per
system (``velero``, ``aws_backup``, ``object_lock``: ``drdrill.drills.backups``), and ``scorecard``
scores every cluster 3-2-1-1-0 from this run's results, failing when a digit is short or the score
dropped. ``backups_verified`` emits the Asset ``x-drdrill://<estate>/<cluster>/backups-verified`` for every
cluster whose checks all passed (``drdrill.assets``: a user's DAG can be scheduled on it). Every check yields
a typed result; the journal task writes the evidence and fails the run listing every failed check, and
notifies the estate's channels of a failure or of the first pass after one (``drdrill.notifiers``).
Logic lives in ``drdrill.drills.daily`` and ``drdrill.drills.backups``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task

from drdrill.assets import backups_verified_alias
from drdrill.core.journal import step
from drdrill.core.limits import DRILL_POOL, TASK_TIMEOUT
from drdrill.notifiers import outcome_callbacks
from drdrill.operators.estate import EstateCheckOperator
from drdrill.operators.pgbackrest import PgBackRestCheckOperator, PgBackRestVerifyOperator
from drdrill.timetables import schedule_for

CHECKS = ["backup_repository", "backup_integrity", "wal_archiving", "replication"]
# The estate's backups: section (drdrill.drills.backups): one task per system, every entry in it.
SYSTEMS = ["velero", "aws_backup", "object_lock"]


def _run(group: str, cluster: str) -> list[dict]:
    from drdrill.core.estate import load_estate
    from drdrill.drills import daily

    c = load_estate().cluster(cluster)
    return [r.to_dict() for r in getattr(daily, group)(c)]


@dag(
    dag_id="dr_daily_verification",
    schedule=schedule_for("dr_daily_verification"),  # the estate's schedules (default: every day 06:00)
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["dr", "verification", "pgbackrest", "velero", "aws-backup", "object-lock"],
    # Checks report failures as results; a retry only covers a crashed worker.
    default_args={"owner": "platform", "retries": 1, "retry_delay": timedelta(minutes=2),
                  "execution_timeout": TASK_TIMEOUT, "pool": DRILL_POOL},
    params={"clusters": Param([], type="array", description="only these clusters (default: all allowed)")},
    doc_md=__doc__,
)
def dr_daily_verification():
    @task(retries=0)  # a bad estate or param does not fix itself on retry
    @step
    def select_clusters() -> list[str]:
        from drdrill.core.errors import EstateError
        from drdrill.core.estate import load_estate

        estate = load_estate()
        allowed = [c.name for c in estate.clusters_for("dr_daily_verification")]
        wanted = list(get_current_context()["params"].get("clusters") or allowed)
        for name in wanted:
            estate.cluster(name)  # unknown cluster: clear error naming the ones that exist
            if name not in allowed:
                raise EstateError(f"cluster {name!r} does not allow dr_daily_verification in {estate.source}")
        if not wanted:
            raise EstateError(f"no cluster in {estate.source} allows dr_daily_verification")
        return wanted

    @task
    @step
    def wal_archiving(cluster: str) -> list[dict]:
        return _run("wal_archiving", cluster)

    @task
    @step
    def replication(cluster: str) -> list[dict]:
        return _run("replication", cluster)

    def system(kind: str):
        @task(task_id=kind)
        @step
        def check() -> list[dict]:
            from drdrill.drills import backups

            return [r.to_dict() for r in backups.daily(kind)]

        return check()

    @task(trigger_rule="all_done", retries=0)
    @step
    def scorecard() -> list[dict]:
        """3-2-1-1-0 per cluster from this run's checks (drdrill.drills.backups.scorecard)."""
        from drdrill.core.checks import CheckResult
        from drdrill.core.estate import load_estate
        from drdrill.drills.backups import scorecard as sc

        ti = get_current_context()["ti"]
        results = [CheckResult.from_dict(d) for batch in ti.xcom_pull(task_ids=CHECKS + SYSTEMS) or [] if batch
                   for d in batch]
        return [r.to_dict() for r in sc.daily(load_estate(), ti.xcom_pull(task_ids="select_clusters") or [],
                                              results)]

    # One asset event per cluster whose checks all passed (drdrill.assets); the clusters are known at run time only.
    @task(trigger_rule="all_done", retries=0, outlets=[backups_verified_alias()])
    @step
    def backups_verified() -> list[str]:
        """``x-drdrill://<estate>/<cluster>/backups-verified`` for every cluster verified by this run."""
        from drdrill.assets import backups_verified as asset
        from drdrill.core.checks import CheckResult
        from drdrill.core.estate import load_estate
        from drdrill.core.journal import gather_steps
        from drdrill.drills.daily import verified_clusters

        ctx = get_current_context()
        ti = ctx["ti"]
        clusters = ti.xcom_pull(task_ids="select_clusters") or []
        results = [CheckResult.from_dict(d) for batch in ti.xcom_pull(task_ids=[*CHECKS, "scorecard"]) or [] if batch
                   for d in batch]
        verified = verified_clusters(clusters, results, gather_steps(ti, [*CHECKS, "scorecard"]))
        estate = load_estate()
        for name in verified:
            ctx["outlet_events"][backups_verified_alias()].add(
                asset(estate.name, name), extra={"run_id": ctx["dag_run"].run_id, "cluster": name})
        return verified

    @task(trigger_rule="all_done", retries=0, **outcome_callbacks())  # failure / recovery notifications
    def journal() -> dict:
        from drdrill.core import journal as j
        from drdrill.core.checks import CheckResult

        ctx = get_current_context()
        per_task = ctx["ti"].xcom_pull(task_ids=[*CHECKS, *SYSTEMS, "scorecard"]) or []
        results = [CheckResult.from_dict(d) for batch in per_task if batch for d in batch]
        clusters = ctx["ti"].xcom_pull(task_ids="select_clusters")
        return j.finish(ctx, task_ids=["estate_check", "select_clusters", *CHECKS, *SYSTEMS, "scorecard",
                                       "backups_verified"],
                        results=results, cluster=",".join(clusters or []) or None,
                        extra={"backups_verified": ctx["ti"].xcom_pull(task_ids="backups_verified") or []})

    clusters = select_clusters()
    estate_check = EstateCheckOperator(task_id="estate_check", drill="dr_daily_verification", retries=0,
                                       node_runners=False)
    estate_check >> clusters
    # The checks report failures as results (fail_on_problem=False): the journal lists them all.
    repository = PgBackRestCheckOperator.partial(task_id="backup_repository", fail_on_problem=False)
    integrity = PgBackRestVerifyOperator.partial(task_id="backup_integrity", fail_on_problem=False)
    groups = [repository.expand(cluster=clusters), integrity.expand(cluster=clusters),
              wal_archiving.expand(cluster=clusters), replication.expand(cluster=clusters)]
    systems = [system(kind) for kind in SYSTEMS]
    estate_check >> systems
    [*groups, *systems] >> scorecard() >> backups_verified() >> journal()


dr_daily_verification()
