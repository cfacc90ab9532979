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
import re
import shlex
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import common

DRILL = "dr_daily_verification"
STEPS = ["select_clusters", "backup_repository", "backup_integrity", "wal_archiving", "replication", "journal"]


_RUN = re.compile(r"^(\S+Z) .*\brun: (pgbackrest .*?) \[drdrill\.core\.runner\]")
_EXIT = re.compile(r"\bexit code (\d+) after ([\d.]+)s")
_KILLED = re.compile(r"^(\S+Z) .*timed out after (\d+)s: pgbackrest")


def pgbackrest_commands(log: Path) -> list[dict[str, Any]]:
    """Every pgBackRest command the run's log shows, in order: argv as messages show it, seconds, outcome.

    Tasks run one after the other under ``airflow dags test``, so each ``run:`` line is followed by
    its own ``exit code`` line, or by the failed check of a command killed by its timeout.
    """
    from drdrill.hooks.pgbackrest import PgBackRestHook

    out: list[dict[str, Any]] = []
    started: datetime | None = None
    for line in log.read_text(errors="replace").splitlines():
        if m := _RUN.match(line):
            started = datetime.fromisoformat(m[1])
            out.append({"command": PgBackRestHook.command_line(shlex.split(m[2])), "seconds": None, "outcome": "?"})
        elif out and out[-1]["seconds"] is None and (m := _EXIT.search(line)):
            out[-1].update(seconds=float(m[2]), outcome=f"exit code {m[1]}")
        elif out and out[-1]["seconds"] is None and started and (m := _KILLED.match(line)):
            out[-1].update(seconds=round((datetime.fromisoformat(m[1]) - started).total_seconds(), 1),
                           outcome=f"killed after {m[2]} s")
    return out


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
    probes = [r["details"]["probe"] for r in run.doc["results"] if r["name"] == "repo_reachable"
              and "probe" in (r.get("details") or {})]
    return {"mode": mode, "repo": repo, **run.figures(), "startup": round(run.startup(), 2),
            "steps": steps, "connections_accepted": accepted, "probes": probes,
            "pgbackrest_commands": pgbackrest_commands(run.log)}


def report(r: dict[str, Any]) -> None:
    print(f"\n== repo{r['repo']} endpoint {r['mode']}: {r['status'].upper()} in {r['process_wall']:.1f} s wall "
          f"(Airflow start-up {r['startup']:.1f} s)")
    for task in STEPS:
        matching = {k: v for k, v in r["steps"].items() if k == task or k.startswith(task + "[")}
        for k, v in matching.items():
            print(f"   {k:<28} {v:8.1f} s" if v is not None else f"   {k:<28}        -")
    for p in r["probes"]:
        print(f"   probe of repo{p['repo']} ({p['endpoint']}): {'answered' if p['answered'] else 'no answer'} in "
              f"{p['seconds']:.2f} s (timeout {p['timeout']:g} s)")
    print("   pgBackRest commands:")
    for c in r["pgbackrest_commands"]:
        secs = f"{c['seconds']:8.1f} s" if c["seconds"] is not None else "       - "
        print(f"     {secs}  {c['outcome']:<18} {c['command']}")
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
