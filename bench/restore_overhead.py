"""How much does running the restore test through Airflow cost, against doing the same by hand?

Prints figures; it never asserts a timing. On the estate the environment selects (default: the
project's sandbox; ``$DRDRILL_ESTATE`` / ``$DRDRILL_SANDBOX_DIR`` pick another one):

1. the BARE sequence, in its own process with no Airflow: ``pgbackrest restore`` with the drill's
   options into a fresh scratch directory (drdrill's scratch rules), ``pg_ctl start`` on a free
   scratch port, wait until it accepts connections and is out of recovery, exact ``count(*)`` of
   every user table; then ``pg_ctl stop -m immediate`` and ``rm -r``, always;
2. the SAME WORK done by ``dr_monthly_restore_test`` under ``airflow dags test``, timed from the
   run's journal (step seconds and measurements), with Airflow's fixed start-up shown apart and
   Great Expectations' fixed cost (import, context) measured apart (in the drill: its load before
   the data_quality step, from the journal; and in a fresh process);
3. the parse time of every DAG file (fresh process, Airflow already imported) and peak memory.

Usage: python bench/restore_overhead.py [--repo 1|2] [--recovery-point latest|pitr] [--runs N] [--json]
See bench/README.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common

DRILL = "dr_monthly_restore_test"
POLL_SECONDS = 0.05  # bare sequence: how often "promoted and accepting connections?" is asked
PARSE_MIN_SAMPLES = 3  # parse times are milliseconds: never fewer samples than this


# --------------------------------------------------------------------------- 1. bare sequence
def prepare_primary(cluster: Any, recovery_point: str) -> str | None:
    """Untimed, like the drill's ledger: a PITR target, a commit after it, WAL switched and archived.

    Returns the PITR target (PostgreSQL time text) or None for "latest". The commit after the
    target is ``txid_current()`` in its own transaction: a commit record, no data.
    """
    from drdrill.core.polling import wait_until
    from drdrill.hooks import postgres as pg

    p = cluster.primary
    with pg.connect(cluster, p.host, p.port) as c:
        target = pg.query_one(c, "SELECT clock_timestamp()")[0]
        time.sleep(0.005)
        pg.query_one(c, "SELECT txid_current()")
        segment = pg.query_one(c, "SELECT pg_walfile_name(pg_switch_wal())")[0]
        wait_until(lambda: pg.query_one(c, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")[0]
                      >= segment, timeout=300, interval=0.1, what=f"WAL segment {segment} to be archived")
    return target.isoformat(sep=" ") if recovery_point == "pitr" else None


class Tool:
    """One command of the bare sequence, run as the cluster's OS user in its own process group.

    Unlike a plain wait, an interrupted run (Ctrl-C, SIGTERM) stops the command's whole group
    before the scratch directory is removed, so no pgbackrest keeps writing into it.
    """

    def __init__(self, run_as: str | None) -> None:
        self.run_as = run_as

    def run(self, argv: list[str], timeout: float) -> None:
        if self.run_as and self.run_as != "root" and os.geteuid() == 0:
            argv = ["runuser", "-u", self.run_as, "--", *argv]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                text=True, start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except BaseException:
            self._stop(proc)
            raise
        if proc.returncode != 0:
            raise RuntimeError(f"exit code {proc.returncode} from {argv[0]} ... {argv[-1]}:\n{out[-2000:]}")

    @staticmethod
    def _stop(proc: subprocess.Popen) -> None:
        """SIGTERM, then SIGKILL, to the process group this tool started (by its id)."""
        for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=grace)
                time.sleep(0.2)  # pgbackrest's worker processes exit just after their parent
                return
            except subprocess.TimeoutExpired:
                continue


def bare_sequence(cluster_name: str, repo: int, recovery_point: str) -> dict[str, Any]:
    """Restore, start, wait, count by hand; the scratch server and directory are removed always."""
    from drdrill.core import scratch
    from drdrill.core.estate import load_estate
    from drdrill.core.runner import runner_for
    from drdrill.hooks import postgres as pg
    from drdrill.hooks.pgbackrest import PgBackRestHook

    estate = load_estate()
    cluster = estate.cluster(cluster_name)
    spec = cluster.backup_runner  # where the drill restores and runs the scratch server
    if spec.kind != "local":
        raise SystemExit(f"the bare sequence runs the tools on this machine; cluster {cluster.name} restores "
                         f"through a {spec.kind!r} runner")
    runner = runner_for(spec)  # scratch create/remove: the drill's own rules
    tool = Tool(spec.run_as)
    bin_dir = cluster.postgres.bin_dir
    target = prepare_primary(cluster, recovery_point)
    s = scratch.allocate(estate, f"bench-bare-{datetime.now(UTC):%Y%m%dT%H%M%S%f}")
    out: dict[str, Any] = {"scratch_dir": s.dir, "scratch_port": s.port, "target_time": target}
    t = time.monotonic()
    try:
        scratch.create(s, runner, spec.run_as)
        out["create_scratch"] = time.monotonic() - t

        # The drill's options (drdrill.hooks.pgbackrest.PgBackRestHook.restore), written out by hand.
        opts = [f"--repo={repo}", f"--pg1-path={s.data_dir}", "--delta", "--archive-mode=off",
                f"--process-max={cluster.pgbackrest.process_max}"]
        if target:
            opts += ["--type=time", f"--target={target}", "--target-action=promote"]
        t = time.monotonic()
        tool.run(PgBackRestHook.for_cluster(cluster, runner).argv("restore", *opts), timeout=7200)
        out["restore"] = time.monotonic() - t

        # The drill's own scratch configuration (drdrill.drills.restore.start_server); -W: do not wait.
        from drdrill.drills.restore import configure_scratch

        t = time.monotonic()
        configure_scratch(runner, s, role=cluster.postgres.user)
        tool.run([str(bin_dir / "pg_ctl"), "-D", str(s.data_dir), "-l", str(s.logfile), "-W", "start"],
                 timeout=60)
        out["start"] = time.monotonic() - t

        t = time.monotonic()
        deadline = t + 1800
        while True:
            try:
                with pg.connect(cluster, s.host, s.port, "postgres") as c:
                    if not pg.query_one(c, "SELECT pg_is_in_recovery()")[0]:
                        break
            except Exception:  # noqa: BLE001 - "not up yet", like the drill's trigger
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"scratch server {s.host}:{s.port} not promoted; see {s.logfile}")
            time.sleep(POLL_SECONDS)
        out["wait_for_promotion"] = time.monotonic() - t

        t = time.monotonic()
        with pg.connect(cluster, s.host, s.port) as c:
            tables = pg.user_tables(c, cluster.restore_test.exclude_schemas)
            counts = pg.count_rows(c, tables)
        out["count_rows"] = time.monotonic() - t
        out["tables"] = len(tables)
        out["rows"] = sum(counts.values())
        out["total"] = out["restore"] + out["start"] + out["wait_for_promotion"] + out["count_rows"]
    finally:
        t = time.monotonic()
        scratch.remove(Path(s.dir), runner, bin_dir)  # pg_ctl stop -m immediate, then rm -r
        out["cleanup"] = time.monotonic() - t
    return out


def bare_child(result: Path, cluster: str, repo: int, recovery_point: str) -> int:
    """Entry point of the bare-sequence process (so its peak memory is its own)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally: clean up the scratch
    result.write_text(json.dumps(bare_sequence(cluster, repo, recovery_point)))
    return 0


def run_bare(args: argparse.Namespace, env: dict[str, str], logdir: Path, n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="drdrill-bench-") as tmp:
        result = Path(tmp) / "bare.json"
        log = logdir / f"{n}-bare.log"
        rc, wall, rss = common.run_measured([sys.executable, str(Path(__file__).resolve()), "--bare-child", str(result),
                                             "--cluster", args.cluster, "--repo", str(args.repo),
                                             "--recovery-point", args.recovery_point], env, log)
        if rc != 0 or not result.exists():
            raise SystemExit(f"bare sequence failed (exit code {rc}); see {log}:\n{log.read_text()[-2000:]}")
        return {**json.loads(result.read_text()), "process_wall": wall, "maxrss_kb": rss, "log": str(log)}


# --------------------------------------------------------------------------- 2. the drill
def run_drill(args: argparse.Namespace, estate: Any, env: dict[str, str], logdir: Path, n: int) -> dict[str, Any]:
    conf = {"cluster": args.cluster, "repo": args.repo, "recovery_point": args.recovery_point}
    run = common.run_drill(DRILL, conf, estate, env, logdir / f"{n}-drill.log")
    steps = {s["task_id"]: s for s in run.timed_steps()}
    sec = {k: float(v["seconds"]) for k, v in steps.items()}
    m = run.doc.get("measurements") or {}
    out: dict[str, Any] = {**run.figures(), "maxrss_kb": run.maxrss_kb, "steps": sec}
    if out["status"] != "passed" or not m:
        return out
    # The drill's restore step is the restore command, pg_ctl start and the wait until promoted, in
    # one operator; the journal's restore record splits it (start -> ready is replay_promote_seconds).
    r = run.doc.get("restore") or {}
    start = float(r.get("start_seconds") or 0.0)
    wait = max(0.0, float(m["replay_promote_seconds"]) - start)
    out.update(
        restore=float(r["seconds"]), start=start, wait_for_promotion=wait, data_quality=sec["data_quality"],
        total=sec["restore"] + sec["data_quality"], gx_load=float(m.get("gx_load_seconds") or 0.0),
        span=common.epoch(steps["data_quality"]["ended_at"]) - common.epoch(steps["restore"]["started_at"]),
        startup=run.startup(), steps_sum=sum(sec.values()), ledger=sec.get("ledger"), measurements=m)
    out["other"] = run.wall - out["startup"] - out["steps_sum"]
    return out


# --------------------------------------------------------------------------- 3. fixed costs
def py_json(code: str, env: dict[str, str], *args: str) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; it prints one JSON line last."""
    res = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise RuntimeError(f"measurement subprocess failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


PARSE_CODE = """
import json, resource, runpy, sys, time
import airflow, airflow.sdk
t0 = time.perf_counter()
runpy.run_path(sys.argv[1], run_name="drdrill_bench_parse")
ms = (time.perf_counter() - t0) * 1000
print(json.dumps({"ms": ms, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

AIRFLOW_IMPORT_CODE = """
import json, time
t0 = time.perf_counter()
import airflow, airflow.sdk
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""

GX_CODE = """
import json, logging, sys, time
import airflow.sdk, sqlalchemy
from drdrill.drills import dataquality
logging.getLogger("great_expectations").setLevel(logging.WARNING)
t0 = time.perf_counter()
if sys.argv[1] == "load_gx":  # as the drill loads it
    dataquality.load_gx()
else:  # a plain import
    import great_expectations, great_expectations.expectations
t1 = time.perf_counter()
import great_expectations as gx
dataquality._gx_context(gx)
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "context": t2 - t1}))
"""


def dag_files(env: dict[str, str]) -> list[Path]:
    folder = Path(env["AIRFLOW__CORE__DAGS_FOLDER"])
    return sorted(p for p in folder.glob("*.py") if p.name != "__init__.py")


# --------------------------------------------------------------------------- report
fmt = functools.partial(common.fmt, spread="min")  # this benchmark prints "median (min)"


def database_facts(cluster: Any) -> dict[str, Any]:
    from drdrill.hooks import postgres as pg

    p = cluster.primary
    with pg.connect(cluster, p.host, p.port) as c:
        size = pg.query_one(c, "SELECT pg_database_size(current_database())")[0]
    return {"database": cluster.postgres.database, "database_size_bytes": int(size),
            "pgbench_scale": cluster.sandbox.pgbench_scale if cluster.sandbox else None}


def report(r: dict[str, Any]) -> None:
    bare, drill = r["bare_samples"], r["drill_samples"]

    def row(label: str, b: list[float] | None, d: list[float] | None) -> None:
        bs = fmt(b) if b else "-"
        ds = fmt(d) if d else "-"
        ratio = f"{statistics.median(d) / statistics.median(b):.2f}" if b and d else ""
        print(f"  {label:<40} {bs:>20} {ds:>20} {ratio:>10}")

    scale = r["pgbench_scale"] if r["pgbench_scale"] is not None else "n/a (not a sandbox estate)"
    print(f"drdrill restore overhead: estate {r['estate']!r} ({r['estate_file']}), cluster {r['cluster']}")
    print(f"  pgbench scale {scale}; database {r['database']} {r['database_size_bytes'] / 2**20:.0f} MB "
          f"(pg_database_size); {bare[0]['tables']} user tables, {bare[0]['rows']:,} rows")
    print(f"  repo{r['repo']}, recovery point {r['recovery_point']}, {r['runs']} run(s): median (min)")
    if r["airflow_db_migrate_seconds"] is not None:
        print(f"  airflow db migrate (first use of this AIRFLOW_HOME, not in any figure below): "
              f"{r['airflow_db_migrate_seconds']:.1f} s")
    print()
    print(f"  {'comparable work':<40} {'bare':>20} {'drill':>20} {'drill/bare':>10}")
    row("restore (pgbackrest restore)", common.col(bare, "restore"), common.col(drill, "restore"))
    row("start (pg_ctl start -W)", common.col(bare, "start"), common.col(drill, "start"))
    row("wait: promoted + accepting connections", common.col(bare, "wait_for_promotion"),
        common.col(drill, "wait_for_promotion"))
    row("count(*) every table | data_quality (GX)", common.col(bare, "count_rows"), common.col(drill, "data_quality"))
    row("TOTAL (target drill/bare <= 1.3)", common.col(bare, "total"), common.col(drill, "total"))
    row("GX load in data_quality, before its step", None, common.col(drill, "gx_load"))
    row("TOTAL + GX load", common.col(bare, "total"), [d["total"] + d["gx_load"] for d in drill])
    row("wall span restore -> data_quality end", common.col(bare, "total"), common.col(drill, "span"))
    print()
    print(f"  bare only:  scratch create {fmt(common.col(bare, 'create_scratch'), digits=3)}; cleanup (pg_ctl stop "
          f"-m immediate, rm -r) {fmt(common.col(bare, 'cleanup'))}; wait polled every {POLL_SECONDS * 1000:.0f} ms")
    only = [k for k in ("preflight", "ledger", "setup_scratch", "measure", "teardown_scratch")
            if all(k in d["steps"] for d in drill)]
    print("  drill only: " + "; ".join(f"{k} {statistics.median([d['steps'][k] for d in drill]):.2f} s"
                                       for k in only) + " (medians)")

    def line(label: str, value: str) -> None:
        print(f"    {label:<44} {value:>22}")

    print()
    print("  Great Expectations fixed cost (fresh process, airflow.sdk + sqlalchemy already imported)")
    line("load_gx() (as the drill loads it)", fmt([g["import"] for g in r["gx_samples"]]))
    line("plain import great_expectations", fmt([g["import"] for g in r["gx_plain_samples"]]))
    line("ephemeral data context", fmt([g["context"] for g in r["gx_samples"]], digits=3))
    print()
    print("  Airflow, whole `airflow dags test` run")
    line("wall time", fmt(common.col(drill, "process_wall")))
    line("fixed start-up (launch -> first task's code)", fmt(common.col(drill, "startup")))
    line("sum of step seconds (all steps)", fmt(common.col(drill, "steps_sum")))
    line("rest (task hand-overs, journal, exit)", fmt(common.col(drill, "other")))
    print()
    samples = len(next(iter(r["parse_ms"].values())))
    print(f"  DAG parse time per file (fresh process, file import only, {samples} samples; "
          f"import airflow + airflow.sdk before it: {fmt(r['airflow_import_samples'])})")
    for name, ms in r["parse_ms"].items():
        line(name, fmt(ms, "ms", 0))
    print()
    print("  peak memory (ru_maxrss of the largest process of the tree; the scratch postmaster is in neither)")
    line("bare sequence (python + pgbackrest/pg_ctl)", fmt([b["maxrss_kb"] / 1024 for b in bare], "MB", 0))
    line("drill (airflow dags test)", fmt([d["maxrss_kb"] / 1024 for d in drill], "MB", 0))
    line("DAG parse process (largest file)", f"{max(r['parse_maxrss_kb'].values()) / 1024:.0f} MB")
    print()
    print(f"  logs: {r['logdir']}; last journal: {drill[-1]['journal']}")


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = common.parser(__doc__)
    ap.add_argument("--repo", type=int, default=1, help="pgBackRest repo to restore from (default 1)")
    ap.add_argument("--recovery-point", choices=["latest", "pitr"], default="latest")
    ap.add_argument("--runs", type=int, default=1, help="repeat bare + drill N times; print median and min")
    common.add_estate_options(ap)
    ap.add_argument("--bare-child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    common.use_checkout_package()
    if args.bare_child:
        return bare_child(args.bare_child, args.cluster, args.repo, args.recovery_point)
    if args.runs < 1:
        ap.error("--runs must be at least 1")

    env = common.airflow_env()
    estate, cluster = common.load_cluster(ap, args, DRILL, env)
    cluster.pgbackrest.repo(args.repo)  # names the repos that exist
    try:
        facts = database_facts(cluster)
    except Exception as e:  # noqa: BLE001 - tell the user what to start
        print(f"cannot reach the primary of {cluster.name} ({e}); start the sandbox: make sandbox-up",
              file=sys.stderr)
        return 2
    logdir = common.log_dir(env)
    migrate = common.ensure_airflow_db(env, logdir)

    bare, drill = [], []
    for n in range(1, args.runs + 1):
        common.progress(f"run {n}/{args.runs}: bare sequence ...")
        bare.append(run_bare(args, env, logdir, n))
        common.progress(f"run {n}/{args.runs}: airflow dags test {DRILL} ...")
        d = run_drill(args, estate, env, logdir, n)
        if d["status"] != "passed":
            common.drill_failed(d)
            return 1
        drill.append(d)

    common.progress("fixed costs: Great Expectations import, DAG parse ...")
    gx = [py_json(GX_CODE, env, "load_gx") for _ in range(args.runs)]
    gx_plain = [py_json(GX_CODE, env, "import") for _ in range(args.runs)]
    af = [py_json(AIRFLOW_IMPORT_CODE, env)["seconds"] for _ in range(args.runs)]
    parse_ms: dict[str, list[float]] = {}
    parse_rss: dict[str, int] = {}
    for _ in range(max(PARSE_MIN_SAMPLES, args.runs)):
        for f in dag_files(env):
            res = py_json(PARSE_CODE, env, str(f))
            parse_ms.setdefault(f.name, []).append(res["ms"])
            parse_rss[f.name] = max(parse_rss.get(f.name, 0), res["maxrss_kb"])

    r: dict[str, Any] = {
        "estate": estate.name, "estate_file": str(estate.source), "cluster": cluster.name, **facts,
        "repo": args.repo, "recovery_point": args.recovery_point, "runs": args.runs,
        "airflow_db_migrate_seconds": migrate, "bare_samples": bare, "drill_samples": drill, "gx_samples": gx,
        "gx_plain_samples": gx_plain,
        "airflow_import_samples": af, "parse_ms": parse_ms, "parse_maxrss_kb": parse_rss, "logdir": str(logdir),
    }
    if args.json:
        keys = ("restore", "start", "wait_for_promotion", "total")
        bare_med = statistics.median([b["total"] for b in bare])
        summary = {
            "bare": {k: common.stat([b[k] for b in bare]) for k in (*keys, "count_rows", "cleanup", "maxrss_kb")},
            "drill": {k: common.stat([d[k] for d in drill]) for k in (*keys, "data_quality", "gx_load", "span",
                                                                  "process_wall", "startup", "steps_sum", "other",
                                                                  "maxrss_kb")},
            "ratio_drill_over_bare": bare_med and statistics.median([d["total"] for d in drill]) / bare_med,
            "ratio_with_gx_load": bare_med and statistics.median([d["total"] + d["gx_load"] for d in drill])
            / bare_med,
            "ratio_span": bare_med and statistics.median([d["span"] for d in drill]) / bare_med,
            "gx": {k: common.stat([g[k] for g in gx]) for k in ("import", "context")},
            "gx_plain_import": common.stat([g["import"] for g in gx_plain]),
            "airflow_import_seconds": common.stat(af),
            "dag_parse_ms": {k: common.stat(v) for k, v in parse_ms.items()},
        }
        print(json.dumps({"summary": summary, **r}, indent=2, default=str))
    else:
        report(r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
