"""What the backup estate costs the daily verification: each system's checks on the sandbox, and the
3-2-1-1-0 scorecard's search for the last restore test as the journals pile up.

1. ``aws_backup`` and ``object_lock`` (the sandbox's entries, on its moto over TLS): the wall time of
   `drdrill.drills.backups.daily` per system, median of ``--runs``. The Object Lock entry writes one
   small locked probe object per run (``delete_probe: true``).
2. The scorecard reads every restore-test journal of the cluster to find the newest one that restored
   (`drdrill.drills.backups.scorecard.last_restore_test`). The journals are realistic: copies of the
   sandbox's newest real restore-test journal, each with its own run id and time, in a temporary
   journal directory of 10, 100 and 1,000 of them.

Needs a running sandbox (`make sandbox-up`) that has run one restore test (`make demo` does). Prints
figures; asserts nothing. ``python bench/backup_estate.py [--runs 3] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path


def _timed(fn, runs: int) -> dict:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4),
            "max_s": round(max(times), 4), "results": len(out) if hasattr(out, "__len__") else None}


def systems(runs: int) -> dict:
    from drdrill.core.estate import load_estate
    from drdrill.drills import backups

    estate = load_estate()
    out = {}
    for kind in backups.SYSTEMS:
        if getattr(estate.backups, kind):
            out[kind] = _timed(lambda kind=kind: backups.daily(kind, estate), runs)
            failed = [r.line() for r in backups.daily(kind, estate) if r.failed]
            if failed:
                out[kind]["failed"] = failed
    return out


def journals(sizes: list[int], runs: int) -> dict:
    from drdrill.core import journal
    from drdrill.core.estate import load_estate
    from drdrill.drills.backups import scorecard

    estate = load_estate()
    real = sorted(journal.listed(estate.journal.location, estate.journal.conn_id, scorecard.RESTORE_DRILL))
    docs = [journal.read(p, estate.journal.conn_id) for p in real]
    docs = [d for d in docs if scorecard.restored(d)]
    if not docs:
        sys.exit("no restore-test journal that restored in the sandbox: run `make demo` (or the restore test) first")
    template = max(docs, key=lambda d: str(d.get("written_at")))
    size = len(json.dumps(template))
    out = {"template_bytes": size}
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-journals-") as tmp:
            d = Path(tmp) / scorecard.RESTORE_DRILL
            d.mkdir()
            start = datetime.now(UTC) - timedelta(days=n)
            for i in range(n):
                at = start + timedelta(days=i)
                run_id = f"scheduled__{at:%Y-%m-%dT%H:%M:%S}.{i:06d}+00:00"
                doc = {**template, "run_id": run_id, "written_at": at.isoformat()}
                (d / f"{run_id.replace(':', '_').replace('+', '_')}.json").write_text(json.dumps(doc, indent=2))
            bench_estate = estate.model_copy(update={"journal": estate.journal.model_copy(
                update={"location": f"file://{tmp}"})})
            out[str(n)] = _timed(lambda e=bench_estate: [scorecard.last_restore_test(e, template["cluster"])], runs)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    report = {"systems": systems(args.runs), "last_restore_test": journals([10, 100, 1000], args.runs)}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"backup estate on the sandbox (median of {args.runs})")
    for kind, r in report["systems"].items():
        print(f"  {kind:<12} {r['results']:>3} checks in {r['median_s']:.3f} s (min {r['min_s']:.3f}, max "
              f"{r['max_s']:.3f})" + (f"  FAILED: {r['failed']}" if r.get("failed") else ""))
    j = report["last_restore_test"]
    print(f"scorecard: the last restore test among N journals ({j['template_bytes']} bytes each, copies of a "
          "real one)")
    for n in ("10", "100", "1000"):
        print(f"  {n:>5} journals: {j[n]['median_s'] * 1000:8.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
