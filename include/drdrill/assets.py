"""Airflow Assets drdrill emits, for a user's own DAGs to be scheduled on.

``dr_daily_verification`` emits, for every cluster whose checks all passed in the run (pgBackRest
check, info and verify on every repo, WAL archiving, replication, the 3-2-1-1-0 scorecard), an asset
event of `backups_verified` ``x-drdrill://<estate>/<cluster>/backups-verified``. The clusters are only
known when the run starts (the estate and the ``clusters`` param), so the task declares the alias
`BACKUPS_VERIFIED_ALIAS` as its outlet and attaches each cluster's asset to it at run time: the asset
itself is created in Airflow's metadata DB by the first event. A DAG scheduled on
``backups_verified("prod", "main")`` runs after each daily run that verified main's backups (for
example an export, a data copy to the analytics account, or a report); one scheduled on the alias
runs after every run that verified any cluster. See ``dags/example_after_backups_verified.py``.

The scheme is ``x-drdrill``: Airflow leaves ``x-`` schemes as they are, where any other scheme makes it
load every provider's asset URI handlers (the amazon provider's pulls in boto3) while the DAG file is
parsed.
"""

from __future__ import annotations

from urllib.parse import quote

from airflow.sdk import Asset, AssetAlias

BACKUPS_VERIFIED_ALIAS = "drdrill-backups-verified"


def backups_verified_uri(estate: str, cluster: str) -> str:
    """``x-drdrill://<estate>/<cluster>/backups-verified`` (each name URL-quoted)."""
    return f"x-drdrill://{quote(estate, safe='')}/{quote(cluster, safe='')}/backups-verified"


def backups_verified(estate: str, cluster: str) -> Asset:
    """The asset of ``cluster``'s backups verified by ``dr_daily_verification`` in the estate named ``estate``
    (the estate file's ``name:``)."""
    return Asset(backups_verified_uri(estate, cluster))


def backups_verified_alias() -> AssetAlias:
    """The alias every `backups_verified` event is attached to (a DAG scheduled on it hears every cluster)."""
    return AssetAlias(BACKUPS_VERIFIED_ALIAS)
