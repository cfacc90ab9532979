"""The FastAPI app of the "DR drills" page (mounted at ``/dr-drills`` on Airflow's API server).

Routes, every one behind Airflow's own auth (the user's JWT: the ``_token`` cookie the UI's
iframe carries, or ``Authorization: Bearer``), and filtered to the DAGs the user may read:

- ``GET /``: the page (``static/index.html``; its JS reads ``api/evidence``);
- ``GET /api/evidence``: `drdrill.evidence.Evidence.to_dict()` of the estate's journals, with Airflow's run
  history of the drill DAGs (`drdrill.ui.history`: the DagRuns of the period without a journal, read from
  the metadata DB through the request's session, as the ``/api/v2`` routes read it);
- ``GET /run?dag_id=..&run_id=..``: one run's journal rendered (`drdrill.ui.render`); for a run without
  journal, what Airflow knows of it (its state);
- ``GET /journal?path=..``: a journal's bytes, only for a path the evidence lists;
- ``GET /static/{path}``: the page's CSS and JS and the vendored chart library.

An anonymous request gets 401; an anonymous browser asking for the page or a run view is
redirected to Airflow's login page instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from drdrill.ui import history, render

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
HTML_ROUTES = {"/", "/run"}  # an anonymous browser is sent to the login page from these


class EvidenceSource:
    """Where the page's data comes from: the evidence of the estate's journals, and a journal's bytes.

    :param estate_file: the estate to read (default: ``DRDRILL_ESTATE`` / the sandbox's, as every drill)
    :param now: the evidence as of this time (its twelve months end there); default: each request's time
    :param cache_seconds: how long one build serves the next requests (the page, its JSON and the journal
        links a user clicks read the journals once); 0 reads them on every request
    """

    def __init__(self, estate_file: str | None = None, *, now: datetime | None = None,
                 cache_seconds: float = 10.0) -> None:
        self.estate_file = estate_file
        self.now = now
        self.cache_seconds = cache_seconds
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def _estate(self) -> Any:
        from drdrill.core.estate import load_estate

        return load_estate(self.estate_file)

    def evidence(self) -> dict[str, Any]:
        """`drdrill.evidence.build` over every journal of the estate, as JSON-ready dict (not to be mutated:
        it may be the cached one)."""
        from drdrill.evidence import build

        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < self.cache_seconds:
                return self._cached[1]
            doc = build(self._estate(), now=self.now).to_dict()
            self._cached = (time.monotonic(), doc)
            return doc

    def warm_up(self) -> threading.Thread:
        """Read every journal in the background (`drdrill.evidence.journals` keeps what it extracted from each
        per path), so the API server's first page costs what the next ones do. Started when the API server
        builds the app; a request meanwhile waits for it on the lock instead of reading the same journals
        beside it. A failure is logged: the first request meets it again and says it.

        The thread only reads files and the evidence modules, imported here first: the API server builds the
        plugins' apps while its main thread is still importing Airflow's models, and a thread that touched
        SQLAlchemy then (configuring the mappers, 0.6 s a process) deadlocked against those imports. The
        mappers are configured by the Airflow UI's own first requests (its DAG list), before a user can
        open this page."""
        import drdrill.evidence  # noqa: F401 - imported by the caller: the thread imports nothing of Airflow's

        def run() -> None:
            t0 = time.monotonic()
            try:
                runs = len(self.evidence().get("runs") or [])
            except Exception as e:  # noqa: BLE001 - the page says it on the first request, with the request's context
                log.warning("DR drills page: cannot read the evidence ahead of the first request: %s: %s",
                            type(e).__name__, e)
                return
            log.info("DR drills page: evidence of %d runs read ahead of the first request in %.2f s", runs,
                     time.monotonic() - t0)

        thread = threading.Thread(target=run, name="drdrill-ui-warm-up", daemon=True)
        thread.start()
        return thread

    def read(self, path: str) -> bytes:
        """The bytes of the journal at ``path`` (a file:// or s3:// URL), through the estate's journal connection."""
        from drdrill.core.journal import storage

        return storage(path, self._estate().journal.conn_id).read_bytes()


def _drill_of(entry: dict[str, Any]) -> str | None:
    """The DAG an evidence entry belongs to: its ``drill``, else the DAG of its ``dag_run_href``."""
    if entry.get("drill"):
        return entry["drill"]
    href = entry.get("dag_run_href") or ""
    parts = href.split("/")
    return unquote(parts[1]) if len(parts) > 1 and parts[0] == "dags" else None


def visible(evidence: dict[str, Any], allowed: Callable[[str], bool]) -> dict[str, Any]:
    """The evidence without what belongs to a DAG the user may not read (``allowed(dag_id)`` is false)."""
    out = dict(evidence)
    for key in ("runs", "drills", "scorecard", "airflow_runs"):
        out[key] = [e for e in evidence.get(key) or [] if (d := _drill_of(e)) is None or allowed(d)]
    out["trends"] = {name: [p for p in points if allowed(p.get("drill") or "")]
                     for name, points in (evidence.get("trends") or {}).items()}
    policy = dict(evidence.get("policy") or {})
    policy["disruptions"] = [d for d in policy.get("disruptions") or [] if allowed(d.get("drill") or "")]
    out["policy"] = policy
    return out


def listed_journals(evidence: dict[str, Any]) -> set[str]:
    """Every journal path the evidence cites (runs, drills' last runs, trends, scorecard, policy)."""
    paths: set[str] = {r["journal"] for r in evidence.get("runs") or [] if r.get("journal")}
    for d in evidence.get("drills") or []:
        paths.update(s["journal"] for s in (d.get("last"), d.get("last_passed")) if s and s.get("journal"))
    for points in (evidence.get("trends") or {}).values():
        paths.update(p["journal"] for p in points if p.get("journal"))
    paths.update(s["journal"] for s in evidence.get("scorecard") or [] if s.get("journal"))
    paths.update(d["journal"] for d in (evidence.get("policy") or {}).get("disruptions") or [] if d.get("journal"))
    return paths


def evidence_for(evidence: dict[str, Any], allowed: Callable[[str], bool], session: Any) -> dict[str, Any]:
    """What ``api/evidence`` answers: the evidence of the DAGs the user may read (`visible`), with Airflow's
    runs without journal of the drill DAGs the user may read (`with_history`)."""
    ev = visible(evidence, allowed)
    return with_history(ev, session, [d for d in history.drill_dags(ev) if allowed(d)])


def with_history(evidence: dict[str, Any], session: Any, dag_ids: list[str]) -> dict[str, Any]:
    """The evidence with Airflow's runs of ``dag_ids`` that have no journal (`drdrill.ui.history`). The
    metadata DB failing is said in ``airflow_history.error``: the journals' evidence still shows."""
    try:
        runs, truncated = history.read_runs(session, dag_ids, datetime.fromisoformat(evidence["since"]),
                                            datetime.fromisoformat(evidence["until"]))
    except Exception as e:  # noqa: BLE001 - the evidence of record is the journals: show it, say what failed
        log.warning("cannot read the drill DAGs' runs from the metadata DB: %s", e)
        session.rollback()
        return history.merge(evidence, [], error=f"cannot read Airflow's run history: {type(e).__name__}: "
                                                 f"{str(e).splitlines()[0][:300] if str(e) else ''}")
    return history.merge(evidence, runs, truncated=truncated)


def create_app(source: EvidenceSource | None = None, *, warm_up: bool = False) -> FastAPI:
    """The DR drills app; ``source`` defaults to the estate's journals (`EvidenceSource`). ``warm_up``: start
    `EvidenceSource.warm_up` (the API server's app does; its thread is ``app.state.warm_up``)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.api_fastapi.common.db.common import SessionDep
    from airflow.api_fastapi.core_api.security import get_user, requires_access_dag

    src = source or EvidenceSource()
    # The built-in /api/v2 routes' own check on every route: the user may read DAG runs (of the run's DAG
    # when the request names one, as ``run?dag_id=`` does). The routes take the user as
    # ``Depends(get_user)``, what Airflow's ``GetUserDep`` annotates: spelled out, because this module's
    # annotations are strings that FastAPI resolves in the module's globals, not in this function.
    can_read_runs = [Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.RUN))]
    # The /api/v2 routes' metadata DB session (``SessionDep``'s dependency: one per request, closed after it).
    session_dep = SessionDep.__metadata__[0]
    app = FastAPI(title="drdrill: DR drills", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=can_read_runs)
    app.state.warm_up = src.warm_up() if warm_up else None

    @app.exception_handler(HTTPException)
    async def _login_or_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 401 and request.scope.get("path", "").removeprefix(request.scope.get(
                "root_path", "")) in HTML_ROUTES and "text/html" in request.headers.get("accept", ""):
            return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=302)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    def allowed_for(user: Any) -> Callable[[str], bool]:
        am = get_auth_manager()
        seen: dict[str, bool] = {}

        def allowed(dag_id: str) -> bool:
            if dag_id not in seen:
                seen[dag_id] = bool(dag_id) and am.is_authorized_dag(
                    method="GET", access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id), user=user)
            return seen[dag_id]

        return allowed

    def built() -> dict[str, Any]:
        """The source's evidence; a source that cannot build it (an estate that does not load, a journal
        location that does not answer) is a 503 saying why, not a bare 500."""
        try:
            return src.evidence()
        except Exception as e:  # noqa: BLE001 - what failed is the answer: the page shows it
            log.warning("cannot build the DR drills evidence: %s: %s", type(e).__name__, e)
            raise HTTPException(503, f"cannot build the evidence: {type(e).__name__}: {e}") from e

    def user_evidence(user: Any) -> dict[str, Any]:
        return visible(built(), allowed_for(user))

    @app.get("/", response_class=HTMLResponse)
    def page(user: Any = Depends(get_user)) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/evidence")
    def evidence(user: Any = Depends(get_user), session: Any = session_dep) -> JSONResponse:
        return JSONResponse(evidence_for(built(), allowed_for(user), session))

    @app.get("/run", response_class=HTMLResponse)
    def run(user: Any = Depends(get_user), dag_id: str = Query(...), run_id: str = Query(...),
            session: Any = session_dep) -> HTMLResponse:
        ev = user_evidence(user)
        match = next((r for r in reversed(ev["runs"]) if r["drill"] == dag_id and r["run_id"] == run_id), None)
        if match is None:
            try:
                known = history.find_run(session, dag_id, run_id)
            except Exception as e:  # noqa: BLE001 - the view still says there is no journal
                log.warning("cannot read the run %s of %s from the metadata DB: %s", run_id, dag_id, e)
                session.rollback()
                known = None
            return HTMLResponse(render.no_journal(dag_id, run_id, ev, known.to_dict() if known else None),
                                status_code=404)
        try:
            doc = render.parse(src.read(match["journal"]))
        except Exception as e:  # noqa: BLE001 - the page says what failed instead of a bare 500
            log.warning("cannot read the journal %s: %s", match["journal"], e)
            return HTMLResponse(render.unreadable(match, f"{type(e).__name__}: {e}"), status_code=502)
        return HTMLResponse(render.run_page(match, doc))

    @app.get("/journal")
    def journal(user: Any = Depends(get_user), path: str = Query(...)) -> Response:
        if path not in listed_journals(user_evidence(user)):
            raise HTTPException(404, f"no journal {path!r} in the evidence: only the journals the DR drills "
                                     "page lists are served (open it from the page)")
        try:
            return Response(src.read(path), media_type="application/json")
        except Exception as e:  # noqa: BLE001 - listed a moment ago, gone or unreachable now: say so
            log.warning("cannot read the journal %s: %s", path, e)
            raise HTTPException(502, f"cannot read the journal {path!r}: {type(e).__name__}: {e}") from e

    @app.get("/static/{name:path}")
    def static(name: str, user: Any = Depends(get_user)) -> FileResponse:
        f = (STATIC / name).resolve()
        if not f.is_relative_to(STATIC) or not f.is_file():
            raise HTTPException(404, f"no static file {name!r}")
        return FileResponse(f)

    return app
