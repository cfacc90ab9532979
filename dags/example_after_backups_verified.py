"""Example: run after the daily verification has verified a cluster's backups (an Airflow Asset).

``dr_daily_verification`` emits ``x-drdrill://<estate>/<cluster>/backups-verified`` for every cluster whose
checks all passed in the run (``drdrill.assets``): pgBackRest check, info and verify on every repo, WAL
archiving, replication and the 3-2-1-1-0 scorecard. A DAG scheduled on that asset runs after each such
run, and never after a run that found a problem with that cluster's backups: a safe moment to copy data
out, refresh a reporting replica from a backup, or tell the auditors. Copy this file into your DAGs
folder and name your estate (its ``name:``) and cluster; schedule on ``backups_verified_alias()`` instead
to run after any cluster is verified.

The task reads which run verified the backups from the triggering asset event's ``extra``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import dag, get_current_context, task

from drdrill.assets import backups_verified

ESTATE = "sandbox"  # the estate file's name:
CLUSTER = "main"
VERIFIED = backups_verified(ESTATE, CLUSTER)


@dag(
    dag_id="example_after_backups_verified",
    schedule=[VERIFIED],
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["dr", "example", "assets"],
    default_args={"owner": "platform", "retries": 0, "execution_timeout": timedelta(minutes=10)},
    doc_md=__doc__,
)
def example_after_backups_verified():
    @task
    def after_verification() -> list[dict]:
        """Log (and return) the daily runs whose verification triggered this run."""
        events = get_current_context()["triggering_asset_events"][VERIFIED]
        seen = [{"run_id": e.extra.get("run_id"), "cluster": e.extra.get("cluster"), "at": str(e.timestamp)}
                for e in events]
        for s in seen:
            print(f"backups of {s['cluster']} verified by {s['run_id']} at {s['at']}")
        return seen

    after_verification()


example_after_backups_verified()
