"""What the DR drills page costs in a real browser over 1,000 journals: from the request to the page drawn.

The journals are the evidence benchmark's (``bench/evidence.py``: copies of real journals, each with its
own run id and time, spread over the last year in the proportions of the default schedules). The page's
app (`drdrill.ui.app`, behind Airflow's real auth: a JWT minted by the simple auth manager in a temporary
Airflow home, whose metadata DB the token check reads) is served by uvicorn on loopback, with no evidence
cache (every load builds the evidence again) and, as the plugin builds it in the API server, with its
warm-up (`EvidenceSource.warm_up`: every journal read in the background when the app is built; timed on
its own, and waited for before the first load, as an API server's own start takes longer than it).
SQLAlchemy's mappers are configured before the first load too, as in the API server the Airflow UI's
own first requests (its DAG list, before the nav entry can be clicked) have configured them.
Debian's ``chromium`` (Playwright, ``executable_path``) loads the page ``--runs`` times. Per load, from
the browser's own clock (``performance``): the whole load
(navigation start to the last chart drawn), of which the JSON (``api/evidence``: the evidence built
from every journal, with the metadata DB's run history) and the drawing (tables, calendars, charts).
The first load is the new process's first (its static files and auth too), the others reuse the
browser's cache. ``--no-warm-up`` shows the first load of an app built without it. The issue's target:
the page for 1,000 journals under 1 s. Prints figures; asserts nothing.
``python bench/ui_page.py [--journals 1000] [--runs 5] [--no-warm-up] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "include"))
CHROMIUM = "/usr/bin/chromium"
MARKS = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const mark = (n) => performance.getEntriesByName(n)[0].startTime;
  return {total: mark("dr-drills:rendered"), json: mark("dr-drills:evidence") - nav.responseEnd,
          draw: mark("dr-drills:rendered") - mark("dr-drills:evidence")};
}"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--journals", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5, help="page loads (the first is the new process's first)")
    ap.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                    help="build the app without its warm-up: the first load reads every journal")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="drdrill-bench-ui-") as tmp:
        tmp = Path(tmp)
        # A private Airflow home before Airflow is imported (the auth manager's token check reads its DB).
        os.environ.update({"AIRFLOW_HOME": str(tmp / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                           "AIRFLOW__CORE__DAGS_FOLDER": str(tmp / "dags"),
                           "AIRFLOW__CORE__PLUGINS_FOLDER": str(tmp / "plugins"),
                           # No user file to generate (and no password printed): the token below is minted.
                           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"})
        subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True,
                       capture_output=True, timeout=600)

        sys.path.insert(0, str(HERE))
        import uvicorn
        from airflow.api_fastapi.app import init_auth_manager
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
        from evidence import FIXTURES, generate  # bench/evidence.py
        from fastapi import FastAPI
        from playwright.sync_api import sync_playwright

        from drdrill.core.paths import DEFAULT_ESTATE
        from drdrill.ui.app import EvidenceSource, create_app

        now = datetime.now(UTC)
        counts = generate(tmp / "journal", args.journals, FIXTURES, now)
        estate = tmp / "estate.yaml"
        estate.write_text(Path(DEFAULT_ESTATE).read_text().replace(
            "location: file://${DRDRILL_SANDBOX_DIR}/journal", f"location: file://{tmp / 'journal'}"))
        root = FastAPI()
        t0 = time.perf_counter()
        app = create_app(EvidenceSource(str(estate), now=now, cache_seconds=0), warm_up=args.warm_up)
        if app.state.warm_up is not None:
            app.state.warm_up.join()
        warm_up = time.perf_counter() - t0
        # What the Airflow UI's own first requests do in the API server before a user can open the page (0.6 s).
        from airflow.models.dagrun import DagRun  # noqa: F401
        from sqlalchemy.orm import configure_mappers

        configure_mappers()
        root.mount("/dr-drills", app)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(root, host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        token = init_auth_manager().generate_jwt(SimpleAuthManagerUser(username="bench", role="viewer"))

        loads = []
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM)
                ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
                ctx.add_cookies([{"name": "_token", "value": token, "url": f"http://127.0.0.1:{port}"}])
                for _ in range(args.runs):
                    page = ctx.new_page()
                    page.goto(f"http://127.0.0.1:{port}/dr-drills/")
                    page.locator("body[data-loaded=true]").wait_for(timeout=60_000)
                    loads.append({k: v / 1000 for k, v in page.evaluate(MARKS).items()})
                    runs = page.locator("#tile-runs .big").inner_text()
                    page.close()
                browser.close()
        finally:
            server.should_exit = True

    nxt = loads[1:] or loads
    out = {"journals": sum(counts.values()), "per_drill": counts, "runs_on_page": int(runs),
           "warm_up_s": round(warm_up, 3) if args.warm_up else None,
           "first": {k: round(v, 3) for k, v in loads[0].items()},
           "next_median": {k: round(statistics.median(x[k] for x in nxt), 3) for k in loads[0]},
           "target_s": 1.0}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"DR drills page over {out['journals']} journals ({out['runs_on_page']} runs on the page), in chromium:")
    if args.warm_up:
        print(f"  app built, its warm-up done in the background in {warm_up:.3f} s (before the first request)")
    else:
        print("  app built without its warm-up (--no-warm-up): the first load reads every journal")
    for name, fig in (("first load", out["first"]), (f"next loads (median of {len(nxt)})", out["next_median"])):
        print(f"  {name:<22} whole page {fig['total']:.3f} s | api/evidence {fig['json']:.3f} s | "
              f"drawing {fig['draw']:.3f} s   (target: under {out['target_s']:g} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
