"""The DR drills page in a real browser, inside a real Airflow UI, over journals of real drill runs.

A real ``airflow api-server`` (the session's private Airflow home and metadata DB, the repository's
plugins folder) serves the Airflow UI and the plugin (`drdrill.ui`); Debian's ``chromium``, driven
by Playwright (``executable_path``: no browser is downloaded), logs in through the simple auth
manager's login page with the password the api-server generated, opens "DR drills" from the nav
and checks that the charts and the calendar show the figures of the restore test this session ran
(`passed_restore_test`), that a point links to its Airflow run and to its journal, and that the
per-run view renders that journal. Anonymous requests are refused. Screenshots go to
``tests/artifacts/`` (git-ignored); ``docs/dr-drills.png`` in the README is one of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

from drdrill.sandbox.airflow import free_port, stop_group, wait_for

pytestmark = pytest.mark.sandbox

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
DRILL = "dr_monthly_restore_test"


def duration(v: float) -> str:
    """What the page's ``duration()`` prints for a figure under two minutes (three significant digits)."""
    return f"{float(f'{v:.3g}'):g} s"


def _status(url: str, accept: str = "application/json") -> tuple[int, str]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **kw):
            return None

    req = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=10) as r:
            return r.status, ""
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Location") or ""
    except OSError:  # not listening yet
        return 0, ""


@pytest.fixture(scope="module")
def api_server(airflow_db, passed_restore_test, tmp_path_factory):
    """One ``airflow api-server`` on a free loopback port for the module, stopped by PID (its process group)."""
    home = Path(airflow_db)
    logs = tmp_path_factory.mktemp("api-server")
    port = free_port(28400)
    env = {**os.environ, "AIRFLOW__API__WORKERS": "1", "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False"}
    airflow = str(Path(sys.executable).parent / "airflow")
    with open(logs / "api-server.log", "w") as log:
        proc = subprocess.Popen([airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=logs)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _status(f"{url}/api/v2/monitor/health")[0] == 200, "the api-server's health endpoint", 120,
                 procs={"api-server": proc}, logs=logs)
        passwords = home / "simple_auth_manager_passwords.json.generated"
        yield {"url": url, "password": json.loads(passwords.read_text())["admin"], "log": logs / "api-server.log"}
    finally:
        stop_group(proc)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield b
        finally:
            b.close()


def test_anonymous_requests_are_refused(api_server):
    url = api_server["url"]
    assert _status(f"{url}/dr-drills/api/evidence")[0] == 401
    assert _status(f"{url}/dr-drills/journal?path=x")[0] == 401
    assert _status(f"{url}/dr-drills/static/vendor/uPlot.iife.min.js")[0] == 401
    code, location = _status(f"{url}/dr-drills/", accept="text/html")
    assert code in (302, 307) and "/auth/login" in location, (code, location)


def test_the_page_shows_this_sessions_restore_test_with_links(api_server, browser, passed_restore_test):
    dr, doc = passed_restore_test
    seconds = doc["measurements"]["total_seconds"]
    assert seconds < 120  # printed in seconds (duration() below)
    url = api_server["url"]
    ARTIFACTS.mkdir(exist_ok=True)
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = ctx.new_page()
    try:
        # The nav entry, through the real login page (the api-server's generated admin password).
        page.goto(f"{url}/plugin/dr-drills")
        page.locator("input[name=username]").fill("admin")
        page.locator("input[type=password]").fill(api_server["password"])
        page.locator("button[type=submit]").click()
        page.wait_for_url(f"{url}/plugin/dr-drills", timeout=30_000)
        page.get_by_text("DR drills", exact=True).first.wait_for(timeout=30_000)  # the top-level nav entry
        frame = page.frame_locator("iframe").first
        frame.locator("body[data-loaded=true]").wait_for(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "dr-drills-in-airflow.png"))

        # The restore chart has this run as a point: its measured time against its target, and links.
        chart = frame.locator("#chart-restore_seconds")
        assert int(chart.get_attribute("data-points")) >= 1
        assert chart.locator("canvas").count() >= 1  # uPlot drew it (served by the plugin, no internet)
        chart.locator("summary").click()  # the points' table under the chart
        row = chart.locator(f"tr[data-run-id='{dr.run_id}']")
        assert duration(seconds) in row.inner_text() and "met" in row.inner_text()
        run_link = row.get_by_role("link", name="Airflow run")
        assert run_link.get_attribute("target") == "_top"
        assert run_link.get_attribute("href") == f"../dags/{DRILL}/runs/{quote(dr.run_id, safe='')}"
        journal_href = row.get_by_role("link", name="journal").get_attribute("href")
        # "latest" is the newest restore of the session (other tests restore after this fixture's run): the
        # journals' newest point, as the evidence model reads them.
        from drdrill.core.estate import load_estate
        from drdrill.evidence import build

        points = build(load_estate()).trends()["restore_seconds"]
        newest = points[-1]
        latest = chart.locator(".latest").inner_text()
        assert latest == (f"latest {duration(newest['value'])} (target {newest['target'] / 60:g} min) · "
                          f"{len(points)} run(s)"), (latest, newest)

        # The calendar: this month's window of the restore test of main is passed, and links to the run.
        cal = frame.locator(f".cal[data-drill={DRILL}][data-cluster=main]")
        cell = cal.locator(f"[data-start='{dr.run_after.strftime('%Y-%m')}-01']")
        assert cell.get_attribute("data-status") == "passed", cell.get_attribute("title")
        assert dr.run_id in cell.get_attribute("title")
        assert cal.locator("[data-status]").count() >= 12  # twelve months (thirteen when today is not the 1st)

        # The journal link serves the journal this run wrote (same session cookie as the iframe).
        r = ctx.request.get(f"{url}/dr-drills/{journal_href}")
        assert r.status == 200 and r.json()["run_id"] == dr.run_id

        # The run link opens the run in the Airflow UI (out of the sandboxed iframe, through the UI's router),
        # where the run's "DR drill evidence" tab (the dag_run external view) renders its journal.
        run_link.click()
        page.wait_for_url(f"{url}/dags/{DRILL}/runs/**", timeout=30_000, wait_until="commit")
        page.get_by_text("DR drill evidence", exact=True).first.click()
        view = page.frame_locator("iframe").first.locator("main.run-view")
        view.wait_for(timeout=30_000)
        assert duration(seconds) in view.inner_text() and dr.run_id in view.inner_text()
        page.screenshot(path=str(ARTIFACTS / "dr-drills-run-tab.png"))

        # The page itself, whole (the README's image), and the per-run view of this run.
        direct = ctx.new_page()
        direct.goto(f"{url}/dr-drills/")
        direct.locator("body[data-loaded=true]").wait_for(timeout=30_000)
        direct.screenshot(path=str(ARTIFACTS / "dr-drills.png"), full_page=True)
        direct.goto(f"{url}/dr-drills/run?dag_id={DRILL}&run_id={quote(dr.run_id, safe='')}")
        text = direct.locator("main").inner_text()
        assert "restore time" in text and duration(seconds) in text and "passed" in text
        direct.screenshot(path=str(ARTIFACTS / "dr-drills-run.png"), full_page=True)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "dr-drills-failure.png"))
        print(api_server["log"].read_text()[-4000:])
        raise
    finally:
        ctx.close()
