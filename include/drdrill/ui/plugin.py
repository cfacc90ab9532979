"""The Airflow plugin of the "DR drills" page: a FastAPI app on the API server and two external views.

Light on purpose: every Airflow process (scheduler, workers, dag-processor) imports plugins, and
only the API server needs the app. The app (FastAPI, Airflow's auth dependencies, the evidence
model) is built the first time Airflow reads ``fastapi_apps``, which only the API server and
``airflow plugins`` do.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from drdrill.ui import URL_PREFIX

# Relative to the Airflow UI root (no leading slash), so a base_url sub-path works.
PAGE_HREF = URL_PREFIX.lstrip("/") + "/"
RUN_HREF = URL_PREFIX.lstrip("/") + "/run?dag_id={DAG_ID}&run_id={RUN_ID}"


class _LazyApps:
    """``fastapi_apps``, built on first read and kept (one app per process), its journals read ahead in the
    background (`drdrill.ui.app.EvidenceSource.warm_up`): the API server's first page is as fast as the next."""

    def __init__(self) -> None:
        self._apps: list[dict[str, Any]] | None = None

    def __get__(self, obj: Any, owner: Any = None) -> list[dict[str, Any]]:
        if self._apps is None:
            from drdrill.ui.app import create_app

            self._apps = [{"app": create_app(warm_up=True), "url_prefix": URL_PREFIX, "name": "DR drills"}]
        return self._apps


class DrDrillsPlugin(AirflowPlugin):
    name = "drdrill_ui"
    fastapi_apps = _LazyApps()
    external_views = [
        {"name": "DR drills", "href": PAGE_HREF, "url_route": "dr-drills", "destination": "nav",
         "nav_top_level": True},
        {"name": "DR drill evidence", "href": RUN_HREF, "url_route": "dr-drill-run", "destination": "dag_run"},
    ]
