"""How long are writes down when the primary dies, by hand and through the failover drill?

Prints figures; it never asserts a timing. On the estate the environment selects (default: the
project's sandbox; ``$DRDRILL_ESTATE`` / ``$DRDRILL_SANDBOX_DIR`` pick another one), which must
be a sandbox estate: both parts kill -9 the primary.

1. the BARE failover, in this process with no Airflow task around it: a canary writer
   (`drdrill.core.canary`) writes through the demo service; kill -9 of the primary's postmaster,
   ``SELECT pg_promote(wait => true)`` on the standby, Route53 UPSERT of the service record
   (`drdrill.hooks.route53.switch`). Timed from the fault: promoted, first write directly on the new
   primary (psycopg in a tight loop), record INSYNC, first acknowledged write through the
   service (the RTO), and the acknowledged writes lost. Then, untimed, the estate is put back:
   the old primary rebuilt as a standby of the new one (pg_rewind), topology recorded. The next
   run fails over the other way; at the end a planned switchover restores the original roles.
2. the DRILL ``dr_quarterly_failover_drill`` (fault kill) under ``airflow dags test``, timed from
   its journal: RTO, RPO, the same points from the fault, each phase's seconds, wall time.

Usage: python bench/failover_rto.py [--runs N] [--only bare|drill] [--cluster NAME] [--json]
See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common

DRILL = "dr_quarterly_failover_drill"
BENCH = "bench/failover_rto.py"
ISSUE_TARGET_SECONDS = 10.0  # "target for this issue: RTO <= 10 s" (the estate's own target is looser)
DIRECT_POLL_SECONDS = 0.001  # the direct writer's pause between two attempts on the standby
CANARY_POLL_SECONDS = 0.02  # how often the canary's acks file is read while waiting
# The runbook's phases in their order; bookkeeping tasks (preflight, stop_canary, measure) after.
PHASES = ["assess", "approval", "failover", "dns_switch", "verify", "rollback", "stabilize", "failback",
          "preflight", "stop_canary", "measure"]


# --------------------------------------------------------------------------- environment
def drill_env() -> dict[str, str]:
    """The environment `make` gives Airflow."""
    return common.airflow_env()


def sandbox_env() -> dict[str, str]:
    """The aws_sandbox connection (moto's Route53 over TLS, the sandbox's CA by absolute path)."""
    from drdrill.sandbox import Sandbox

    return Sandbox().airflow_env()


# --------------------------------------------------------------------------- 1. bare failover
class DirectWriter(threading.Thread):
    """Tries an INSERT on the standby every millisecond; notes when the first one commits.

    One connection, opened before the fault (a standby accepts it; each transaction is read-only
    while it is in recovery, and the next one after the promotion may write). A lost connection
    is reopened at once.
    """

    def __init__(self, cluster: Any, node: Any, run_id: str) -> None:
        super().__init__(name="direct-writer", daemon=True)
        from drdrill.hooks import postgres as pg

        self.hook = pg.hook(cluster, node.host, node.port)
        self.run_id = f"{run_id}:direct"
        self.conn: Any = None
        self.stop_event = threading.Event()
        self.first_write_at: float | None = None
        self.attempts = 0
        self.last_error = ""
        self._connect()  # fails here, before the fault, when the standby is unreachable

    def _connect(self) -> None:
        self.conn = self.hook.get_conn()
        self.conn.autocommit = True

    def run(self) -> None:
        import psycopg

        while not self.stop_event.is_set():
            self.attempts += 1
            try:
                if self.conn is None or self.conn.closed:
                    self._connect()
                with self.conn.cursor() as cur:
                    cur.execute("INSERT INTO drdrill.canary_writes (run_id, seq) VALUES (%s, %s)",
                                (self.run_id, self.attempts))
                self.first_write_at = time.time()  # autocommit: the INSERT returned = committed
                return
            except psycopg.Error as e:
                self.last_error = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            time.sleep(DIRECT_POLL_SECONDS)

    def close(self) -> None:
        self.stop_event.set()
        if self.is_alive():
            self.join(timeout=10)
        if self.conn is not None and not self.conn.closed:
            self.conn.close()


class SignalsDeferred:
    """SIGINT and SIGTERM received meanwhile are raised again on exit (Python runs handlers in the
    main thread only, so this holds whatever thread the kernel delivers them to)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self) -> SignalsDeferred:
        self.got: int | None = None
        self.saved = {s: signal.signal(s, self._note) for s in self.SIGNALS}
        return self

    def _note(self, signum: int, _frame: Any) -> None:
        self.got = signum

    def __exit__(self, *_: Any) -> None:
        for s, handler in self.saved.items():
            signal.signal(s, handler)
        if self.got is not None:
            signal.raise_signal(self.got)


def _only_standby(cluster: Any) -> Any:
    if len(cluster.standbys) != 1:
        raise SystemExit(f"cluster {cluster.name} has {len(cluster.standbys)} standbys; the benchmark fails over "
                         f"to the only one")
    return cluster.standbys[0]


def _first_ack_after(workdir: Path, fault_at: float) -> float | None:
    from drdrill.core import canary

    return min((r["done_at"] for r in canary.records(workdir) if r.get("ok") and r["sent_at"] >= fault_at),
               default=None)


def _steady_state(cluster: Any, old: Any, new: Any, r53: Any) -> int:
    """Refuse to inject a fault unless the standby streams and the record names the primary; lag bytes."""
    from drdrill.drills.failover.node_ops import NodeOps
    from drdrill.hooks import route53 as dns

    f = cluster.failover
    lag = NodeOps(cluster).wait_streaming(old, new, timeout=f.standby_streaming_timeout_seconds)["lag_bytes"]
    at = dns.current(f.dns, r53).value
    if at != dns.value_for(f.dns, old):
        raise SystemExit(f"{f.dns.record} points at {at!r}, not at the primary {old.name}: the estate is not in "
                         f"steady state (run the daily verification, or rebuild the sandbox)")
    return int(lag or 0)


def bare_failover(cluster_name: str) -> dict[str, Any]:
    """One failover by hand, timed from the fault; the estate is put back afterwards, always."""
    from drdrill.core import canary, topology
    from drdrill.core.estate import load_estate
    from drdrill.core.polling import wait_until
    from drdrill.drills.failover.node_ops import NodeOps
    from drdrill.hooks import postgres as pg
    from drdrill.hooks import route53 as dns

    estate = load_estate()  # with the recorded topology: the current primary
    cluster = estate.cluster(cluster_name)
    f = cluster.failover
    old, new = cluster.primary, _only_standby(cluster)
    ops = NodeOps(cluster)
    r53 = dns.client(f.dns)
    _ = r53.conn  # the client is built before the fault: the switch itself is timed
    run_id = f"bench-failover-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
    out: dict[str, Any] = {"run_id": run_id, "from": old.name, "to": new.name,
                           "lag_bytes_before_fault": _steady_state(cluster, old, new, r53)}
    with pg.connect(cluster, old.host, old.port) as c:
        pg.query(c, canary.TABLE_SQL)
    workdir = Path(tempfile.mkdtemp(prefix="drdrill-bench-failover-"))
    direct: DirectWriter | None = None
    standby_conn: Any = None
    fault_at = promoted_at = None
    try:
        urls = [u.rstrip("/") + f.service.write_path for u in f.service.urls]
        canary.start(workdir, run_id, urls, interval_ms=f.canary_interval_ms, timeout=f.service.timeout_seconds)
        wait_until(lambda: sum(1 for r in canary.records(workdir) if r.get("ok")) >= 3, timeout=30,
                      interval=CANARY_POLL_SECONDS, what="the canary writer's first acknowledged writes")
        standby_conn = pg.hook(cluster, new.host, new.port, "postgres").get_conn()
        standby_conn.autocommit = True
        direct = DirectWriter(cluster, new, run_id)
        direct.start()

        # Fault, promotion and the topology record are one step: Ctrl-C or SIGTERM waits until it
        # is over, so an interruption never leaves a standby promoted behind the bench's back.
        with SignalsDeferred():
            fault_at = ops.kill(old)["done_at"]  # the drill's own fault, from when the kill returned
            t = time.time()
            ok = pg.query_one(standby_conn, "SELECT pg_promote(wait => true, wait_seconds => %s)",
                              (int(f.promote_timeout_seconds),))[0]
            if not ok:
                raise RuntimeError(f"pg_promote on {new.name} did not finish within {f.promote_timeout_seconds}s")
            promoted_at = time.time()
            # Recorded at once, like the drill: whatever happens next, the state names the real primary.
            topology.record(estate, cluster.name, new.name, run_id=run_id, drill=BENCH, reason="bench failover")
        out["promote_call"] = promoted_at - t
        sw = dns.switch(f.dns, new, comment=f"drdrill {BENCH} {run_id}: {new.name} is primary", r53=r53)
        dns_at = time.time()
        first_ack = wait_until(lambda: _first_ack_after(workdir, fault_at), timeout=60,
                                  interval=CANARY_POLL_SECONDS, what="the first acknowledged write after the fault")
        direct.join(timeout=60)
        if direct.first_write_at is None:
            raise RuntimeError(f"no direct write on {new.name} within 60 s of its promotion: {direct.last_error}")
        time.sleep(0.3)  # a few acknowledged writes after the resume, as in the drill
        canary.stop(workdir)
        with pg.connect(cluster, new.host, new.port) as c:
            present = {r[0] for r in pg.query(c, "SELECT seq FROM drdrill.canary_writes WHERE run_id = %s",
                                              (run_id,))}
        report = canary.analyse(canary.records(workdir), present, fault_at)
        out.update(promoted=promoted_at - fault_at, direct_write=direct.first_write_at - fault_at,
                   direct_attempts=direct.attempts, dns_insync=dns_at - fault_at, dns_call=sw["insync_seconds"],
                   promoted_to_dns=dns_at - promoted_at,
                   rto=first_ack - fault_at, endpoint_down=report.endpoint_down_seconds,
                   lost_writes=len(report.lost), rpo=report.loss_window_seconds,
                   canary_attempts=report.attempts, canary_failed=report.failed_attempts)
    finally:
        if direct is not None:
            direct.close()
        if standby_conn is not None:
            standby_conn.close()
        canary.stop(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
        if fault_at is not None:
            out["put_back"] = put_back(cluster_name, old.name, new.name, run_id)
    return out


def put_back(cluster_name: str, old_name: str, new_name: str, run_id: str) -> dict[str, Any]:
    """After the fault: the old primary rebuilt as a streaming standby of the new one (untimed figure).

    Whether the standby was promoted is asked of the standby itself, not taken from the run (it may
    have been cut short). Not promoted: the killed primary is started again instead.
    """
    from drdrill.core import topology
    from drdrill.core.estate import load_estate
    from drdrill.core.polling import wait_until
    from drdrill.drills.failover.node_ops import NodeOps
    from drdrill.hooks import postgres as pg
    from drdrill.hooks import route53 as dns

    estate = load_estate()
    cluster = estate.cluster(cluster_name)
    f = cluster.failover
    ops = NodeOps(cluster)
    old, new = cluster.node(old_name), cluster.node(new_name)
    t0 = time.time()
    # A postmaster killed a moment ago stays a zombie until init reaps it, and `pg_ctl status`
    # reports it running: rebuild_standby would try to stop it and fail, pg_ctl start would refuse
    # its lock file. Wait until it is gone.
    wait_until(lambda: ops.running_pid(old) is None, timeout=60, interval=0.1,
                  what=f"the killed postmaster of {old.name} to be gone")
    gone = time.time() - t0
    try:
        with pg.connect(cluster, new.host, new.port, "postgres") as c:
            promoted = not pg.query_one(c, "SELECT pg_is_in_recovery()")[0]
    except Exception as e:  # noqa: BLE001 - an unreachable standby was not promoted by us
        common.progress(f"  {new.name} does not answer ({e}); treating it as not promoted")
        promoted = False
    if not promoted:
        common.progress(f"  {new.name} was not promoted: starting {old.name} again")
        ops.start(old)
        return {"action": f"restarted {old.name}", "seconds": round(time.time() - t0, 3)}
    if cluster.primary.name != new.name:
        topology.record(estate, cluster.name, new.name, run_id=run_id, drill=BENCH, reason="bench failover")
    if dns.current(f.dns).value != dns.value_for(f.dns, new):  # the switch did not happen: finish it
        dns.switch(f.dns, new, comment=f"drdrill {BENCH}: {new.name} is primary")
    rec = ops.rebuild_standby(old, new, method=f.new_standby, timeout=f.standby_streaming_timeout_seconds)
    return {"action": f"{old.name} rebuilt as standby of {new.name} ({rec['method']})",
            "seconds": round(time.time() - t0, 3), "waited_for_dead_postmaster": round(gone, 3)}


def switch_back(cluster_name: str, original: str) -> dict[str, Any] | None:
    """A planned switchover to ``original`` when the runs left another node primary (None if not needed)."""
    from drdrill.core import topology
    from drdrill.core.estate import load_estate
    from drdrill.drills.failover.node_ops import NodeOps
    from drdrill.hooks import route53 as dns

    estate = load_estate()
    cluster = estate.cluster(cluster_name)
    current = cluster.primary
    if current.name == original:
        return None
    f = cluster.failover
    ops = NodeOps(cluster)
    target = cluster.node(original)
    t0 = time.time()
    ops.wait_streaming(current, target, timeout=f.standby_streaming_timeout_seconds)
    ops.switchover_stop(current, target)
    ops.promote(target, wait_seconds=int(f.promote_timeout_seconds))
    topology.record(estate, cluster.name, target.name, run_id=f"bench-switch-back-{int(t0)}", drill=BENCH,
                    reason="bench: original roles back")
    dns.switch(f.dns, target, comment=f"drdrill {BENCH}: {target.name} is primary again")
    ops.rebuild_standby(current, target, method=f.new_standby, timeout=f.standby_streaming_timeout_seconds)
    return {"from": current.name, "to": target.name, "seconds": round(time.time() - t0, 3)}


# --------------------------------------------------------------------------- 2. the drill
def run_drill(cluster: str, estate: Any, env: dict[str, str], logdir: Path, n: int) -> dict[str, Any]:
    run = common.run_drill(DRILL, {"cluster": cluster, "fault": "kill"}, estate, env,
                           logdir / f"{n}-failover-drill.log")
    doc = run.doc
    m = doc.get("measurements") or {}
    # A phase counts when one of its steps ran: not a skipped rollback, nor the approval gate that
    # only branched past the human (unattended clusters).
    ran = {s["task_id"].split(".", 1)[0] for s in doc["steps"]
           if s.get("status") in ("success", "failed") and s["task_id"] != "approval.gate"}
    out: dict[str, Any] = {
        **run.figures(), "timeline": (doc.get("attachments") or {}).get("timeline.md"),
        "phases": {k: p["seconds"] for k, p in (doc.get("phases") or {}).items() if k in ran},
        "rto_target_seconds": m.get("rto_target_seconds"), "measurements": m}
    steps = run.timed_steps()
    if steps:
        out["startup"] = run.startup()
        out["run_span"] = (max(common.epoch(s["ended_at"]) for s in steps)
                           - min(common.epoch(s["started_at"]) for s in steps))
    fo = doc.get("failover") or {}
    fault_at = (fo.get("fault") or {}).get("fault_at")
    plan = doc.get("plan") or {}
    out["from"], out["to"] = plan.get("primary"), plan.get("standby")
    if fault_at:
        if (fo.get("promote") or {}).get("promoted_at"):
            out["promoted"] = fo["promote"]["promoted_at"] - fault_at
        if (fo.get("dns") or {}).get("at"):
            out["dns_insync"] = fo["dns"]["at"] - fault_at
            if "promoted" in out:
                out["promoted_to_dns"] = out["dns_insync"] - out["promoted"]
    if m.get("rto_seconds") is not None:
        out.update(rto=m["rto_seconds"], rpo=m.get("rpo_seconds"), lost_writes=m.get("lost_writes"),
                   endpoint_down=(m.get("canary") or {}).get("endpoint_down_seconds"),
                   lag_bytes_before_fault=m.get("lag_bytes_before_fault"))
    return out


# --------------------------------------------------------------------------- report
def report(r: dict[str, Any]) -> None:
    bare, drill = r["bare_samples"], r["drill_samples"]

    def row(label: str, key: str, unit: str = "s", digits: int = 2) -> None:
        b, d = common.col(bare, key), common.col(drill, key)
        ratio = f"{statistics.median(d) / statistics.median(b):.1f}" if b and d and statistics.median(b) else ""
        print(f"  {label:<52} {common.fmt(b, unit, digits):>22} {common.fmt(d, unit, digits):>22} {ratio:>10}")

    def line(label: str, value: str) -> None:
        print(f"    {label:<50} {value:>24}")

    print(f"drdrill failover RTO: estate {r['estate']!r} ({r['estate_file']}), cluster {r['cluster']}, "
          f"fault kill -9 of the primary's postmaster")
    print(f"  {r['runs']} run(s): median [min..max]; canary: one write every {r['canary_interval_ms']} ms through "
          f"{r['service_replicas']} service replica(s); record {r['dns_record']} TTL {r['dns_ttl']} s")
    if r["airflow_db_migrate_seconds"] is not None:
        print(f"  airflow db migrate (first use of this AIRFLOW_HOME, in no figure below): "
              f"{r['airflow_db_migrate_seconds']:.1f} s")
    dirs = sorted({f"{s['from']}->{s['to']}" for s in bare + drill if s.get("from")})
    print(f"  directions: {', '.join(dirs)} (symmetric nodes; each run fails over from the current primary)")
    print()
    print(f"  {'from the fault to ...':<52} {'bare':>22} {'drill':>22} {'drill/bare':>10}")
    row("standby promoted (pg_promote(wait => true) returned)", "promoted")
    row("first write directly on the new primary (psycopg)", "direct_write")
    row("Route53 record INSYNC on the new primary", "dns_insync")
    row("first acknowledged write through the service = RTO", "rto")
    row("endpoint down (last ack before -> first ack after)", "endpoint_down")
    row("between: promoted -> record INSYNC", "promoted_to_dns")
    row("acknowledged writes lost", "lost_writes", "", 0)
    row("RPO: loss window", "rpo")
    row("replication lag before the fault (bytes)", "lag_bytes_before_fault", "", 0)
    rto = common.col(drill, "rto")
    if rto:
        med = statistics.median(rto)
        estate_target = next((s["rto_target_seconds"] for s in drill if s.get("rto_target_seconds")), None)
        print()
        print(f"  RTO(drill) / {ISSUE_TARGET_SECONDS:g} s: {med / ISSUE_TARGET_SECONDS:.2f} (median; max "
              f"{max(rto) / ISSUE_TARGET_SECONDS:.2f}) - target for this issue <= {ISSUE_TARGET_SECONDS:g} s"
              + (f"; the estate's target is {estate_target:g} s" if estate_target else ""))
    if bare:
        print()
        print("  bare only")
        line("pg_promote(wait => true) call", common.fmt(common.col(bare, "promote_call")))
        line("Route53 UPSERT + INSYNC call", common.fmt(common.col(bare, "dns_call")))
        line("direct write attempts until the first commit", common.fmt(common.col(bare, "direct_attempts"), "", 0))
        line("put back (pg_rewind, start, streaming; untimed above)",
             common.fmt([b["put_back"]["seconds"] for b in bare if b.get("put_back")]))
    if drill:
        print()
        print("  drill phases (journal `phases`: first step start -> last step end, seconds)")
        names = [p for p in PHASES if any(p in d["phases"] for d in drill)]
        names += sorted({p for d in drill for p in d["phases"]} - set(names))
        for p in names:
            line(p, common.fmt([d["phases"][p] for d in drill if p in d["phases"]]))
        print()
        print("  Airflow, whole `airflow dags test` run")
        line("wall time", common.fmt(common.col(drill, "process_wall")))
        line("fixed start-up (launch -> first task's code)", common.fmt(common.col(drill, "startup")))
        line("first step start -> last step end", common.fmt(common.col(drill, "run_span")))
    if r.get("switch_back"):
        sb = r["switch_back"]
        print(f"\n  original roles restored: planned switchover {sb['from']} -> {sb['to']} in {sb['seconds']:.1f} s")
    print(f"\n  total benchmark time {r['total_seconds']:.0f} s; logs: {r['logdir']}")
    if drill:
        print(f"  last journal: {drill[-1]['journal']}\n  its timeline: {drill[-1]['timeline']}")


# --------------------------------------------------------------------------- main
def runs(args: argparse.Namespace, estate: Any, env: dict[str, str], logdir: Path,
         bare: list[dict[str, Any]], drill: list[dict[str, Any]]) -> bool:
    """Bare failover, then the drill, ``args.runs`` times; False when a drill run failed."""
    for n in range(1, args.runs + 1):
        if args.only != "drill":
            common.progress(f"run {n}/{args.runs}: bare failover ...")
            b = bare_failover(args.cluster)
            common.progress(f"  {b['from']} -> {b['to']}: RTO {b['rto']:.2f} s, promoted {b['promoted']:.2f} s, direct "
                     f"write {b['direct_write']:.2f} s, {b['lost_writes']} lost; put back "
                     f"{b['put_back']['seconds']:.1f} s")
            bare.append(b)
        if args.only != "bare":
            common.progress(f"run {n}/{args.runs}: airflow dags test {DRILL} ...")
            d = run_drill(args.cluster, estate, env, logdir, n)
            if d["status"] != "passed":
                common.drill_failed(d)
                return False
            rto = f"{d['rto']:.2f} s" if d.get("rto") is not None else "not measured"
            common.progress(f"  {d['from']} -> {d['to']} and back: RTO {rto}, {d.get('lost_writes')} lost, "
                     f"{d['process_wall']:.0f} s wall")
            drill.append(d)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = common.parser(__doc__)
    ap.add_argument("--runs", type=int, default=3, help="repeat bare + drill N times (default 3)")
    ap.add_argument("--only", choices=["bare", "drill"], help="run only one of the two parts")
    common.add_estate_options(ap)
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    common.use_checkout_package()
    # SIGTERM runs the finally blocks too: canary writer stopped, its directory removed, estate put back.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t_start = time.monotonic()

    env = drill_env()
    estate, cluster = common.load_cluster(ap, args, DRILL, env)
    if cluster.sandbox is None:
        ap.error(f"cluster {cluster.name} of {estate.source} is not a sandbox cluster: this benchmark kills its "
                 f"primary with kill -9, again and again")
    f = cluster.failover
    if f is None or f.dns is None or f.service is None:
        ap.error(f"cluster {cluster.name} needs failover.dns and failover.service in {estate.source}")
    env.update(sandbox_env())
    os.environ.update(env)  # the bare part switches the record through the same Airflow connection
    original = cluster.primary.name
    _only_standby(cluster)
    logdir = common.log_dir(env)
    migrate = common.ensure_airflow_db(env, logdir) if args.only != "bare" else None

    bare: list[dict[str, Any]] = []
    drill: list[dict[str, Any]] = []
    switched_back = None
    failed = False
    with common.LogsToFile(logdir / "failover-bench.log"):
        try:
            failed = not runs(args, estate, env, logdir, bare, drill)
        finally:  # also after a failure or Ctrl-C: the original primary back, if the estate allows it
            try:
                switched_back = switch_back(args.cluster, original)
            except Exception as e:  # noqa: BLE001 - say what state the estate is in
                common.progress(f"could not switch back to {original}: {e}; the recorded topology names the current "
                         f"primary")
    if failed:
        return 1

    r: dict[str, Any] = {
        "estate": estate.name, "estate_file": str(estate.source), "cluster": cluster.name, "runs": args.runs,
        "canary_interval_ms": f.canary_interval_ms, "service_replicas": len(f.service.urls),
        "dns_record": f.dns.record, "dns_ttl": f.dns.ttl, "airflow_db_migrate_seconds": migrate,
        "issue_target_seconds": ISSUE_TARGET_SECONDS, "bare_samples": bare, "drill_samples": drill,
        "switch_back": switched_back, "logdir": str(logdir), "total_seconds": time.monotonic() - t_start,
    }
    if args.json:
        keys = ("promoted", "direct_write", "dns_insync", "rto", "endpoint_down", "promoted_to_dns", "lost_writes",
                "rpo")
        rto = common.col(drill, "rto")
        summary = {
            "bare": {k: common.stat(common.col(bare, k)) for k in keys},
            "drill": {k: common.stat(common.col(drill, k)) for k in (*keys, "process_wall", "startup", "run_span")},
            "drill_phases": {p: common.stat([d["phases"][p] for d in drill if p in d["phases"]])
                             for p in sorted({p for d in drill for p in d["phases"]})},
            "rto_drill_over_issue_target": statistics.median(rto) / ISSUE_TARGET_SECONDS if rto else None,
        }
        print(json.dumps({"summary": summary, **r}, indent=2, default=str))
    else:
        report(r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
