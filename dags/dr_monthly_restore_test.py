"""Monthly restore test: restore a pgBackRest backup into a scratch server and prove the data.

preflight -> lock_targets (kill switch, then the lease on cluster:<name>: no other drill acts on
the cluster until release_targets) -> ledger (canaries + exact counts) -> setup scratch -> restore
(kill switch again, pgBackRest restore, start, deferrable wait until promoted) -> data quality
(Great Expectations row counts) -> measure -> teardown scratch (always) -> release_targets (always)
-> journal. The reusable steps are drdrill's operators
(`PgBackRestRestoreOperator`, `RowCountCheckOperator`, `ScratchServerTeardownOperator`); the
steps specific to this drill are tasks whose logic lives in ``drdrill.drills.restore``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Param, dag, get_current_context, setup, task

from drdrill.core.journal import step
from drdrill.core.limits import DESTRUCTIVE_POOL, DRILL_POOL, TASK_TIMEOUT
from drdrill.notifiers import outcome_callbacks
from drdrill.operators.dataquality import RowCountCheckOperator
from drdrill.operators.estate import EstateCheckOperator
from drdrill.operators.restore import PgBackRestRestoreOperator, ScratchServerTeardownOperator
from drdrill.timetables import schedule_for

TASKS = ["estate_check", "preflight", "lock_targets", "ledger", "setup_scratch", "restore", "data_quality", "measure",
         "teardown_scratch", "release_targets"]


def _ctx() -> tuple[dict, str]:
    ctx = get_current_context()
    return dict(ctx["params"]), ctx["dag_run"].run_id


@dag(
    dag_id="dr_monthly_restore_test",
    # The estate's schedules section (default: the first business day of the month, 10:00 in its timezone).
    schedule=schedule_for("dr_monthly_restore_test"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["dr", "restore", "pgbackrest", "great-expectations"],
    # A restore is not retried in place: a half-restored scratch proves nothing. The next run is the retry.
    # Every task in the drills' pool. The restore acts on a scratch server only (production paths and ports
    # refused), so it is not in dr_destructive: hours of restore must never hold a failover drill's promote.
    default_args={"owner": "platform", "retries": 0, "execution_timeout": TASK_TIMEOUT, "pool": DRILL_POOL},
    params={
        "cluster": Param("main", type="string", description="cluster name from the estate"),
        "repo": Param(1, type="integer", minimum=1, description="pgBackRest repo to restore from (1, 2...)"),
        "recovery_point": Param("latest", enum=["latest", "pitr", "random"],
                                description="latest: end of the WAL archive; pitr: a point in time; random: a "
                                            "random time inside the recoverable window (seeded, journalled)"),
        "seed": Param(None, type=["null", "integer"], minimum=0,
                      description="random: replay the pick of a journalled seed (default: a new seed)"),
        "target_time": Param(None, type=["null", "string"],
                             description="PITR target, ISO 8601 with zone; empty: the ledger's snapshot"),
        "dry_run": Param(False, type="boolean", description="walk every step without acting"),
        "scratch_dir": Param(None, type=["null", "string"], description="override the estate's scratch root"),
        "scratch_port": Param(None, type=["null", "integer"], description="override the allocated port"),
    },
    doc_md=__doc__,
)
def dr_monthly_restore_test():
    @task
    @step
    def preflight() -> dict:
        from drdrill.drills import restore

        params, run_id = _ctx()
        return restore.preflight(params, run_id)

    # Two acquisitions never run at once: the lock is taken in the 1-slot pool (drdrill.core.targetlock).
    @task(pool=DESTRUCTIVE_POOL)  # a setup: release_targets is its teardown
    @step
    def lock_targets(plan: dict) -> dict:
        from drdrill.drills import restore

        return restore.lock_targets(restore.Plan.from_dict(plan), _ctx()[1], get_current_context()["ti"].task_id)

    @task
    @step
    def release_targets() -> dict:
        from drdrill.drills import restore

        return restore.release_targets(get_current_context()["ti"].xcom_pull(task_ids="lock_targets"))

    @task(multiple_outputs=True)  # the expectations go to the data-quality operator one by one
    @step
    def ledger(plan: dict) -> dict:
        from drdrill.drills import restore

        return restore.ledger(restore.Plan.from_dict(plan), _ctx()[1])

    @setup
    @step
    def setup_scratch(plan: dict) -> dict:
        from drdrill.core.scratch import active_in_airflow
        from drdrill.drills import restore

        is_active = active_in_airflow(get_current_context()["ti"], restore.DRILL)
        return restore.setup_scratch(restore.Plan.from_dict(plan), _ctx()[1], is_active=is_active)

    @task
    @step
    def measure(plan: dict, restored: dict, dq: dict) -> dict:
        from drdrill.drills import restore

        return restore.measure(restore.Plan.from_dict(plan), restored, dq)

    @task(trigger_rule="all_done", **outcome_callbacks())  # failure / recovery notifications
    def journal() -> dict:
        from drdrill.core import journal as j
        from drdrill.drills import restore

        ctx = get_current_context()
        ti = ctx["ti"]
        dq = ti.xcom_pull(task_ids="data_quality") or {}
        meas = ti.xcom_pull(task_ids="measure") or {}
        return j.finish(
            ctx, task_ids=TASKS, cluster=str(ctx["params"].get("cluster")),
            results=restore.as_results(dq.get("results")) + restore.as_results(meas.get("results")),
            extra={"plan": ti.xcom_pull(task_ids="preflight"), "ledger": ti.xcom_pull(task_ids="ledger"),
                   "scratch": ti.xcom_pull(task_ids="setup_scratch"),
                   "restore": ti.xcom_pull(task_ids="restore"),
                   "measurements": meas.get("measurements", {}),
                   "teardown": ti.xcom_pull(task_ids="teardown_scratch"),
                   # the lease on the cluster (who held it, how long we waited), the kill switch's verdicts
                   "targets": {"lock": ti.xcom_pull(task_ids="lock_targets"),
                               "release": ti.xcom_pull(task_ids="release_targets")},
                   "kill_switch": [(ti.xcom_pull(task_ids="lock_targets") or {}).get("kill_switch"),
                                   (ti.xcom_pull(task_ids="restore") or {}).get("kill_switch")]},
            attachments={"gx": dq["gx_result"]} if dq.get("gx_result") else None)

    plan = preflight()
    # Only the backup host is asked: the restore test never runs a command on a node's host.
    EstateCheckOperator(task_id="estate_check", cluster="{{ params.cluster }}", retries=0,
                        node_runners=False) >> plan
    locked = lock_targets(plan)
    led = ledger(plan)
    locked >> led
    scr = setup_scratch(plan)
    led >> scr
    restored = PgBackRestRestoreOperator(
        task_id="restore", cluster="{{ params.cluster }}", repo="{{ params.repo }}", scratch=scr,
        target_time=led["restore_target"], target_timeline=led["timeline"], dry_run="{{ params.dry_run }}",
        wait_timeout=1800)
    dq = RowCountCheckOperator(
        task_id="data_quality", cluster="{{ params.cluster }}", target=restored.output,
        expected_tables=led["tables"], expected_counts=led["expected_counts"], canaries=led["canaries"],
        fail_on_mismatch=False,  # the journal lists every failed check and fails the run
        dry_run="{{ params.dry_run }}")
    meas = measure(plan, restored.output, dq.output)
    done = ScratchServerTeardownOperator(task_id="teardown_scratch", cluster="{{ params.cluster }}",
                                         scratch=scr).as_teardown(setups=scr)
    meas >> done
    # Released at the very end, whatever failed in between (skipped when no lease was taken).
    released = release_targets().as_teardown(setups=locked)
    done >> released
    released >> journal()


dr_monthly_restore_test()
