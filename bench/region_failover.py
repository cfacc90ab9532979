"""How long is the service down when the whole primary region is lost, by hand and through the region drill?

Prints figures; it never asserts a timing. On the estate the environment selects (default: the project's
sandbox; ``$DRDRILL_ESTATE`` / ``$DRDRILL_SANDBOX_DIR`` pick another one), which must be a sandbox estate
with a ``dr:`` section: every part kills -9 every node of the primary region (pg1 and pg2 in the sandbox).
For each ``--mode`` (default: cold, then warm, in one invocation) and each run:

1. the BARE region failover, in this process with no Airflow task around it: a canary writer
   (`drdrill.core.canary`) writes through the demo service; kill -9 of the standbys, then of the primary
   (the outage starts then). Cold: the DR node restored from the DR repo alone (`DrSite.restore`, following
   the primary's timeline at the fault) and started; warm: the DR standby is running already. Then the DR
   repo's newest segment read and waited for (`DrSite.repo_state`, `DrSite.wait_replayed`), ``pg_promote``
   (`NodeOps.promote`), the node writable, the Route53 UPSERT to the DR node until INSYNC
   (`drdrill.hooks.route53.switch`), and the first write the service acknowledges after the fault = RTO.
   The same phases as the drill's ``measurements.region.rto_phases_seconds`` (restore, replay, promote,
   wait_writable, dns, first_write; they add up to the RTO), and the acknowledged writes missing on the DR
   node (RPO). Then, untimed, the estate is put back with the drill's own rollback,
   `drdrill.drills.failover.region.abort`: the promoted DR node is stopped and removed, the primary region
   started again, the record pointed back at its primary, the DR node rebuilt in warm mode. That DISCARDS
   what was written on the DR node after its promotion (acceptable for a benchmark: it is the canary's rows;
   the drill itself fails back and keeps them). The abandoned timeline of that promotion stays in the DR
   repo; the cold restore follows the primary's timeline explicitly, and `region.abort` rebuilds the
   region's standbys and the warm DR standby onto the primary's timeline, so later runs are not misled by it.
2. the DRILL ``dr_quarterly_failover_drill`` with ``{"scope": "region", "fault": "kill"}`` under
   ``airflow dags test``: RTO, its phases and RPO read from its journal (it fails back by itself).
3. per mode: both RTOs and their phases, the ratio drill / bare (goal <= 1.3), and in warm mode whether the
   drill's RTO is under 10 s.

Warm mode runs on a copy of the estate with the DR section's ``mode: cold`` turned into ``mode: warm``
(``$DRDRILL_ESTATE`` points at it meanwhile, for this process and the drill's); the warm DR standby is built
first (`drdrill.sandbox.Sandbox.dr_standby`, untimed) and removed at the end (`DrSite.discard`), so the
cold sandbox is home again. Before and after every part the home state is checked (the primary and its
standby streaming, the record on the primary, the DR node absent (cold) or replaying the DR repo on the
primary's timeline (warm), no region drill record): the benchmark stops when it is not.

Usage: python bench/region_failover.py [--mode cold|warm ...] [--runs N] [--cluster NAME] [--json]
See bench/README.md.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common

DRILL = "dr_quarterly_failover_drill"
BENCH = "bench/region_failover.py"
MODES = ("cold", "warm")
RATIO_GOAL = 1.3  # issue 13: "drill <= 1.3x the bare sequence"
WARM_RTO_GOAL_SECONDS = 10.0  # issue 13: "warm-mode RTO under 10 s on the sandbox"
PHASES = ("restore", "replay", "promote", "wait_writable", "dns", "first_write")  # the drill's, in order
CANARY_POLL_SECONDS = 0.02
FIRST_ACK_TIMEOUT = 120.0


# --------------------------------------------------------------------------- pure helpers (unit tested)
_MODE_LINE = re.compile(r"^(?P<indent>[ \t]+)mode:[ \t]*(?P<mode>cold|warm)\b", re.MULTILINE)


def estate_text_for_mode(text: str, mode: str) -> str:
    """The estate's text with its ``dr.mode`` set to ``mode`` (the file must hold exactly one such line)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    found = list(_MODE_LINE.finditer(text))
    if len(found) != 1:
        raise ValueError(f"the estate has {len(found)} 'mode: cold|warm' lines; the benchmark needs exactly one, "
                         f"the cluster's dr.mode")
    m = found[0]
    return text[:m.start()] + f"{m['indent']}mode: {mode}" + text[m.end():]


def phase_seconds(fault_at: float, marks: dict[str, float | None], first_ack: float | None) -> dict[str, float | None]:
    """Seconds of each phase from the fault: ``marks`` holds when each of PHASES but first_write ended (epoch
    seconds), ``first_ack`` when the service acknowledged its first write (the RTO's end). A phase without an
    end is None and the next one counts from the last known end, so the known phases add up to the RTO."""
    out: dict[str, float | None] = {}
    prev = fault_at
    for name in PHASES[:-1]:
        end = marks.get(name)
        out[name] = round(end - prev, 3) if end is not None else None
        prev = end if end is not None else prev
    out["first_write"] = round(first_ack - prev, 3) if first_ack is not None else None
    return out


def ratio(drill: float | None, bare: float | None) -> float | None:
    """drill / bare, None when either is missing or the bare figure is not positive."""
    if drill is None or bare is None or bare <= 0:
        return None
    return round(drill / bare, 3)


def median(values: list[float | None]) -> float | None:
    xs = [float(v) for v in values if v is not None]
    return statistics.median(xs) if xs else None


def after_restore(sample: dict[str, Any]) -> float | None:
    """The RTO without its restore phase: what the drill's orchestration can add to, the restore's own
    variance (a cold restore decrypts and decompresses on a loaded machine) left out."""
    rto, restore = sample.get("rto"), (sample.get("phases") or {}).get("restore")
    return None if rto is None or restore is None else round(rto - restore, 3)


def summarize(mode: str, bare: list[dict[str, Any]], drill: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per mode: RTO and phases of both, the ratio drill / bare against its goal (and the same without
    the restore phase), warm's RTO goal."""
    b_rto, d_rto = median([b.get("rto") for b in bare]), median([d.get("rto") for d in drill])
    r = ratio(d_rto, b_rto)
    b_after, d_after = median([after_restore(b) for b in bare]), median([after_restore(d) for d in drill])
    out: dict[str, Any] = {
        "mode": mode, "runs": max(len(bare), len(drill)),
        "bare": {"rto": common.stat(common.col(bare, "rto")),
                 "phases": {p: median([b["phases"].get(p) for b in bare]) for p in PHASES},
                 "lost_writes": median([b.get("lost_writes") for b in bare]),
                 "rpo": median([b.get("rpo") for b in bare]),
                 "wal_bytes_lost": median([b.get("wal_bytes_lost") for b in bare])},
        "drill": {"rto": common.stat(common.col(drill, "rto")),
                  "phases": {p: median([(d.get("phases") or {}).get(p) for d in drill]) for p in PHASES},
                  "lost_writes": median([d.get("lost_writes") for d in drill]),
                  "rpo": median([d.get("rpo") for d in drill]),
                  "wal_bytes_lost": median([d.get("wal_bytes_lost") for d in drill]),
                  "process_wall": median([d.get("process_wall") for d in drill])},
        "ratio_drill_over_bare": r, "ratio_goal": RATIO_GOAL,
        "rto_after_restore": {"bare": b_after, "drill": d_after},
        "ratio_after_restore": ratio(d_after, b_after),
        "ratio_within_goal": None if r is None else r <= RATIO_GOAL,
    }
    if mode == "warm":
        out["warm_rto_goal_seconds"] = WARM_RTO_GOAL_SECONDS
        out["warm_drill_rto_within_goal"] = None if d_rto is None else d_rto < WARM_RTO_GOAL_SECONDS
        out["warm_bare_rto_within_goal"] = None if b_rto is None else b_rto < WARM_RTO_GOAL_SECONDS
    return out


def phase_text(phases: dict[str, float | None]) -> str:
    """``restore 1.23, replay 0.40, ...`` (the phases that have a figure, in their order)."""
    return ", ".join(f"{p} {phases[p]:.2f}" for p in PHASES if phases.get(p) is not None)


def _secs(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} s"


def report_lines(s: dict[str, Any]) -> list[str]:
    """The text report of one mode's summary (`summarize`)."""
    b, d = s["bare"], s["drill"]
    lines = [f"  mode {s['mode']} ({s['runs']} run(s), medians; RTO [min..max])",
             f"    {'from the fault to ...':<50} {'bare':>12} {'drill':>12}"]
    for p in PHASES:
        lines.append(f"    {p:<50} {_secs(b['phases'][p]):>12} {_secs(d['phases'][p]):>12}")
    b_rto = b["rto"]["median"] if b["rto"] else None
    d_rto = d["rto"]["median"] if d["rto"] else None
    lines.append(f"    {'RTO = first write the service acknowledged':<50} {_secs(b_rto):>12} {_secs(d_rto):>12}")
    if (b["rto"] and b["rto"]["n"] > 1) or (d["rto"] and d["rto"]["n"] > 1):
        rng = [f"[{x['rto']['min']:.2f}..{x['rto']['max']:.2f}]" if x["rto"] else "-" for x in (b, d)]
        lines.append(f"    {'  its range':<50} {rng[0]:>14} {rng[1]:>14}")
    lw = [("-" if v is None else f"{v:.0f}") for v in (b["lost_writes"], d["lost_writes"])]
    lines.append(f"    {'acknowledged writes lost':<50} {lw[0]:>12} {lw[1]:>12}")
    lines.append(f"    {'RPO: loss window':<50} {_secs(b['rpo']):>12} {_secs(d['rpo']):>12}")
    wb = [("-" if v is None else f"{v:.0f}") for v in (b["wal_bytes_lost"], d["wal_bytes_lost"])]
    lines.append(f"    {'WAL lost: primary at the fault - replay end (B)':<50} {wb[0]:>12} {wb[1]:>12}")
    r = s["ratio_drill_over_bare"]
    verdict = "" if r is None else (" - within the goal" if s["ratio_within_goal"] else " - OVER the goal")
    lines.append(f"    RTO drill / bare: {'-' if r is None else f'{r:.2f}'} (goal <= {s['ratio_goal']:g}){verdict}")
    ar, ab = s["ratio_after_restore"], s["rto_after_restore"]
    if ar is not None and b["phases"]["restore"]:
        lines.append(f"    without the restore phase (replay -> first write): drill / bare {ar:.2f} "
                     f"({_secs(ab['drill'])} / {_secs(ab['bare'])})")
    if s["mode"] == "warm":
        ok = s["warm_drill_rto_within_goal"]
        lines.append(f"    warm RTO (drill) under {s['warm_rto_goal_seconds']:g} s: "
                     f"{'-' if ok is None else ('yes' if ok else 'NO')} ({_secs(d_rto)}; bare {_secs(b_rto)})")
    if d["process_wall"] is not None:
        lines.append(f"    the drill's whole `airflow dags test` run (fault, recovery, failback): "
                     f"{d['process_wall']:.0f} s")
    return lines


# --------------------------------------------------------------------------- estate and home state
def mode_estate(source: Path, mode: str, tmp: Path) -> Path:
    """The estate file for ``mode``: ``source`` itself when it says so already, else a copy in ``tmp``."""
    text = source.read_text()
    new = estate_text_for_mode(text, mode)
    if new == text:
        return source
    f = tmp / f"estate-{mode}.yaml"
    f.write_text(new)
    return f


def _timeline(cluster: Any, node: Any) -> str:
    from drdrill.hooks import postgres as pg

    with pg.connect(cluster, node.host, node.port, "postgres") as c:
        walfile = pg.query_one(c, "SELECT pg_walfile_name(pg_current_wal_lsn())")[0]
    return str(int(walfile[:8], 16))


_WAL_NAME = re.compile(r"\b([0-9A-F]{8})[0-9A-F]{16}\b")


def replay_timeline(site: Any) -> str | None:
    """The timeline a standby in archive recovery replays, from its startup process's title (``postgres: ...
    startup recovering 0000000B0000000000000037``), or None when it cannot be read. Not
    ``pg_control_checkpoint()``: that is the timeline of the last restartpoint, which stays on the backup's
    timeline for minutes after the standby has moved on (see bench/README.md)."""
    import subprocess

    d = site.node.data_dir
    try:
        pid = int((Path(d) / "postmaster.pid").read_text().split()[0])
        ps = subprocess.run(["ps", "-o", "args=", "--ppid", str(pid)], capture_output=True, text=True, timeout=10)
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None
    for line in ps.stdout.splitlines():
        m = _WAL_NAME.search(line) if "startup" in line else None
        if m:
            return str(int(m[1], 16))
    return None


def home_problems(cluster_name: str, home_primary: str, *, streaming_timeout: float = 30) -> list[str]:
    """What is not as the region drill's home state should be (empty when home)."""
    from drdrill.core.estate import load_estate
    from drdrill.core.polling import wait_until
    from drdrill.drills.failover import region
    from drdrill.drills.failover.region import DrSite
    from drdrill.hooks import postgres as pg
    from drdrill.hooks import route53 as dns

    estate = load_estate()
    cluster = estate.cluster(cluster_name)
    site = DrSite(cluster)
    out: list[str] = []
    if cluster.primary.name != home_primary:
        out.append(f"the recorded primary is {cluster.primary.name}, not {home_primary}")
    prim = cluster.node(home_primary)
    try:
        with pg.connect(cluster, prim.host, prim.port, "postgres") as c:
            if pg.query_one(c, "SELECT pg_is_in_recovery()")[0]:
                out.append(f"{prim.name} is in recovery")

        def streaming() -> bool:
            with pg.connect(cluster, prim.host, prim.port, "postgres") as c:
                names = {r[0] for r in pg.query(c, "SELECT application_name FROM pg_stat_replication "
                                                   "WHERE state = 'streaming'")}
            return all(n.name in names for n in cluster.nodes if n.name not in (prim.name, site.node.name))

        try:
            wait_until(streaming, timeout=streaming_timeout, interval=0.5, what="the standbys streaming")
        except Exception:  # noqa: BLE001 - reported
            out.append(f"not every standby streams from {prim.name}")
        tl = _timeline(cluster, prim)
    except Exception as e:  # noqa: BLE001 - reported
        out.append(f"{prim.name} does not answer: {' '.join(str(e).split())[:200]}")
        tl = None
    f = cluster.failover
    if f and f.dns:
        at = dns.current(f.dns).value
        if at != dns.value_for(f.dns, prim):
            out.append(f"{f.dns.record} points at {at!r}, not at {prim.name}")
    if region.read_record(estate, cluster.name) is not None:
        out.append("a region drill record is left in the state store (region/<cluster>.json)")
    if site.dr.mode == "cold":
        if site.running() or site.dir_state() != "absent":
            out.append(f"{site.node.name} exists (running: {site.running()}, data directory {site.dir_state()}); "
                       f"cold mode has no DR node")
    else:
        try:
            st = site.replay_state()
            replaying = replay_timeline(site)
            if not st["in_recovery"]:
                out.append(f"{site.node.name} is not in recovery")
            elif tl is not None and replaying != tl:
                out.append(f"{site.node.name} replays timeline {replaying}, the primary is on timeline {tl}")
        except Exception as e:  # noqa: BLE001 - reported
            out.append(f"the warm DR standby {site.node.name} does not answer: {' '.join(str(e).split())[:200]}")
    return out


def require_home(cluster_name: str, home_primary: str, when: str) -> None:
    problems = home_problems(cluster_name, home_primary)
    if problems:
        raise SystemExit(f"the estate is not in the region drill's home state {when}: {'; '.join(problems)}")


# --------------------------------------------------------------------------- 1. bare region failover
def _first_ack_after(workdir: Path, fault_at: float) -> float | None:
    from drdrill.core import canary

    return min((r["done_at"] for r in canary.records(workdir) if r.get("ok") and r["sent_at"] >= fault_at),
               default=None)


def _wait_writable(cluster: Any, node: Any, timeout: float) -> None:
    from drdrill.core.polling import wait_until
    from drdrill.hooks import postgres as pg

    def writable() -> bool:
        try:
            with pg.connect(cluster, node.host, node.port, "postgres") as c:
                return not pg.query_one(c, "SELECT pg_is_in_recovery()")[0]
        except Exception:  # noqa: BLE001 - not up yet
            return False

    wait_until(writable, timeout=timeout, interval=0.05, what=f"{node.name} writable")


def bare_region_failover(cluster_name: str) -> dict[str, Any]:
    """One region failover by hand, timed from the fault; the estate is put back afterwards, always."""
    from drdrill.core import canary
    from drdrill.core.estate import load_estate
    from drdrill.core.polling import wait_until
    from drdrill.drills.failover.node_ops import NodeOps
    from drdrill.drills.failover.region import DrSite, lsn_int
    from drdrill.hooks import postgres as pg
    from drdrill.hooks import route53 as dns

    estate = load_estate()
    cluster = estate.cluster(cluster_name)
    f = cluster.failover
    site = DrSite(cluster)
    ops = NodeOps(cluster)
    primary = cluster.primary
    lost = sorted((n for n in cluster.nodes if n.name != site.node.name), key=lambda n: n.name == primary.name)
    r53 = dns.client(f.dns)
    _ = r53.conn  # built before the fault: the switch itself is timed
    run_id = f"bench-region-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
    with pg.connect(cluster, primary.host, primary.port) as c:
        pg.query(c, canary.TABLE_SQL)
    timeline = _timeline(cluster, primary)
    out: dict[str, Any] = {"run_id": run_id, "mode": site.dr.mode, "from": primary.name, "to": site.node.name,
                           "timeline_at_fault": timeline}
    workdir = Path(tempfile.mkdtemp(prefix="drdrill-bench-region-"))
    fault_at = None
    marks: dict[str, float | None] = {}
    killed: dict[str, int | None] = {}
    try:
        urls = [u.rstrip("/") + f.service.write_path for u in f.service.urls]
        canary.start(workdir, run_id, urls, interval_ms=f.canary_interval_ms, timeout=f.service.timeout_seconds)
        canary_started = time.time()
        wait_until(lambda: sum(1 for r in canary.records(workdir) if r.get("ok")) >= 3, timeout=30,
                   interval=CANARY_POLL_SECONDS, what="the canary writer's first acknowledged writes")
        with pg.connect(cluster, primary.host, primary.port, "postgres") as c:  # as close to the fault as can be read
            lsn_at_fault = pg.query_one(c, "SELECT pg_current_wal_lsn()::text")[0]
        for n in lost:  # the standbys first, the primary last: the outage starts when it is down
            killed[n.name] = ops.running_pid(n)
            fault_at = ops.kill(n)["done_at"]
        assert fault_at is not None
        if site.dr.mode == "cold":
            out["restore"] = site.restore(timeline)
            marks["restore"] = time.time()
            ops.start(site.node)
        else:
            marks["restore"] = fault_at  # a warm standby is running: nothing to restore
        repo = site.repo_state()
        out["repo_state_seconds"] = repo.get("seconds")
        out["replayed"] = site.wait_replayed(repo.get("newest_wal"), timeout=site.dr.replay_timeout_seconds)
        marks["replay"] = time.time()
        out["promote_call"] = ops.promote(site.node, wait_seconds=int(f.promote_timeout_seconds))["seconds"]
        marks["promote"] = time.time()
        _wait_writable(cluster, site.node, f.promote_timeout_seconds)
        with pg.connect(cluster, site.node.host, site.node.port) as c:  # as the drill's after_promotion
            if pg.query_one(c, "SELECT to_regclass('drdrill.canary_writes') IS NULL")[0]:
                pg.query(c, canary.TABLE_SQL)
        marks["wait_writable"] = time.time()
        sw = dns.switch(f.dns, site.node, comment=f"drdrill {BENCH} {run_id}: {site.node.name} is primary", r53=r53)
        marks["dns"] = time.time()
        out["dns_call"] = sw.get("insync_seconds")
        first_ack = wait_until(lambda: _first_ack_after(workdir, fault_at), timeout=FIRST_ACK_TIMEOUT,
                               interval=CANARY_POLL_SECONDS, what="the first acknowledged write after the fault")
        time.sleep(0.3)  # a few acknowledged writes after the resume, as in the drill
        canary.stop(workdir)
        with pg.connect(cluster, site.node.host, site.node.port) as c:
            present = {r[0] for r in pg.query(c, "SELECT seq FROM drdrill.canary_writes WHERE run_id = %s",
                                              (run_id,))}
        rep = canary.analyse(canary.records(workdir), present, fault_at)
        replay_end = out["replayed"].get("replay_lsn")
        out["wal_bytes_lost"] = max(0, lsn_int(lsn_at_fault) - lsn_int(replay_end)) if replay_end else None
        out["canary_seconds_before_fault"] = round(fault_at - canary_started, 3)
        out.update(rto=round(first_ack - fault_at, 3), phases=phase_seconds(fault_at, marks, first_ack),
                   lost_writes=len(rep.lost), rpo=rep.loss_window_seconds,
                   endpoint_down=rep.endpoint_down_seconds, canary_attempts=rep.attempts)
    finally:
        canary.stop(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
        if fault_at is not None:
            out["put_back"] = put_back(cluster_name, primary.name, site.node.name, run_id, killed)
    return out


def _gone(pid: int | None) -> bool:
    """The process no longer exists, not even as a zombie (PostgreSQL's lock file check would still see it)."""
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def put_back(cluster_name: str, primary: str, dr_node: str, run_id: str,
             killed: dict[str, int | None]) -> dict[str, Any]:
    """The drill's rollback (`region.abort`): DR node fenced, the primary region started, the record back,
    the warm DR standby rebuilt. Untimed in the figures; what the DR node wrote after its promotion is lost.

    After a promotion `region.abort` also rebuilds the region's standbys and the warm DR standby onto the
    primary's timeline (the promotion's abandoned timeline is in the archive) and switches the primary's WAL
    segment (the next promotion's ``.partial`` must not collide with this one's).
    """
    from drdrill.core.polling import wait_until
    from drdrill.drills.failover import region
    from drdrill.drills.failover.plan import Plan

    t0 = time.time()
    # A postmaster killed a moment ago is a zombie until its parent (init) reaps it, and PostgreSQL refuses to
    # start while the PID in postmaster.pid exists (`NodeOps.running_pid` already calls a zombie not running).
    for name, pid in killed.items():
        wait_until(lambda p=pid: _gone(p), timeout=60, interval=0.1,
                   what=f"the killed postmaster of {name} (PID {pid}) to be reaped")
    plan = Plan(dag_id=BENCH, run_id=run_id, cluster=cluster_name, primary=primary, standby=dr_node, fault="kill",
                failback=False, dry_run=False, workdir="", started_at=t0, approval_required=False,
                skip_health_wait=True, health_check_failed_seconds=0, health_check_interval_seconds=1,
                primary_addr={}, conn_id=None, scope="region")
    rec = region.abort(plan, "bench: put the estate back after the bare region failover")
    out: dict[str, Any] = {"actions": rec.get("actions", []), "abort_seconds": round(time.time() - t0, 3)}
    out["seconds"] = round(time.time() - t0, 3)
    return out


# --------------------------------------------------------------------------- 2. the drill
def drill_region_failover(cluster_name: str, estate: Any, env: dict[str, str], log: Path) -> dict[str, Any]:
    """The region drill under ``airflow dags test``, its figures read from its journal."""
    run = common.run_drill(DRILL, {"cluster": cluster_name, "scope": "region", "fault": "kill"}, estate, env, log)
    m = run.doc.get("measurements") or {}
    reg = m.get("region") or {}
    return {**run.figures(), "rto": m.get("rto_seconds"), "phases": reg.get("rto_phases_seconds") or {},
            "rpo": m.get("rpo_seconds"), "lost_writes": m.get("lost_writes"),
            "wal_bytes_lost": reg.get("wal_bytes_lost"),
            "phases_journal": {k: p.get("seconds") for k, p in (run.doc.get("phases") or {}).items()}}


# --------------------------------------------------------------------------- a mode
def set_estate(path: Path) -> None:
    os.environ["DRDRILL_ESTATE"] = str(path)


def run_mode(mode: str, args: Any, estate_file: Path, env: dict[str, str], logdir: Path,
             home_primary: str) -> dict[str, Any]:
    """``args.runs`` bare runs and drill runs in ``mode``; the warm DR standby built first, removed after."""
    from drdrill.core.estate import load_estate
    from drdrill.drills.failover.region import DrSite
    from drdrill.sandbox import Sandbox

    set_estate(estate_file)
    menv = {**env, "DRDRILL_ESTATE": str(estate_file)}
    estate = load_estate()
    res: dict[str, Any] = {"mode": mode, "estate_file": str(estate_file), "bare": [], "drill": []}
    try:
        if mode == "warm":
            common.progress("warm: building the DR standby (restore from the DR repo, replay; untimed) ...")
            t0 = time.time()
            Sandbox(load_estate(topology=False)).dr_standby()
            res["warm_standby_built_seconds"] = round(time.time() - t0, 1)
            common.progress(f"  built in {res['warm_standby_built_seconds']:.0f} s")
        require_home(args.cluster, home_primary, f"before the {mode} runs")
        for n in range(1, args.runs + 1):
            if "bare" in args.parts:
                common.progress(f"{mode} run {n}/{args.runs}: bare region failover ...")
                b = bare_region_failover(args.cluster)
                common.progress(f"  RTO {b['rto']:.2f} s ({phase_text(b['phases'])}); {b['lost_writes']} lost; "
                                f"put back in {b['put_back']['seconds']:.0f} s")
                res["bare"].append(b)
                require_home(args.cluster, home_primary, "after the bare run")
            if "drill" in args.parts:
                common.progress(f"{mode} run {n}/{args.runs}: airflow dags test {DRILL} (scope region) ...")
                d = drill_region_failover(args.cluster, estate, menv, logdir / f"{mode}-{n}-region-drill.log")
                if d["status"] != "passed":
                    common.drill_failed(d)
                    res["drill"].append(d)
                    res["failed"] = True
                    return res
                rto = f"{d['rto']:.2f} s" if d.get("rto") is not None else "not measured"
                common.progress(f"  RTO {rto} ({phase_text(d['phases'])}); {d.get('lost_writes')} lost; "
                                f"{d['process_wall']:.0f} s wall")
                res["drill"].append(d)
                require_home(args.cluster, home_primary, "after the drill run")
    finally:
        if mode == "warm":  # the default (cold) sandbox has no DR node
            try:
                DrSite(load_estate().cluster(args.cluster)).discard()
            except Exception as e:  # noqa: BLE001 - say what is left
                common.progress(f"could not remove the warm DR node: {e}")
    return res


# --------------------------------------------------------------------------- main
PARTS = ("bare", "drill")


def main(argv: list[str] | None = None) -> int:
    ap = common.parser(__doc__)
    ap.add_argument("--mode", choices=MODES, action="append",
                    help="cold or warm (repeatable; default both, cold first)")
    ap.add_argument("--runs", type=int, default=1, help="repeat each part N times per mode (default 1)")
    ap.add_argument("--only", choices=PARTS, action="append", help="run only this part (repeatable): bare, drill")
    common.add_estate_options(ap)
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    args.modes = tuple(dict.fromkeys(args.mode or MODES))
    args.parts = tuple(args.only or PARTS)
    common.use_checkout_package()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the finally blocks run: estate put back
    t_start = time.monotonic()
    load_start = os.getloadavg()[0]

    env = common.airflow_env()
    estate, cluster = common.load_cluster(ap, args, DRILL, env)
    if cluster.sandbox is None:
        ap.error(f"cluster {cluster.name} of {estate.source} is not a sandbox cluster: this benchmark kills its "
                 f"primary region with kill -9")
    if cluster.dr is None:
        ap.error(f"cluster {cluster.name} of {estate.source} has no dr: section: nothing to fail over to")
    f = cluster.failover
    if f is None or f.dns is None or f.service is None:
        ap.error(f"cluster {cluster.name} needs failover.dns and failover.service in {estate.source}")
    from drdrill.sandbox import Sandbox

    problems = Sandbox().problems()
    if problems:
        raise SystemExit(f"the sandbox is not healthy ({'; '.join(problems)}): run `make sandbox-up` first")
    source = Path(estate.source)
    home_primary = cluster.primary.name
    logdir = common.log_dir(env)
    migrate = common.ensure_airflow_db(env, logdir) if "drill" in args.parts else None
    tmp = Path(tempfile.mkdtemp(prefix="drdrill-bench-region-estate-"))
    saved = os.environ.get("DRDRILL_ESTATE")
    results: list[dict[str, Any]] = []
    failed = False
    try:
        with common.LogsToFile(logdir / "region-bench.log"):
            for mode in args.modes:
                try:
                    path = mode_estate(source, mode, tmp)
                except ValueError as e:
                    raise SystemExit(f"{source}: {e}") from None
                r = run_mode(mode, args, path, env, logdir, home_primary)
                results.append(r)
                if r.get("failed"):
                    failed = True
                    break
    finally:
        if saved is None:
            os.environ.pop("DRDRILL_ESTATE", None)
        else:
            os.environ["DRDRILL_ESTATE"] = saved
        shutil.rmtree(tmp, ignore_errors=True)
    if failed:
        return 1
    summaries = [summarize(r["mode"], r["bare"], r["drill"]) for r in results]
    doc = {"estate": estate.name, "estate_file": str(source), "cluster": cluster.name, "runs": args.runs,
           "dr_node": cluster.dr.node.name, "dr_repo": cluster.dr_repo, "canary_interval_ms": f.canary_interval_ms,
           "dns_record": f.dns.record, "dns_ttl": f.dns.ttl, "airflow_db_migrate_seconds": migrate,
           "summary": summaries, "samples": results, "logdir": str(logdir),
           "load": (load_start, os.getloadavg()[0]), "cpus": os.cpu_count(),
           "total_seconds": round(time.monotonic() - t_start, 1)}
    if args.json:
        import json

        print(json.dumps(doc, indent=2, default=str))
        return 0
    print(f"drdrill region failover RTO: estate {estate.name!r} ({source}), cluster {cluster.name}; region "
          f"{cluster.primary_region} ({', '.join(n.name for n in cluster.nodes)}) killed with kill -9, "
          f"{cluster.dr.node.name} in region {cluster.dr.region} from repo{cluster.dr_repo} alone")
    print(f"  canary: one write every {f.canary_interval_ms} ms through {len(f.service.urls)} service replica(s); "
          f"record {f.dns.record} TTL {f.dns.ttl} s")
    print(f"  machine load (1-min average) at the start / end: {doc['load'][0]:.2f} / {doc['load'][1]:.2f} on "
          f"{doc['cpus']} cores (the cold restore decrypts and decompresses on them: it varies with the load)")
    if migrate is not None:
        print(f"  airflow db migrate (first use of this AIRFLOW_HOME, in no figure below): {migrate:.1f} s")
    for s, r in zip(summaries, results, strict=True):
        print()
        for ln in report_lines(s):
            print(ln)
        if r.get("warm_standby_built_seconds") is not None:
            print(f"    warm DR standby built before the runs (untimed): {r['warm_standby_built_seconds']:.0f} s")
        puts = [b["put_back"]["seconds"] for b in r["bare"] if b.get("put_back")]
        if puts:
            print(f"    bare: put back by region.abort (untimed): {common.fmt(puts, digits=0)}")
    print(f"\n  total benchmark time {doc['total_seconds']:.0f} s; logs: {logdir}")
    for r in results:
        if r["drill"]:
            print(f"  last journal ({r['mode']}): {r['drill'][-1]['journal']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
