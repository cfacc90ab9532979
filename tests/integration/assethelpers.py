"""What Airflow's metadata DB records of drdrill's Assets: the asset events, and the runs queued for the DAGs
scheduled on them (the scheduler turns an AssetDagRunQueue row into a DAG run)."""

from __future__ import annotations

from pathlib import Path

DAGS = Path(__file__).resolve().parents[2] / "dags"
EXAMPLE = "example_after_backups_verified"


def asset_events(uri: str) -> list[dict]:
    """Every event of the asset ``uri``: the run that emitted it, its extra, the aliases it came through."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                               .where(AssetModel.uri == uri)).all()
        return [{"dag_id": e.source_dag_id, "run_id": e.source_run_id, "extra": e.extra,
                 "aliases": [a.name for a in e.source_aliases]} for e in rows]


def example_scheduled_and_unpaused() -> None:
    """The example DAG in the metadata DB, as the DAG processor writes it (its schedule's asset reference), and
    unpaused: Airflow queues runs only for unpaused DAGs."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    bag = DagBag(dag_folder=str(DAGS / f"{EXAMPLE}.py"))
    assert bag.import_errors == {}
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, bundle_name="dags-folder", bundle_version=None)
    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == EXAMPLE).values(is_paused=False))


def queued(dag_id: str, uri: str) -> bool:
    """Whether a run of ``dag_id`` is queued by an event of the asset ``uri`` (AssetDagRunQueue)."""
    from airflow.models.asset import AssetDagRunQueue, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return session.scalar(select(AssetDagRunQueue).join(AssetModel, AssetDagRunQueue.asset_id == AssetModel.id)
                              .where(AssetDagRunQueue.target_dag_id == dag_id, AssetModel.uri == uri)) is not None
