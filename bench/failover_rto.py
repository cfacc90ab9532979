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
3. the same DRILL under a real SCHEDULER, the way users run it: scheduler, dag-processor, triggerer
   and api-server as separate processes (LocalExecutor, a metadata PostgreSQL of their own,
   Airflow's default settings; `drdrill.sandbox.airflow`, started once and stopped by PID at the
   end, also on failure or Ctrl-C), each run triggered through the REST API and read back from its
   journal the same way.

Usage: python bench/failover_rto.py [--runs N] [--only bare|drill|scheduler ...] [--cluster NAME] [--json]
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
SCHEDULER_TARGET_SECONDS = 1.5  # issue 11: "goal RTO <= 1.5 s under the real scheduler on the sandbox"
SCHEDULED_RUN_TIMEOUT = 600  # one drill run under the scheduler takes about 1-2 min here
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
def drill_figures(doc: dict[str, Any]) -> dict[str, Any]:
    """What the report reads from a drill's journal, however the run was started."""
    m = doc.get("measurements") or {}
    # A phase counts when one of its steps ran: not a skipped rollback, nor the approval gate that
    # only branched past the human (unattended clusters).
    ran = {s["task_id"].split(".", 1)[0] for s in doc["steps"]
           if s.get("status") in ("success", "failed") and s["task_id"] != "approval.gate"}
    out: dict[str, Any] = {
        "timeline": (doc.get("attachments") or {}).get("timeline.md"),
        "phases": {k: p["seconds"] for k, p in (doc.get("phases") or {}).items() if k in ran},
        "rto_target_seconds": m.get("rto_target_seconds"), "measurements": m}
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


def run_drill(cluster: str, estate: Any, env: dict[str, str], logdir: Path, n: int) -> dict[str, Any]:
    run = common.run_drill(DRILL, {"cluster": cluster, "fault": "kill", "scope": "node"}, estate, env,
                           logdir / f"{n}-failover-drill.log")
    out = {**run.figures(), **drill_figures(run.doc)}
    steps = run.timed_steps()
    if steps:
        out["startup"] = run.startup()
        out["run_span"] = (max(common.epoch(s["ended_at"]) for s in steps)
                           - min(common.epoch(s["started_at"]) for s in steps))
    return out


# --------------------------------------------------------------------------- 3. the drill under a real scheduler
def start_scheduler(logdir: Path) -> Any:
    """Scheduler, dag-processor, triggerer and api-server as separate processes (LocalExecutor, a metadata
    PostgreSQL of their own; `drdrill.sandbox.airflow`) with Airflow's default settings, as `make airflow`
    and docker-compose.yaml run them (``AIRFLOW__SCHEDULER__*`` from the environment is passed on and
    reported); the caller stops them (`stop_scheduler`), also on failure or Ctrl-C."""
    from drdrill.sandbox.airflow import AirflowProcesses

    tmp = Path(tempfile.mkdtemp(prefix="drdrill-bench-scheduler-"))
    tmp.chmod(0o755)  # the metadata PostgreSQL runs as postgres below it
    af = AirflowProcesses(tmp, dags=[common.PROJECT_ROOT / "dags" / f"{DRILL}.py"], executor="LocalExecutor")
    t0 = time.monotonic()
    try:
        af.start()
        af.wait_parsed(DRILL)
    except BaseException:
        stop_scheduler(af, logdir)
        raise
    af.started_in = time.monotonic() - t0
    return af


def stop_scheduler(af: Any, logdir: Path) -> None:
    """Every component by PID, the metadata DB; their logs kept under ``logdir/scheduler``. Ctrl-C or
    SIGTERM meanwhile waits until all is stopped (an interrupted stop would leave servers behind);
    the directory is removed only once everything in it has stopped."""
    with SignalsDeferred():
        af.stop()
        dest = logdir / "scheduler"
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(af.logs, dest, dirs_exist_ok=True)
        task_logs = af.tmp / "home" / "logs"
        if task_logs.exists():
            shutil.copytree(task_logs, dest / "tasks", dirs_exist_ok=True)
        shutil.rmtree(af.tmp, ignore_errors=True)


def run_scheduled(af: Any, cluster: str, estate: Any, logdir: Path) -> dict[str, Any]:
    """The drill triggered through the REST API, as a user would, and read back from its journal."""
    from drdrill.core import journal

    loc, conn = estate.journal.location, estate.journal.conn_id
    before = journal.listed(loc, conn, DRILL)
    launched = time.time()
    run_id = af.trigger(DRILL, {"cluster": cluster, "fault": "kill", "scope": "node"})
    state = af.wait_run(DRILL, run_id, SCHEDULED_RUN_TIMEOUT)
    wall = time.time() - launched
    new = sorted(journal.listed(loc, conn, DRILL) - before)
    if not new:
        raise SystemExit(f"run {run_id} ended {state} and wrote no journal; see {af.logs} (copied to "
                         f"{logdir / 'scheduler'})")
    doc = journal.read(new[-1], conn)
    out = {"status": doc["status"], "failures": doc.get("failures", []), "journal": new[-1],
           "log": str(logdir / "scheduler"), "run_state": state, "process_wall": wall, "run_id": run_id,
           **drill_figures(doc)}
    steps = [s for s in doc["steps"] if "started_at" in s]
    if steps:
        out["startup"] = min(common.epoch(s["started_at"]) for s in steps) - launched
        out["run_span"] = (max(common.epoch(s["ended_at"]) for s in steps)
                           - min(common.epoch(s["started_at"]) for s in steps))
    return out


# --------------------------------------------------------------------------- report
def report(r: dict[str, Any]) -> None:
    bare, drill, sched = r["bare_samples"], r["drill_samples"], r["scheduler_samples"]

    def row(label: str, key: str, unit: str = "s", digits: int = 2) -> None:
        cells = [common.fmt(common.col(x, key), unit, digits) for x in (bare, drill, sched)]
        print(f"  {label:<52} {cells[0]:>22} {cells[1]:>22} {cells[2]:>22}")

    def line(label: str, value: str) -> None:
        print(f"    {label:<50} {value:>24}")

    print(f"drdrill failover RTO: estate {r['estate']!r} ({r['estate_file']}), cluster {r['cluster']}, "
          f"fault kill -9 of the primary's postmaster")
    print(f"  {r['runs']} run(s): median [min..max]; canary: one write every {r['canary_interval_ms']} ms through "
          f"{r['service_replicas']} service replica(s); record {r['dns_record']} TTL {r['dns_ttl']} s")
    if r["airflow_db_migrate_seconds"] is not None:
        print(f"  airflow db migrate (first use of this AIRFLOW_HOME, in no figure below): "
              f"{r['airflow_db_migrate_seconds']:.1f} s")
    if r.get("scheduler"):
        sc = r["scheduler"]
        print(f"  scheduler: {sc['executor']}, metadata on PostgreSQL; scheduler, dag-processor, triggerer, api-server "
              f"as processes, started in {sc['started_in']:.0f} s (in no figure below); runs triggered through "
              f"the REST API; settings: {', '.join(f'{k}={v}' for k, v in sc['settings'].items()) or 'defaults'}")
    if r.get("load"):
        print(f"  machine load (1-min average) at the start / end: {r['load'][0]:.2f} / {r['load'][1]:.2f} "
              f"on {os.cpu_count()} cores")
    dirs = sorted({f"{s['from']}->{s['to']}" for s in bare + drill + sched if s.get("from")})
    print(f"  directions: {', '.join(dirs)} (symmetric nodes; each run fails over from the current primary)")
    print()
    print(f"  {'from the fault to ...':<52} {'bare':>22} {'drill, dags test':>22} {'drill, scheduler':>22}")
    row("standby promoted (pg_promote(wait => true) returned)", "promoted")
    row("first write directly on the new primary (psycopg)", "direct_write")
    row("Route53 record INSYNC on the new primary", "dns_insync")
    row("first acknowledged write through the service = RTO", "rto")
    row("endpoint down (last ack before -> first ack after)", "endpoint_down")
    row("between: promoted -> record INSYNC", "promoted_to_dns")
    row("acknowledged writes lost", "lost_writes", "", 0)
    row("RPO: loss window", "rpo")
    row("replication lag before the fault (bytes)", "lag_bytes_before_fault", "", 0)
    estate_target = next((s["rto_target_seconds"] for s in drill + sched if s.get("rto_target_seconds")), None)
    for label, samples, target in (("dags test", drill, ISSUE_TARGET_SECONDS),
                                   ("scheduler", sched, SCHEDULER_TARGET_SECONDS)):
        rto = common.col(samples, "rto")
        if rto:
            med = statistics.median(rto)
            print(f"\n  RTO(drill, {label}) / {target:g} s: {med / target:.2f} (median; max {max(rto) / target:.2f})"
                  f" - target <= {target:g} s" + (f"; the estate's target is {estate_target:g} s"
                                                  if estate_target else ""))
    if bare:
        print()
        print("  bare only")
        line("pg_promote(wait => true) call", common.fmt(common.col(bare, "promote_call")))
        line("Route53 UPSERT + INSYNC call", common.fmt(common.col(bare, "dns_call")))
        line("direct write attempts until the first commit", common.fmt(common.col(bare, "direct_attempts"), "", 0))
        line("put back (pg_rewind, start, streaming; untimed above)",
             common.fmt([b["put_back"]["seconds"] for b in bare if b.get("put_back")]))
    for label, samples, what in (("dags test", drill, "whole `airflow dags test` run"),
                                 ("scheduler", sched, "trigger (REST) -> run ended")):
        if not samples:
            continue
        print()
        print(f"  drill phases, {label} (journal `phases`: first step start -> last step end, seconds)")
        names = [p for p in PHASES if any(p in d["phases"] for d in samples)]
        names += sorted({p for d in samples for p in d["phases"]} - set(names))
        for p in names:
            line(p, common.fmt([d["phases"][p] for d in samples if p in d["phases"]]))
        print(f"  Airflow, {what}")
        line("wall time", common.fmt(common.col(samples, "process_wall")))
        line("start-up (launch or trigger -> first task's code)", common.fmt(common.col(samples, "startup")))
        line("first step start -> last step end", common.fmt(common.col(samples, "run_span")))
    if r.get("switch_back"):
        sb = r["switch_back"]
        print(f"\n  original roles restored: planned switchover {sb['from']} -> {sb['to']} in {sb['seconds']:.1f} s")
    print(f"\n  total benchmark time {r['total_seconds']:.0f} s; logs: {r['logdir']}")
    for label, samples in (("dags test", drill), ("scheduler", sched)):
        if samples:
            print(f"  last journal ({label}): {samples[-1]['journal']}\n  its timeline: {samples[-1]['timeline']}")


# --------------------------------------------------------------------------- main
PARTS = ("bare", "drill", "scheduler")


def runs(args: argparse.Namespace, estate: Any, env: dict[str, str], logdir: Path, af: Any,
         samples: dict[str, list[dict[str, Any]]]) -> bool:
    """Bare failover, the drill under `dags test`, the drill under the scheduler, ``args.runs`` times;
    False when a drill run failed."""
    for n in range(1, args.runs + 1):
        if "bare" in args.parts:
            common.progress(f"run {n}/{args.runs}: bare failover ...")
            b = bare_failover(args.cluster)
            common.progress(f"  {b['from']} -> {b['to']}: RTO {b['rto']:.2f} s, promoted {b['promoted']:.2f} s, direct "
                     f"write {b['direct_write']:.2f} s, {b['lost_writes']} lost; put back "
                     f"{b['put_back']['seconds']:.1f} s")
            samples["bare"].append(b)
        for part in ("drill", "scheduler"):
            if part not in args.parts:
                continue
            how = f"airflow dags test {DRILL}" if part == "drill" else f"{DRILL} triggered under the scheduler"
            common.progress(f"run {n}/{args.runs}: {how} ...")
            d = (run_drill(args.cluster, estate, env, logdir, n) if part == "drill"
                 else run_scheduled(af, args.cluster, estate, logdir))
            if d["status"] != "passed":
                common.drill_failed(d)
                return False
            rto = f"{d['rto']:.2f} s" if d.get("rto") is not None else "not measured"
            common.progress(f"  {d['from']} -> {d['to']} and back: RTO {rto}, {d.get('lost_writes')} lost, "
                     f"{d['process_wall']:.0f} s wall")
            samples[part].append(d)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = common.parser(__doc__)
    ap.add_argument("--runs", type=int, default=3, help="repeat each part N times (default 3)")
    ap.add_argument("--only", choices=PARTS, action="append",
                    help="run only this part (repeatable): bare, drill (dags test), scheduler")
    common.add_estate_options(ap)
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    args.parts = tuple(args.only or PARTS)
    common.use_checkout_package()
    # SIGTERM runs the finally blocks too: canary writer stopped, its directory removed, Airflow's
    # processes stopped by PID, estate put back.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t_start = time.monotonic()
    load_start = os.getloadavg()[0]

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
    migrate = common.ensure_airflow_db(env, logdir) if "drill" in args.parts else None

    samples: dict[str, list[dict[str, Any]]] = {p: [] for p in PARTS}
    switched_back = None
    failed = False
    af = None
    sched_info = None
    with common.LogsToFile(logdir / "failover-bench.log"):
        try:
            if "scheduler" in args.parts:
                common.progress("starting Airflow's scheduler, dag-processor, triggerer and api-server ...")
                af = start_scheduler(logdir)
                from drdrill.sandbox.airflow import scheduler_settings

                sched_info = {"executor": af.executor, "started_in": af.started_in,
                              "settings": scheduler_settings(af.env)}
            failed = not runs(args, estate, env, logdir, af, samples)
        finally:  # also after a failure or Ctrl-C: Airflow stopped, the original primary back
            if af is not None:
                stop_scheduler(af, logdir)
            try:
                switched_back = switch_back(args.cluster, original)
            except Exception as e:  # noqa: BLE001 - say what state the estate is in
                common.progress(f"could not switch back to {original}: {e}; the recorded topology names the current "
                         f"primary")
    if failed:
        return 1

    bare, drill, sched = samples["bare"], samples["drill"], samples["scheduler"]
    r: dict[str, Any] = {
        "estate": estate.name, "estate_file": str(estate.source), "cluster": cluster.name, "runs": args.runs,
        "canary_interval_ms": f.canary_interval_ms, "service_replicas": len(f.service.urls),
        "dns_record": f.dns.record, "dns_ttl": f.dns.ttl, "airflow_db_migrate_seconds": migrate,
        "issue_target_seconds": ISSUE_TARGET_SECONDS, "scheduler_target_seconds": SCHEDULER_TARGET_SECONDS,
        "scheduler": sched_info, "load": (load_start, os.getloadavg()[0]),
        "bare_samples": bare, "drill_samples": drill, "scheduler_samples": sched,
        "switch_back": switched_back, "logdir": str(logdir), "total_seconds": time.monotonic() - t_start,
    }
    if args.json:
        keys = ("promoted", "direct_write", "dns_insync", "rto", "endpoint_down", "promoted_to_dns", "lost_writes",
                "rpo")
        summary: dict[str, Any] = {"bare": {k: common.stat(common.col(bare, k)) for k in keys}}
        for part, xs in (("drill", drill), ("scheduler", sched)):
            summary[part] = {k: common.stat(common.col(xs, k)) for k in (*keys, "process_wall", "startup", "run_span")}
            summary[f"{part}_phases"] = {p: common.stat([d["phases"][p] for d in xs if p in d["phases"]])
                                         for p in sorted({p for d in xs for p in d["phases"]})}
        rto, rto_s = common.col(drill, "rto"), common.col(sched, "rto")
        summary["rto_drill_over_issue_target"] = statistics.median(rto) / ISSUE_TARGET_SECONDS if rto else None
        summary["rto_scheduler_over_target"] = (statistics.median(rto_s) / SCHEDULER_TARGET_SECONDS
                                                if rto_s else None)
        print(json.dumps({"summary": summary, **r}, indent=2, default=str))
    else:
        report(r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
