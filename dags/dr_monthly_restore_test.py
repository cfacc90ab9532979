"""Monthly restore test: restore a pgBackRest backup into a scratch server and prove the data.

preflight -> ledger (canaries + exact counts) -> setup scratch -> restore -> start ->
wait for promotion (deferrable) -> data quality (Great Expectations) -> measure ->
teardown scratch (always) -> journal. Logic lives in ``drdrill.drills.restore``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Param, dag, get_current_context, setup, task, teardown

from drdrill.core.journal import step
from drdrill.sensors.postgres import PostgresPromotedSensor

TASKS = ["preflight", "ledger", "setup_scratch", "restore", "start_scratch", "wait_for_promotion",
         "data_quality", "measure", "teardown_scratch"]


def _ctx() -> tuple[dict, str]:
    ctx = get_current_context()
    return dict(ctx["params"]), ctx["dag_run"].run_id


@dag(
    dag_id="dr_monthly_restore_test",
    schedule="0 4 1 * *",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["dr", "restore", "pgbackrest", "great-expectations"],
    # A restore is not retried in place: a half-restored scratch proves nothing. The next run is the retry.
    default_args={"owner": "platform", "retries": 0},
    params={
        "cluster": Param("main", type="string", description="cluster name from the estate"),
        "repo": Param(1, type="integer", minimum=1, description="pgBackRest repo to restore from (1, 2...)"),
        "recovery_point": Param("latest", enum=["latest", "pitr"],
                                description="latest: end of the WAL archive; pitr: a point in time"),
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

    @task
    @step
    def ledger(plan: dict) -> dict:
        from drdrill.drills import restore

        return restore.ledger(restore.Plan.from_dict(plan), _ctx()[1])

    @setup
    @step
    def setup_scratch(plan: dict) -> dict:
        from drdrill.drills import restore

        ti = get_current_context()["ti"]

        def is_active(tag: dict) -> bool:
            try:
                return ti.get_dagrun_state(dag_id=tag.get("dag_id") or restore.DRILL,
                                           run_id=tag["run_id"]) in ("queued", "running")
            except Exception:  # noqa: BLE001 - a run Airflow does not know is not active
                return False

        return restore.setup_scratch(restore.Plan.from_dict(plan), _ctx()[1], is_active=is_active)

    @task
    @step
    def restore_backup(plan: dict, led: dict, scr: dict) -> dict:
        from drdrill.drills import restore

        return restore.restore(restore.Plan.from_dict(plan), led, scr)

    @task
    @step
    def start_scratch(plan: dict, scr: dict) -> dict:
        from drdrill.drills import restore

        return restore.start_scratch(restore.Plan.from_dict(plan), scr)

    @task
    @step
    def data_quality(plan: dict, led: dict, scr: dict, ready: dict) -> dict:
        from drdrill.drills import restore

        return restore.data_quality(restore.Plan.from_dict(plan), led, scr, _ctx()[1])

    @task
    @step
    def measure(plan: dict, restored: dict, started: dict, ready: dict, dq: dict) -> dict:
        from drdrill.drills import restore

        return restore.measure(restore.Plan.from_dict(plan), restored, started, ready, dq)

    @teardown
    @step
    def teardown_scratch(scr: dict) -> dict:
        from drdrill.drills import restore

        return restore.teardown_scratch(scr)

    @task(trigger_rule="all_done")
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
                   "teardown": ti.xcom_pull(task_ids="teardown_scratch")},
            attachments={"gx": dq["gx_result"]} if dq.get("gx_result") else None)

    plan = preflight()
    led = ledger(plan)
    scr = setup_scratch(plan)
    restored = restore_backup.override(task_id="restore")(plan, led, scr)
    started = start_scratch(plan, scr)
    restored >> started
    ready = PostgresPromotedSensor(task_id="wait_for_promotion", target=started,
                                   dry_run="{{ params.dry_run }}", wait_timeout=1800)
    dq = data_quality(plan, led, scr, ready.output)
    meas = measure(plan, restored, started, ready.output, dq)
    led >> scr
    done = teardown_scratch(scr)
    meas >> done
    done >> journal()


dr_monthly_restore_test()
