"""The DR drills page's routes (`drdrill.ui.app`) on a real FastAPI app behind Airflow's real auth.

The app is mounted at ``/dr-drills`` as the API server mounts it, with Airflow's configured auth
manager (the simple one) validating real JWTs it minted; the evidence is a fixture written from
real journals (tests/fixtures/ui: ``evidence.json`` in the shape of ``Evidence.to_dict()`` and the
journals it cites, copied from sandbox runs). What the browser shows is tested in
tests/integration/test_ui_browser.py against a real api-server.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import pytest

from drdrill.ui.app import EvidenceSource, create_app, listed_journals, visible

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ui"
RESTORE = "dr_monthly_restore_test"


class FixtureEvidence(EvidenceSource):
    """The fixture's evidence, its journals at their place in tests/fixtures/ui/journal."""

    def __init__(self) -> None:
        super().__init__()
        text = (FIXTURES / "evidence.json").read_text().replace("file://JOURNALS", f"file://{FIXTURES / 'journal'}")
        self.doc = json.loads(text)

    def evidence(self) -> dict:
        return json.loads(json.dumps(self.doc))

    def read(self, path: str) -> bytes:
        from drdrill.core.journal import storage

        return storage(path, None).read_bytes()


@pytest.fixture(scope="module")
def auth(airflow_db):
    from airflow.api_fastapi.app import init_auth_manager

    return init_auth_manager()


@pytest.fixture(scope="module")
def source() -> FixtureEvidence:
    return FixtureEvidence()


@pytest.fixture(scope="module")
def client(auth, source):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    root = FastAPI()
    root.mount("/dr-drills", create_app(source))
    with TestClient(root, follow_redirects=False) as c:
        yield c


def token(auth, role: str = "viewer", name: str = "auditor") -> dict[str, str]:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return {"Authorization": f"Bearer {auth.generate_jwt(SimpleAuthManagerUser(username=name, role=role))}"}


def first_restore(source: FixtureEvidence) -> dict:
    return next(r for r in source.doc["runs"] if r["drill"] == RESTORE)


# ------------------------------------------------------------------ anonymous and unauthorised
@pytest.mark.parametrize("path", ["/dr-drills/", "/dr-drills/api/evidence", "/dr-drills/static/dr-drills.js",
                                  "/dr-drills/static/vendor/uPlot.iife.min.js",
                                  f"/dr-drills/run?dag_id={RESTORE}&run_id=x", "/dr-drills/journal?path=x"])
def test_anonymous_is_refused(client, path):
    r = client.get(path, headers={"Accept": "application/json"})
    assert r.status_code == 401, r.text
    assert "evidence" not in r.text and "uPlot" not in r.text


def test_anonymous_browser_is_sent_to_the_login_page(client):
    r = client.get("/dr-drills/", headers={"Accept": "text/html"})
    assert r.status_code == 302
    assert "/auth/login" in r.headers["location"] and "next=" in r.headers["location"]
    # The data routes never redirect: a script gets a 401 it can report.
    assert client.get("/dr-drills/api/evidence", headers={"Accept": "text/html"}).status_code == 401


def test_a_forged_or_expired_token_is_refused(client, auth):
    forged = client.get("/dr-drills/api/evidence", headers={"Authorization": "Bearer not-a-jwt"})
    assert forged.status_code in (401, 403)
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    old = auth.generate_jwt(SimpleAuthManagerUser(username="a", role="viewer"), expiration_time_in_seconds=-60)
    assert client.get("/dr-drills/api/evidence", headers={"Authorization": f"Bearer {old}"}).status_code in (401, 403)


def test_the_session_cookie_of_the_ui_is_accepted(client, auth):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    jwt = auth.generate_jwt(SimpleAuthManagerUser(username="auditor", role="viewer"))
    r = client.get("/dr-drills/api/evidence", cookies={"_token": jwt})
    assert r.status_code == 200 and r.json()["estate"] == "sandbox"


# ------------------------------------------------------------------ the page and its data
def test_page_and_static_files(client, auth):
    r = client.get("/dr-drills/", headers=token(auth))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    # Relative URLs only (a base_url sub-path works; nothing is fetched from the internet).
    assert 'src="static/vendor/uPlot.iife.min.js"' in r.text and "http" not in r.text.replace("http-equiv", "")
    js = client.get("/dr-drills/static/vendor/uPlot.iife.min.js", headers=token(auth))
    assert js.status_code == 200 and "uPlot" in js.text
    assert client.get("/dr-drills/static/dr-drills.css", headers=token(auth)).status_code == 200


@pytest.mark.parametrize("name", ["../app.py", "..%2Fapp.py", "vendor/../../app.py", "nope.js", "vendor"])
def test_static_serves_only_its_own_files(client, auth, name):
    r = client.get(f"/dr-drills/static/{name}", headers=token(auth))
    assert r.status_code == 404, r.text
    assert "def create_app" not in r.text


def test_api_evidence_is_the_evidence(client, auth, source):
    r = client.get("/dr-drills/api/evidence", headers=token(auth))
    assert r.status_code == 200
    doc = r.json()
    # With no DagRun in the metadata DB, Airflow's history adds nothing but its own keys.
    assert doc["airflow_runs"] == [] and doc["airflow_history"]["error"] is None
    assert all(d.pop("no_journal") == 0 and d.pop("no_journal_run_ids") == [] for d in doc["drills"])
    assert {k: v for k, v in doc.items() if k not in ("airflow_runs", "airflow_history")} == source.evidence()


def test_evidence_is_filtered_to_the_dags_the_user_may_read():
    ev = FixtureEvidence().evidence()
    out = visible(ev, lambda dag: dag != RESTORE)
    assert ev["runs"] and {r["drill"] for r in out["runs"]} == {r["drill"] for r in ev["runs"]} - {RESTORE}
    assert all(d["drill"] != RESTORE for d in out["drills"]) and not out["trends"]["restore_seconds"]
    assert all(d["drill"] != RESTORE for d in out["policy"]["disruptions"])
    assert out["scorecard"] == ev["scorecard"]  # the daily verification's, by its dag_run_href
    assert visible(ev, lambda dag: dag != "dr_daily_verification")["scorecard"] == []
    assert all(not p.startswith(str(FIXTURES / "journal" / RESTORE)) for p in listed_journals(out))


# ------------------------------------------------------------------ Airflow's run history: runs without journal
INCIDENT = "dr_postgres_primary_failover"
# (dag_id, run_id, state, run_after, conf): real DagRun rows in the test's metadata DB.
DAG_RUNS = [
    (RESTORE, "manual__2026-12-06T16:41:09.642987+00:00", "success", "2026-12-06T16:41:09.642987+00:00", {}),
    ("dr_monthly_az_failure", "scheduled__2026-10-07T03:00:00+00:00", "failed", "2026-10-07T03:00:00+00:00", {}),
    ("dr_daily_verification", "manual__killed", "running", "2026-12-04T10:00:00+00:00", {"cluster": "main"}),
    ("dr_quarterly_failover_drill", "manual__other", "success", "2026-09-15T08:00:00+00:00", {"cluster": "other"}),
    (INCIDENT, "manual__hidden", "queued", "2026-11-02T08:00:00+00:00", {}),
    ("dr_weekly_pod_kill", "broken", "failed", "2026-11-25T08:00:00+00:00", {}),  # its journal is unreadable
    ("example_restore_row_count", "manual__not_a_drill", "failed", "2026-11-02T08:00:00+00:00", {}),
    (RESTORE, "manual__last_year", "failed", "2025-01-10T08:00:00+00:00", {}),  # before the period
]


@pytest.fixture
def dag_runs(airflow_db):
    """The rows of DAG_RUNS (and the DAGs they need), removed afterwards."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    DagBundlesManager().sync_bundles_to_db()
    added: list[str] = []
    with create_session() as s:
        for dag_id in sorted({r[0] for r in DAG_RUNS}):
            if not s.get(DagModel, dag_id):
                s.add(DagModel(dag_id=dag_id, bundle_name="dags-folder"))
                added.append(dag_id)
        s.flush()
        for dag_id, run_id, state, run_after, conf in DAG_RUNS:
            at = datetime.fromisoformat(run_after)
            s.add(DagRun(dag_id=dag_id, run_id=run_id, run_type=run_id.split("__")[0] if "__" in run_id else "manual",
                         state=state, run_after=at, start_date=None if state == "queued" else at, conf=conf))
    yield DAG_RUNS
    with create_session() as s:
        s.query(DagRun).filter(DagRun.run_id.in_([r[1] for r in DAG_RUNS])).delete(synchronize_session=False)
        s.query(DagModel).filter(DagModel.dag_id.in_(added)).delete(synchronize_session=False)


def windows_of(ev: dict, drill: str) -> dict[str, dict]:
    return {w["start"]: w for w in next(d for d in ev["drills"] if d["drill"] == drill)["windows"]}


def test_api_evidence_lists_the_drill_runs_that_wrote_no_journal(client, auth, dag_runs):
    ev = client.get("/dr-drills/api/evidence", headers=token(auth)).json()
    listed = {(r["drill"], r["run_id"]): r for r in ev["airflow_runs"]}
    # A run with a journal, a run whose journal is unreadable, a DAG that is no drill, a run before the
    # period: none is listed. The others are, newest first, with their state and a link to the Airflow run.
    assert [k[1] for k in listed] == ["manual__killed", "manual__hidden", "scheduled__2026-10-07T03:00:00+00:00",
                                      "manual__other"]
    killed = listed[("dr_daily_verification", "manual__killed")]
    assert killed == {"drill": "dr_daily_verification", "cluster": "main", "run_id": "manual__killed",
                      "state": "running", "run_type": "manual", "run_after": "2026-12-04T10:00:00+00:00",
                      "start_date": "2026-12-04T10:00:00+00:00", "end_date": None,
                      "dag_run_href": "dags/dr_daily_verification/runs/manual__killed"}
    assert listed[(INCIDENT, "manual__hidden")]["state"] == "queued"
    assert ev["airflow_history"] == {"read": 6, "truncated": False, "limit": 10_000, "error": None}
    counts = {(d["drill"], d["cluster"]): (d["no_journal"], d["no_journal_run_ids"]) for d in ev["drills"]}
    assert counts[("dr_daily_verification", "main")] == (1, ["manual__killed"])
    assert counts[("dr_monthly_az_failure", "main")] == (1, ["scheduled__2026-10-07T03:00:00+00:00"])  # no conf
    assert counts[(RESTORE, "main")] == (0, [])
    # The failover drill's run was for cluster "other": not on the row of cluster "nope".
    assert counts[("dr_quarterly_failover_drill", "nope")] == (0, [])
    # A window where a run without journal happened is "no_journal", never "missed"; a window with a verdict
    # keeps it.
    daily = windows_of(ev, "dr_daily_verification")
    assert daily["2026-12-04"] == {"start": "2026-12-04", "end": "2026-12-05", "status": "no_journal",
                                   "run_ids": [], "no_journal_run_ids": ["manual__killed"]}
    assert daily["2026-12-06"]["status"] == "passed" and "no_journal_run_ids" not in daily["2026-12-06"]
    az = windows_of(ev, "dr_monthly_az_failure")
    assert az["2026-10-01"]["status"] == "no_journal" and az["2026-09-01"]["status"] == "missed"


def test_run_view_of_a_run_without_journal_says_what_airflow_knows(client, auth, dag_runs):
    r = client.get("/dr-drills/run?dag_id=dr_daily_verification&run_id=manual__killed", headers=token(auth))
    assert r.status_code == 404 and "No journal for this run" in r.text
    assert ('Airflow has this run: <span class="badge running">running</span> manual run after 2026-12-04T10:00'
            in r.text)
    assert 'href="../dags/dr_daily_verification/runs/manual__killed"' in r.text
    other = client.get("/dr-drills/run?dag_id=dr_quarterly_failover_drill&run_id=manual__other", headers=token(auth))
    assert '<span class="badge no_journal">success, no journal</span>' in other.text
    # A run Airflow does not have either: the view says only that there is no journal.
    never = client.get(f"/dr-drills/run?dag_id={RESTORE}&run_id=manual__never", headers=token(auth))
    assert never.status_code == 404 and "Airflow has this run" not in never.text


def test_runs_without_journal_of_a_dag_the_user_may_not_read_are_not_listed(airflow_db, source, dag_runs):
    from airflow.utils.session import create_session

    from drdrill.ui.app import evidence_for

    with create_session() as s:
        ev = evidence_for(source.evidence(), lambda dag: dag != INCIDENT, s)
    assert ev["airflow_runs"] and all(r["drill"] != INCIDENT for r in ev["airflow_runs"])
    assert all(d["drill"] != INCIDENT for d in ev["drills"])
    with create_session() as s:
        none = evidence_for(source.evidence(), lambda dag: dag == "dr_daily_verification", s)
    assert [r["run_id"] for r in none["airflow_runs"]] == ["manual__killed"]
    assert none["airflow_history"]["read"] == 1


def test_the_run_history_is_bounded_to_the_newest_runs(airflow_db, dag_runs):
    from airflow.utils.session import create_session

    from drdrill.ui.history import read_runs

    since, until = (datetime.fromisoformat(t) for t in ("2025-12-06T17:00:00+00:00", "2026-12-06T17:00:00+00:00"))
    with create_session() as s:
        runs, truncated = read_runs(s, [RESTORE, "dr_daily_verification", "dr_monthly_az_failure"], since, until,
                                    limit=2)
    assert truncated and [r.run_id for r in runs] == ["manual__2026-12-06T16:41:09.642987+00:00", "manual__killed"]
    with create_session() as s:
        assert read_runs(s, [], since, until) == ([], False)


def test_a_metadata_db_that_fails_still_shows_the_journals_evidence(source, tmp_path):
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from drdrill.ui.app import with_history

    with Session(create_engine(f"sqlite:///{tmp_path / 'empty.db'}")) as s:  # no dag_run table
        ev = with_history(source.evidence(), s, [RESTORE])
    assert ev["airflow_runs"] == [] and ev["runs"] == source.evidence()["runs"]
    err = ev["airflow_history"]["error"]
    assert err.startswith("cannot read Airflow's run history: OperationalError") and "dag_run" in err


# ------------------------------------------------------------------ journals
def test_journal_serves_a_listed_journal_byte_for_byte(client, auth, source):
    import hashlib

    run = first_restore(source)
    r = client.get("/dr-drills/journal?path=" + quote(run["journal"], safe=""), headers=token(auth))
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert hashlib.sha256(r.content).hexdigest() == run["sha256"]
    assert r.json()["run_id"] == run["run_id"]


@pytest.mark.parametrize("path", [
    "file:///etc/passwd",
    "/etc/passwd",
    "file://{J}/dr_monthly_restore_test/../../../../../../etc/passwd",
    "file://{J}/dr_monthly_restore_test/manual__2026-12-06T16_45_05.586812_00_00.gx.json",  # beside, not listed
    "file://{J}/dr_weekly_pod_kill/broken.json",  # unreadable: listed as such, never as evidence
])
def test_journal_refuses_what_the_evidence_did_not_list(client, auth, path):
    path = path.replace("{J}", str(FIXTURES / "journal"))
    r = client.get("/dr-drills/journal?path=" + quote(path, safe=""), headers=token(auth))
    assert r.status_code == 404
    assert "only the journals the DR drills page lists are served" in r.json()["detail"]
    assert "root:" not in r.text


# ------------------------------------------------------------------ the per-run view
def test_run_view_renders_the_journal(client, auth, source):
    run = first_restore(source)
    r = client.get(f"/dr-drills/run?dag_id={RESTORE}&run_id={quote(run['run_id'], safe='')}", headers=token(auth))
    assert r.status_code == 200, r.text
    restore = next(f for f in run["figures"] if f["name"] == "restore_seconds")
    assert "restore time" in r.text and f"{restore['value']:.3g} s" in r.text and "600 s" in r.text
    assert f'href="../{run["dag_run_href"]}"' in r.text and 'target="_top"' in r.text
    assert "journal?path=" + quote(run["journal"], safe="") in r.text
    assert "tables_match" in r.text and "estate_check" in r.text  # checks and steps from the journal itself


def test_run_view_of_a_failed_run_shows_its_failed_checks(client, auth, source):
    run = next(r for r in source.doc["runs"] if r["status"] == "failed")
    r = client.get(f"/dr-drills/run?dag_id={run['drill']}&run_id={quote(run['run_id'], safe='')}", headers=token(auth))
    assert r.status_code == 200
    assert 'class="badge failed"' in r.text and "unknown cluster &#x27;nope&#x27;" in r.text


def test_run_view_of_a_run_without_journal_says_so(client, auth):
    r = client.get(f"/dr-drills/run?dag_id={RESTORE}&run_id=manual__never", headers=token(auth))
    assert r.status_code == 404 and "No journal for this run" in r.text and "manual__never" in r.text


def test_run_view_escapes_journal_text(auth, tmp_path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    src = FixtureEvidence()
    run = first_restore(src)
    doc = json.loads(src.read(run["journal"]))
    doc["failures"] = ["<script>alert(1)</script>"]
    (tmp_path / "j.json").write_text(json.dumps(doc))
    run["journal"] = f"file://{tmp_path / 'j.json'}"
    root = FastAPI()
    root.mount("/dr-drills", create_app(src))
    with TestClient(root) as c:
        r = c.get(f"/dr-drills/run?dag_id={RESTORE}&run_id={quote(run['run_id'], safe='')}", headers=token(auth))
    assert r.status_code == 200 and "<script>alert" not in r.text and "&lt;script&gt;alert(1)" in r.text


def test_a_listed_journal_gone_since_is_a_502_naming_it(auth, tmp_path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    src = FixtureEvidence()
    gone = f"file://{tmp_path / 'gone.json'}"
    first_restore(src)["journal"] = gone
    root = FastAPI()
    root.mount("/dr-drills", create_app(src))
    with TestClient(root) as c:
        r = c.get("/dr-drills/journal?path=" + quote(gone, safe=""), headers=token(auth))
    assert r.status_code == 502 and "gone.json" in r.json()["detail"]


def test_run_view_of_a_journal_gone_since_says_what_failed(auth, tmp_path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    src = FixtureEvidence()
    run = first_restore(src)
    run["journal"] = f"file://{tmp_path / 'gone.json'}"
    root = FastAPI()
    root.mount("/dr-drills", create_app(src))
    with TestClient(root) as c:
        r = c.get(f"/dr-drills/run?dag_id={RESTORE}&run_id={quote(run['run_id'], safe='')}", headers=token(auth))
    assert r.status_code == 502 and "Cannot read the journal" in r.text and "gone.json" in r.text


# ------------------------------------------------------------------ the plugin
def test_plugin_declares_the_app_and_the_views_lightly():
    import subprocess
    import sys

    # Importing the plugin (what every Airflow process does) neither builds the app nor imports FastAPI's routes.
    code = ("import sys; import drdrill.ui.plugin as p; "
            "print('drdrill.ui.app' in sys.modules, p.DrDrillsPlugin.external_views[0]['href'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["False", "dr-drills/"]
    from drdrill.ui.plugin import DrDrillsPlugin

    views = {v["destination"]: v for v in DrDrillsPlugin.external_views}
    assert views["nav"]["nav_top_level"] is True and not views["nav"]["href"].startswith("/")
    assert views["dag_run"]["href"] == "dr-drills/run?dag_id={DAG_ID}&run_id={RUN_ID}"
    apps = DrDrillsPlugin.fastapi_apps
    assert apps[0]["url_prefix"] == "/dr-drills" and apps is DrDrillsPlugin.fastapi_apps  # built once


# ------------------------------------------------------------------ the real evidence model behind the routes
def test_the_estates_journals_through_the_evidence_model(auth, tmp_path):
    """The app's default source: the estate's journal location read by `drdrill.evidence.build`, journals
    served by their path (the fixture's real journals, as the estate's journal location)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from drdrill.core.paths import estate_path

    text = estate_path().read_text()
    assert "location: file://${DRDRILL_SANDBOX_DIR}/journal" in text
    estate = tmp_path / "estate.yaml"
    estate.write_text(text.replace("location: file://${DRDRILL_SANDBOX_DIR}/journal",
                                   f"location: file://{FIXTURES / 'journal'}"))
    root = FastAPI()
    # As of the fixture's date: its journals stay inside the twelve months whenever the test runs.
    as_of = datetime.fromisoformat(FixtureEvidence().doc["until"])
    source = EvidenceSource(str(estate), now=as_of)
    root.mount("/dr-drills", create_app(source))
    with TestClient(root) as c:
        ev = c.get("/dr-drills/api/evidence", headers=token(auth)).json()
        fixture = FixtureEvidence().doc
        assert {r["run_id"] for r in ev["runs"]} == {r["run_id"] for r in fixture["runs"]}
        run = next(r for r in ev["runs"] if r["drill"] == RESTORE)
        assert c.get("/dr-drills/journal?path=" + quote(run["journal"], safe=""), headers=token(auth)).json()[
            "run_id"] == run["run_id"]
        page = c.get(f"/dr-drills/run?dag_id={RESTORE}&run_id={quote(run['run_id'], safe='')}", headers=token(auth))
        assert page.status_code == 200 and "restore time" in page.text
    # One build serves the requests of the next seconds (the page, its JSON, the journal links).
    assert source.evidence() is source.evidence()
    # Without the cache every request reads the journals again: a journal written meanwhile shows.
    journals = tmp_path / "journal"
    (journals / RESTORE).mkdir(parents=True)
    live = tmp_path / "live.yaml"
    live.write_text(text.replace("location: file://${DRDRILL_SANDBOX_DIR}/journal", f"location: file://{journals}"))
    uncached = EvidenceSource(str(live), now=as_of, cache_seconds=0)
    assert uncached.evidence()["runs"] == []
    new = FIXTURES / "journal" / RESTORE / "manual__2026-12-06T16_41_09.642987_00_00.json"
    (journals / RESTORE / new.name).write_bytes(new.read_bytes())
    assert [r["run_id"] for r in uncached.evidence()["runs"]] == ["manual__2026-12-06T16:41:09.642987+00:00"]


# ------------------------------------------------------------------ the warm-up (the API server's first page)
def test_the_warm_up_reads_the_journals_before_the_first_request(auth, tmp_path, caplog):
    """The plugin's app reads the estate's journals in the background when it is built: the first request
    reads none of them again (their per-path cache is full), and serves the evidence the warm-up built."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from drdrill.core.paths import estate_path
    from drdrill.evidence import journals

    estate = tmp_path / "estate.yaml"
    estate.write_text(estate_path().read_text().replace("location: file://${DRDRILL_SANDBOX_DIR}/journal",
                                                        f"location: file://{FIXTURES / 'journal'}"))
    journals.clear_cache()
    source = EvidenceSource(str(estate), now=datetime.fromisoformat(FixtureEvidence().doc["until"]))
    caplog.set_level("INFO", logger="drdrill.ui.app")
    app = create_app(source, warm_up=True)
    app.state.warm_up.join(timeout=60)
    assert not app.state.warm_up.is_alive()
    # Every fixture journal is cached (by its path as the evidence names it); another test's warm-up thread
    # (the plugin's app, over the default estate) may add its own paths meanwhile: only these are compared.
    paths = [f"file://{p}" for p in (FIXTURES / "journal").rglob("*.json")]
    assert paths and all(p in journals._CACHE for p in paths), sorted(journals._CACHE)[:5]
    cached = {p: journals._CACHE[p] for p in paths}
    assert f"evidence of {len(FixtureEvidence().doc['runs'])} runs read ahead" in caplog.text
    root = FastAPI()
    root.mount("/dr-drills", app)
    with TestClient(root) as c:
        ev = c.get("/dr-drills/api/evidence", headers=token(auth)).json()
    assert {r["run_id"] for r in ev["runs"]} == {r["run_id"] for r in FixtureEvidence().doc["runs"]}
    assert all(journals._CACHE[p] is hit for p, hit in cached.items())  # not one journal read again


def test_a_warm_up_that_fails_is_logged_and_the_routes_say_why_with_a_503(auth, tmp_path, caplog):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    broken = tmp_path / "estate.yaml"
    broken.write_text("clusters: [not, a, mapping\n")
    caplog.set_level("INFO", logger="drdrill.ui.app")
    app = create_app(EvidenceSource(str(broken)), warm_up=True)
    app.state.warm_up.join(timeout=60)
    assert "cannot read the evidence ahead of the first request" in caplog.text and str(broken) in caplog.text
    assert create_app(EvidenceSource(str(broken))).state.warm_up is None  # only when asked (the plugin asks)
    root = FastAPI()
    root.mount("/dr-drills", app)
    with TestClient(root) as c:
        r = c.get("/dr-drills/api/evidence", headers=token(auth))
        assert r.status_code == 503 and "EstateError" in r.json()["detail"] and "not valid YAML" in r.json()["detail"]
        r = c.get("/dr-drills/run?dag_id=x&run_id=y", headers=token(auth))
        assert r.status_code == 503 and str(broken) in r.json()["detail"]
