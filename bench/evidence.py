"""What the evidence costs: the DR dashboard's model and the compliance report over 1,000 journals.

The journals are realistic: copies of real journals (``tests/fixtures/journals/``, written by sandbox
runs: restore tests, node and region failovers, the incident runbook, chaos drills, daily verifications
with their scorecard; or ``--source DIR``, e.g. a sandbox's ``.sandbox/journal``), each with its own run
id and time, spread over the last year in the proportions of the default schedules (the daily verification
most, the quarterly failover least), in a temporary journal location.

Timed: ``drdrill.evidence.build()`` + ``Evidence.to_dict()`` + ``json.dumps`` (what the page's JSON route
does), cold (a new process's first request: every journal read and hashed) and warm (journals are written
once, so what was extracted from one is cached per path), and rendering the compliance report as HTML and
Markdown. The issue's target: the page for 1,000 journals under 1 s. Needs no sandbox and no Airflow.
Prints figures; asserts nothing. ``python bench/evidence.py [--journals 1000] [--runs 5] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))

FIXTURES = ROOT / "tests" / "fixtures" / "journals"
ATTACHMENT = re.compile(r"\.[A-Za-z][A-Za-z_-]*\.json$")
# Share of the journals per drill: runs a year under the default schedules (daily 365, weekly 52, monthly 12
# each, quarterly 4, a few incidents), scaled to the number asked for.
MIX = {"dr_daily_verification": 365, "dr_weekly_pod_kill": 52, "dr_monthly_restore_test": 12,
       "dr_monthly_az_failure": 12, "dr_monthly_aws_backup_restore_test": 12, "dr_quarterly_failover_drill": 4,
       "dr_postgres_primary_failover": 2}


def templates(source: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in sorted(source.glob("dr_*/*.json")):
        if ATTACHMENT.search(f.name):
            continue
        try:
            doc = json.loads(f.read_text())
        except ValueError:
            continue
        out.setdefault(doc["drill"], []).append(doc)
    return out


def generate(dest: Path, n: int, source: Path, now: datetime, seed: int = 15) -> dict[str, int]:
    """``n`` journals under ``dest``: copies of the templates with new run ids and dates over the last year."""
    from drdrill.core.scratch import run_tag

    rng = random.Random(seed)
    tpl = templates(source)
    mix = {d: w for d, w in MIX.items() if d in tpl}
    total = sum(mix.values())
    counts = {d: max(1, round(n * w / total)) for d, w in mix.items()}
    counts[max(counts, key=counts.get)] += n - sum(counts.values())  # exactly n
    for drill, count in counts.items():
        d = dest / drill
        d.mkdir(parents=True, exist_ok=True)
        step = timedelta(days=365) / count
        for i in range(count):
            at = now - timedelta(days=365) + step * i + timedelta(minutes=rng.randrange(0, 60))
            doc = dict(rng.choice(tpl[drill]))
            doc.update(run_id=f"scheduled__{at.isoformat()}", run_type="DagRunType.SCHEDULED", run_after=str(at),
                       written_at=(at + timedelta(minutes=3)).isoformat(timespec="milliseconds"))
            (d / f"{run_tag(doc['run_id'])}.json").write_text(json.dumps(doc, indent=2))
    return counts


def timed(fn, runs: int) -> dict:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4),
            "max_s": round(max(times), 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--journals", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5, help="timed runs of each figure (median)")
    ap.add_argument("--source", type=Path, default=FIXTURES, help="real journals to copy (default: the fixtures)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from drdrill import evidence
    from drdrill.core.estate import Journal, load_estate
    from drdrill.core.paths import DEFAULT_ESTATE
    from drdrill.evidence.report import render

    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="drdrill-bench-evidence-") as tmp:
        loc = Path(tmp) / "journal"
        counts = generate(loc, args.journals, args.source, now)
        size = sum(f.stat().st_size for f in loc.rglob("*.json"))
        estate = load_estate(DEFAULT_ESTATE, topology=False).model_copy(
            update={"journal": Journal(location=f"file://{loc}")})

        def page() -> str:
            return json.dumps(evidence.build(estate, now=now).to_dict())

        def cold() -> str:
            evidence.clear_cache()
            return page()

        report = {"journals": sum(counts.values()), "bytes": size, "per_drill": counts,
                  "cold": timed(cold, args.runs)}
        body = page()
        report["warm"] = timed(page, args.runs)
        report["json_bytes"] = len(body)
        ev = evidence.build(estate, now=now)
        report["build_warm"] = timed(lambda: evidence.build(estate, now=now), args.runs)
        report["to_dict"] = timed(ev.to_dict, args.runs)
        report["html"] = timed(lambda: render(ev, "html"), args.runs)
        report["md"] = timed(lambda: render(ev, "md"), args.runs)
        report["html_bytes"], report["md_bytes"] = len(render(ev, "html")), len(render(ev, "md"))

    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    ms = lambda k: f"{report[k]['median_s'] * 1000:8.1f} ms (min {report[k]['min_s'] * 1000:.1f}, max "  # noqa: E731
    print(f"evidence over {report['journals']} journals ({report['bytes'] / 1e6:.1f} MB; "
          + ", ".join(f"{d} {c}" for d, c in counts.items()) + ")")
    for key, what in (("cold", "page JSON, cold (build + to_dict + json.dumps, every journal read)"),
                      ("warm", "page JSON, warm (journals cached per path)"),
                      ("build_warm", "  of which build(), warm"), ("to_dict", "  of which to_dict()"),
                      ("html", "compliance report, html"), ("md", "compliance report, md")):
        print(f"  {what:<68} {ms(key)}{report[key]['max_s'] * 1000:.1f})")
    print(f"  page JSON {report['json_bytes'] / 1e6:.2f} MB; report html {report['html_bytes'] / 1e6:.2f} MB, "
          f"md {report['md_bytes'] / 1e6:.2f} MB")
    verdict = "under" if report["cold"]["median_s"] < 1 and report["warm"]["median_s"] < 1 else "OVER"
    print(f"target: the page for 1,000 journals under 1 s: {verdict} (cold and warm)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
