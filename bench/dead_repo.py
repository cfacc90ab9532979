"""How long does the daily verification take to give its verdict when a repo's S3 endpoint is dead?

Prints figures; it never asserts a timing. For each mode, ``refused`` (a closed port) and ``hung``
(a TCP server that accepts and never answers, `drdrill.sandbox.faults.Blackhole`), it writes a
copy of the sandbox cluster's pgbackrest.conf with repo N pointed there and an estate naming that
copy, runs ``airflow dags test dr_daily_verification`` and prints the wall time, each step's
seconds and the verdict (every failed check). The sandbox's own S3 is never touched: WAL archiving
keeps using the real pgbackrest.conf.

Usage: python bench/dead_repo.py [--mode refused|hung|both] [--repo N] [--json]
See bench/README.md.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import common

DRILL = "dr_daily_verification"
STEPS = ["select_clusters", "backup_repository", "backup_integrity", "wal_archiving", "replication", "journal"]


def one_run(mode: str, repo: int, estate: Any, cluster: Any, env: dict[str, str], logdir: Path) -> dict[str, Any]:
    from drdrill.core.paths import estate_path
    from drdrill.sandbox import faults

    conf = Path(cluster.pgbackrest.config).with_name(f"bench-dead-repo{repo}-{mode}.conf")
    estate_text = estate_path().read_text()
    old = "${DRDRILL_SANDBOX_DIR}/pgbackrest/pgbackrest.conf"
    with faults.dead_endpoint(mode) as (port, hole), tempfile.TemporaryDirectory() as tmp:
        try:
            faults.conf_with_repo_port(cluster, repo, port, conf)
            variant = Path(tmp) / "estate.yaml"
            variant.write_text(faults.estate_with_config(estate_text, old, conf))
            common.progress(f"{mode}: repo{repo} endpoint -> 127.0.0.1:{port}; running {DRILL} ...")
            run = common.run_drill(DRILL, {}, estate, {**env, "DRDRILL_ESTATE": str(variant)},
                                   logdir / f"dead-repo{repo}-{mode}.log")
        finally:
            conf.unlink(missing_ok=True)
        accepted = hole.accepted if hole else None
    steps = {s["task_id"]: s.get("seconds") for s in run.timed_steps()}
    return {"mode": mode, "repo": repo, **run.figures(), "startup": round(run.startup(), 2),
            "steps": steps, "connections_accepted": accepted}


def report(r: dict[str, Any]) -> None:
    print(f"\n== repo{r['repo']} endpoint {r['mode']}: {r['status'].upper()} in {r['process_wall']:.1f} s wall "
          f"(Airflow start-up {r['startup']:.1f} s)")
    for task in STEPS:
        matching = {k: v for k, v in r["steps"].items() if k == task or k.startswith(task + "[")}
        for k, v in matching.items():
            print(f"   {k:<28} {v:8.1f} s" if v is not None else f"   {k:<28}        -")
    if r["connections_accepted"] is not None:
        print(f"   connections the blackhole accepted: {r['connections_accepted']}")
    print("   verdict:")
    for f in r["failures"]:
        print(f"     {f[:220]}")


def main() -> int:
    ap = common.parser(__doc__)
    common.add_estate_options(ap)
    ap.add_argument("--mode", choices=["refused", "hung", "both"], default="both")
    ap.add_argument("--repo", type=int, default=2, help="the repo whose endpoint dies (an S3 repo)")
    args = ap.parse_args()
    common.use_checkout_package()
    env = common.airflow_env()
    estate, cluster = common.load_cluster(ap, args, DRILL, env)
    if cluster.sandbox is None or os.geteuid() != 0:
        ap.error("needs root and a sandbox cluster: it writes a copy of the cluster's pgbackrest.conf as postgres")
    logdir = common.log_dir(env)
    common.ensure_airflow_db(env, logdir)
    modes = ["refused", "hung"] if args.mode == "both" else [args.mode]
    results = [one_run(m, args.repo, estate, cluster, env, logdir) for m in modes]
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    else:
        for r in results:
            report(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
