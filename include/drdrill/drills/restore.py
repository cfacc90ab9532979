"""Steps of the monthly restore test: preflight, ledger, scratch, restore, start, checks, measure.

The ledger fixes what the restored copy must contain: a first canary row, the exact row count
of every user table in one REPEATABLE READ snapshot (whose time is the PITR target), then a
second canary after it. A point-in-time restore must show the first canary and not the
second; a "latest" restore must show both. Counts must match within the table's tolerance.
"""

from __future__ import annotations

import logging
import os
import random
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from drdrill.core import scratch
from drdrill.core.checks import CheckResult, at_most
from drdrill.core.errors import DrillError, PreflightError
from drdrill.core.estate import Cluster, Estate, load_estate
from drdrill.core.polling import wait_until
from drdrill.core.runner import runner_for
from drdrill.hooks import postgres as pg
from drdrill.hooks.pgbackrest import PgBackRestHook

log = logging.getLogger(__name__)

DRILL = "dr_monthly_restore_test"

CANARY_DDL = """
-- CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema exists: only when missing
DO $$ BEGIN IF to_regnamespace('drdrill') IS NULL THEN CREATE SCHEMA drdrill; END IF; END $$;
CREATE TABLE IF NOT EXISTS drdrill.canary (id bigserial PRIMARY KEY, run_id text NOT NULL, kind text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp())
"""


@dataclass(frozen=True)
class Plan:
    """Validated parameters of one restore test run."""

    cluster: str
    repo: int
    recovery_point: str  # "latest" | "pitr" | "random"
    target_time: str | None  # user-given PITR target (ISO 8601 with zone); None: the ledger's snapshot
    dry_run: bool
    scratch_dir: str | None
    scratch_port: int | None
    seed: int | None = None  # random: the pick's seed (given, or drawn in preflight and journalled)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        return cls(**d)


def parse_time(value: str) -> datetime:
    """An ISO 8601 time with a zone; naive times are refused (whose midnight would it be?)."""
    try:
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise PreflightError(f"target_time {value!r} is not an ISO 8601 time; use e.g. "
                             f"2026-11-24T14:30:00+00:00") from None
    if t.tzinfo is None:
        raise PreflightError(f"target_time {value!r} has no time zone; add one, e.g. {value}+00:00")
    return t


def preflight(params: dict[str, Any], run_id: str, estate: Estate | None = None) -> dict[str, Any]:
    """Validate params, estate and safeguards; nothing is created or written here."""
    estate = estate or load_estate()
    cluster = estate.cluster(str(params.get("cluster") or ""))
    if not cluster.allows(DRILL):
        raise PreflightError(f"cluster {cluster.name!r} does not allow {DRILL}; add it to the cluster's "
                             f"allowed_drills in {estate.source} if this is intended")
    try:
        repo = int(params.get("repo", 1))
    except (TypeError, ValueError):
        raise PreflightError(f"repo must be a repo number such as 1 or 2, got {params.get('repo')!r}") from None
    cluster.pgbackrest.repo(repo)  # raises naming the repos that exist
    point = params.get("recovery_point", "latest")
    if point not in ("latest", "pitr", "random"):
        raise PreflightError(f"recovery_point must be 'latest', 'pitr' or 'random', got {point!r}")
    target_time = params.get("target_time") or None
    if target_time and point != "pitr":
        raise PreflightError("target_time is only used with recovery_point 'pitr'; remove it or set "
                             "recovery_point to 'pitr'")
    seed = params.get("seed")
    if seed not in (None, "") and point != "random":
        raise PreflightError("seed is only used with recovery_point 'random' (it replays a random pick); remove it "
                             "or set recovery_point to 'random'")
    if point == "random":
        try:
            seed = secrets.randbelow(2**31) if seed in (None, "") else int(seed)
        except (TypeError, ValueError):
            raise PreflightError(f"seed must be a whole number (the one a journal recorded), got {seed!r}") from None
        if seed < 0:
            raise PreflightError(f"seed must be 0 or more, got {seed}")
    port = params.get("scratch_port")
    plan = Plan(cluster.name, repo, point, target_time, bool(params.get("dry_run", False)),
                params.get("scratch_dir") or None, int(port) if port not in (None, "") else None,
                seed if point == "random" else None)
    # Refuse a scratch target on a production path or port before anything exists.
    scratch.allocate(estate, run_id, scratch_dir=plan.scratch_dir, port=plan.scratch_port)
    window = recoverable_window(cluster, repo)
    space = check_scratch_space(runner_for(cluster.runner), Path(plan.scratch_dir) if plan.scratch_dir
                                else estate.scratch.root, repo, window["largest_backup_bytes"],
                                estate.scratch.disk_margin_percent)
    if target_time:
        t = parse_time(target_time)
        now = datetime.now(UTC)
        if t >= now:
            raise PreflightError(f"target_time {t.isoformat()} is in the future "
                                 f"(now {now.isoformat(timespec='seconds')}); a restore can only reach a time "
                                 f"that has already been archived")
        if t <= window["oldest_backup_stop"]:
            raise PreflightError(f"target_time {t.isoformat()} is before the recoverable window of repo{repo}: its "
                                 f"oldest backup {window['oldest_backup_label']} finished at "
                                 f"{window['oldest_backup_stop'].isoformat()}; choose a later time or another repo")
    primary = cluster.primary
    ok, why = pg.is_ready(cluster, primary.host, primary.port)
    if not ok:
        raise PreflightError(f"primary {primary.name} ({primary.host}:{primary.port}) is not reachable: {why}; "
                             f"the ledger needs it")
    log.info("preflight ok: cluster %s, repo%s, %s%s, recoverable window from %s (%s), scratch space %s%s",
             cluster.name, repo, point, f" to {target_time}" if target_time else
             (f" (seed {plan.seed})" if point == "random" else ""),
             window["oldest_backup_stop"].isoformat(), window["oldest_backup_label"], space,
             " [DRY RUN]" if plan.dry_run else "")
    return plan.to_dict()


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def free_bytes(runner: Any, path: Path) -> tuple[Path, int]:
    """Free bytes (for an unprivileged user) of the file system holding ``path``, asked where commands run
    (``stat -f``); a path that does not exist yet is measured at its nearest existing parent."""
    for p in [path, *path.parents]:
        res = runner.run(["stat", "-f", "-c", "%a %S", str(p)], timeout=30, check=False)
        if res.returncode == 0:
            avail, block = res.stdout.split()
            return p, int(avail) * int(block)
        if "No such file" not in res.stderr:
            raise PreflightError(f"cannot measure the free space of scratch root {path}: `stat -f {p}` failed: "
                                 f"{res.stderr.strip()}; the OS user the runner uses must be able to reach it")
    raise PreflightError(f"cannot measure the free space of scratch root {path}")


def check_scratch_space(runner: Any, root: Path, repo: int, backup_bytes: int | None, margin_percent: float) -> str:
    """Refuse a restore the scratch root has no room for (the backup's database size plus a margin), before
    anything is written; returns the figures for the log."""
    where, free = free_bytes(runner, Path(root))
    if not backup_bytes:
        return f"{_human(free)} free at {where} (backup size unknown)"
    need = int(backup_bytes * (1 + margin_percent / 100))
    if free < need:
        raise PreflightError(
            f"not enough free space for the restore: scratch root {root} has {_human(free)} free ({free} bytes, on "
            f"the file system of {where}), and repo{repo}'s backup restores a database of {_human(backup_bytes)} "
            f"({backup_bytes} bytes); with the {margin_percent:g}% margin (scratch.disk_margin_percent) it needs "
            f"{_human(need)}. Free space there, or point scratch.root (or the scratch_dir param) at a bigger file "
            f"system. Nothing was restored or created.")
    return f"{_human(free)} free at {where}, {_human(need)} needed"


def recoverable_window(cluster: Cluster, repo: int) -> dict[str, Any]:
    """The oldest backup of ``repo``: nothing before its stop time can be recovered from it."""
    # Scoped to the repo restored from: a dead other repo must not stall the preflight.
    stanzas = [s for s in PgBackRestHook.for_cluster(cluster).info(repo=repo) if s.name == cluster.pgbackrest.stanza]
    oldest = stanzas[0].oldest(repo) if stanzas else None
    if oldest is None:
        raise PreflightError(f"repo{repo} of stanza {cluster.pgbackrest.stanza!r} holds no backup; run "
                             f"`pgbackrest --stanza={cluster.pgbackrest.stanza} --repo={repo} backup --type=full`")
    sizes = [b.size for b in stanzas[0].backups if b.repo_key == repo and b.size]
    return {"oldest_backup_label": oldest.label, "oldest_backup_stop": oldest.stop,
            "largest_backup_bytes": max(sizes, default=None)}


def ledger(plan: Plan, run_id: str, estate: Estate | None = None) -> dict[str, Any]:
    """Canary, exact counts in one snapshot, second canary; then wait until that WAL is archived."""
    if plan.dry_run:
        log.info("[DRY RUN] would write two canary rows and count every table on the primary")
        return {"dry_run": True, "tables": [], "restore_target": None, "expected_counts": None, "canaries": [],
                "timeline": None}
    estate = estate or load_estate()
    cluster = estate.cluster(plan.cluster)
    p = cluster.primary
    excl = cluster.restore_test.exclude_schemas
    with pg.connect(cluster, p.host, p.port) as c:
        pg.query(c, CANARY_DDL)
        before = pg.query_one(c, "INSERT INTO drdrill.canary(run_id, kind) VALUES (%s, 'before') "
                                 "RETURNING id, created_at", (run_id,))
    with pg.connect(cluster, p.host, p.port, autocommit=False, isolation="REPEATABLE READ", read_only=True) as c:
        # The first statement takes the snapshot; clock_timestamp() is read after it, so every
        # commit the snapshot sees has an earlier commit time: this is the PITR target.
        snapshot_time = pg.query_one(c, "SELECT clock_timestamp()")[0]
        t0 = time.monotonic()
        tables = pg.user_tables(c, excl)
        counts = pg.count_rows(c, tables)
        c.commit()
        count_s = time.monotonic() - t0
    time.sleep(0.005)  # the second canary's commit must be strictly later than the target
    with pg.connect(cluster, p.host, p.port) as c:
        after = pg.query_one(c, "INSERT INTO drdrill.canary(run_id, kind) VALUES (%s, 'after') "
                                "RETURNING id, created_at", (run_id,))
        segment = pg.query_one(c, "SELECT pg_walfile_name(pg_switch_wal())")[0]
        t1 = time.monotonic()
        wait_until(lambda: (pg.query_one(c, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")[0]
                               >= segment), timeout=300, interval=0.1,
                      what=f"WAL segment {segment} to be archived (is archive_command failing?)")
        archived_s = time.monotonic() - t1
    log.info("ledger: %d tables counted in %.2fs at %s; canaries %s/%s; WAL %s archived in %.2fs",
             len(tables), count_s, snapshot_time.isoformat(), before[0], after[0], segment, archived_s)
    if plan.recovery_point == "random":
        pick = random_point(cluster, plan, snapshot_time)
        with pg.connect(cluster, p.host, p.port) as c:
            pick["canaries"] = canaries_around(c, datetime.fromisoformat(pick["target_time"]))
        log.info("random recovery point (seed %s): %s, inside repo%s's window %s .. %s", plan.seed,
                 pick["target_time"], plan.repo, pick["window_from"], pick["window_to"])
    led = {"snapshot_time": snapshot_time.isoformat(), "tables": tables, "counts": counts,
           "canary_before": {"id": before[0], "at": before[1].isoformat()},
           "canary_after": {"id": after[0], "at": after[1].isoformat()},
           "wal_segment": segment, "count_seconds": round(count_s, 3), "archive_wait_seconds": round(archived_s, 3),
           # the primary's timeline: the restore follows it, never a newer branch an abandoned promotion left
           "timeline": str(int(segment[:8], 16))}
    if plan.recovery_point == "random":
        led["random"] = pick
    return {**led, **expectations(plan, run_id, led)}


# A canary inserted this close before the target may commit after it: its presence proves nothing.
CANARY_MARGIN = timedelta(seconds=1)


def random_point(cluster: Cluster, plan: Plan, until: datetime) -> dict[str, Any]:
    """A random time inside the repo's recoverable window, drawn from ``plan.seed``: the same seed over the same
    window picks the same time (AWS Backup restore testing's random recovery point, replayable).

    The window runs from just after the oldest backup's stop to the ledger's snapshot, the newest point the
    archive is known to hold: every second a user could ask for (the daily verification's ``pitr_window``
    check proves the archive is continuous over it).
    """
    start = oldest = recoverable_window(cluster, plan.repo)["oldest_backup_stop"] + timedelta(seconds=1)
    if start >= until:
        raise PreflightError(f"repo{plan.repo} has no recoverable window to pick from: its oldest backup finished "
                             f"at {oldest.isoformat()}, after the ledger's snapshot {until.isoformat()}")
    t, fraction = pick_time(plan.seed, start, until)
    return {"seed": plan.seed, "fraction": round(fraction, 9), "window_from": start.isoformat(),
            "window_to": until.isoformat(), "target_time": t.isoformat()}


def pick_time(seed: int | None, start: datetime, until: datetime) -> tuple[datetime, float]:
    """The seeded pick: ``start + (until - start) * fraction``, whole milliseconds (what a journal can replay)."""
    fraction = random.Random(seed).random()
    t = start + (until - start) * fraction
    return t.replace(microsecond=t.microsecond // 1000 * 1000), fraction


def canaries_around(conn: Any, t: datetime) -> list[dict[str, Any]]:
    """The restore tests' canary rows nearest ``t`` on the primary: the last one committed before it (must be in
    a restore to ``t``) and the first after it (must not). Either may be missing (a young repo)."""
    from drdrill.drills.dataquality import CANARY_KINDS

    kinds = list(CANARY_KINDS)
    before = next(iter(pg.query(conn, "SELECT run_id, kind, created_at FROM drdrill.canary WHERE created_at <= %s "
                                      "AND kind = ANY(%s) ORDER BY created_at DESC LIMIT 1",
                                (t - CANARY_MARGIN, kinds))), None)
    after = next(iter(pg.query(conn, "SELECT run_id, kind, created_at FROM drdrill.canary WHERE created_at > %s "
                                     "AND kind = ANY(%s) ORDER BY created_at LIMIT 1", (t, kinds))), None)
    return [{"run_id": r[0], "kind": r[1], "at": r[2].isoformat(), "present": present, "label": label,
             "meaning": f"the canary written at {r[2].isoformat()}, {word} the target {t.isoformat()}, is "
                        f"{'present' if present else 'absent'}"}
            for r, present, label, word in ((before, True, "before_target", "before"),
                                            (after, False, "after_target", "after")) if r]


def expectations(plan: Plan, run_id: str, led: dict[str, Any]) -> dict[str, Any]:
    """What the restored copy must show: the restore target, exact counts and canaries.

    A user-given PITR time has no ledger snapshot: its counts are unknown and the canaries
    prove nothing about it, so only the tables are checked then. A random point has no counts
    either; the canaries nearest it (earlier runs') prove where the recovery stopped.
    """
    if plan.recovery_point == "random":
        pick = led["random"]
        return {"restore_target": pick["target_time"], "expected_counts": None,
                "canaries": [{k: c[k] for k in ("run_id", "kind", "present", "label", "meaning")}
                             for c in pick["canaries"]]}
    at_snapshot = plan.recovery_point == "latest" or not plan.target_time
    canaries = ([{"run_id": run_id, "kind": "before", "present": True},
                 {"run_id": run_id, "kind": "after", "present": plan.recovery_point == "latest"}]
                if at_snapshot else [])
    return {"restore_target": pitr_target(plan, led), "expected_counts": led["counts"] if at_snapshot else None,
            "canaries": canaries}


def pitr_target(plan: Plan, led: dict[str, Any]) -> str | None:
    """The time to recover to, or None for the end of the archive."""
    if plan.recovery_point != "pitr":
        return None
    return plan.target_time or led["snapshot_time"]


# How long the restore test waits for a cluster another drill is acting on (its lock task runs in the
# 1-slot pool dr_destructive, so a long wait would hold every other drill's action): 0 by default.
LOCK_WAIT_SECONDS = float(os.environ.get("DRDRILL_RESTORE_LOCK_WAIT_SECONDS", "0"))


def target_keys(plan: Plan) -> list[str]:
    return [f"cluster:{plan.cluster}"]


def lock_targets(plan: Plan, run_id: str, task_id: str, estate: Estate | None = None) -> dict[str, Any]:
    """The kill switch, then the lease on ``cluster:<name>`` for the ledger, the restore and its checks.

    The scratch restore reads the cluster's backups and the ledger counts its rows: a failover or chaos
    drill acting on the same cluster meanwhile would confound the restore time and the counts, so they
    wait for this lease (and this run for theirs: `drdrill.core.targetlock.TargetBusy` names the holder).
    The lease's TTL is the scratch's (twice the restore target, ``DRDRILL_SCRATCH_LEASE_MINUTES``
    overrides): a run still going then has failed its target anyway, and a run whose process was killed
    can read as running for ever (``airflow dags test``; a real scheduler fails it, and its teardown
    releases the lease). A run that ended frees it at once.
    Returns ``{"keys", "lease", "kill_switch", "taken_over", "waited_seconds"}`` for the journal."""
    from drdrill.core import killswitch, targetlock

    keys = target_keys(plan)
    verdict = killswitch.check_kill_switch(f"the restore test of {plan.cluster}")
    if plan.dry_run:
        now = targetlock.holders(keys)
        log.info("[DRY RUN] would take the lease on %s (now: %s)", keys, now)
        return {"keys": keys, "lease": None, "dry_run": True, "holders_now": now, "kill_switch": verdict}
    cluster = (estate or load_estate()).cluster(plan.cluster)
    lease = targetlock.acquire(keys, holder=targetlock.Holder(DRILL, run_id, task_id, "restore test"),
                               ttl_seconds=scratch.lease_seconds(2 * cluster.targets.max_restore_minutes),
                               wait_seconds=LOCK_WAIT_SECONDS)
    return {"keys": keys, "lease": lease.to_dict(), "kill_switch": verdict, "taken_over": lease.taken_over,
            "waited_seconds": lease.waited_seconds}


def release_targets(locked: dict[str, Any] | None) -> dict[str, Any]:
    """Release the run's lease (its own keys only); nothing to do when none was taken."""
    from drdrill.core import targetlock

    lease = (locked or {}).get("lease")
    if not lease:
        return {"released": [], "reason": "no lease was taken (dry run, or the lock step did not succeed)"}
    return {"released": targetlock.release(lease)}


def setup_scratch(plan: Plan, run_id: str, estate: Estate | None = None,
                  is_active: Callable[[dict], bool] | None = None) -> dict[str, Any]:
    """Remove leftovers of dead runs, then allocate and create this run's scratch dir and port.

    ``is_active(tag)`` tells whether the run that made a scratch directory is still running.
    """
    estate = estate or load_estate()
    cluster = estate.cluster(plan.cluster)
    runner = runner_for(cluster.backup_runner)  # the scratch server runs where pgBackRest restores
    root = Path(plan.scratch_dir) if plan.scratch_dir else estate.scratch.root
    removed = scratch.remove_all_scratch(root, runner, cluster.postgres.bin_dir, keep_run_id=run_id,
                                         is_active=is_active)
    s = scratch.allocate(estate, run_id, scratch_dir=plan.scratch_dir, port=plan.scratch_port, dag_id=DRILL)
    if plan.dry_run:
        log.info("[DRY RUN] would create scratch %s on port %s", s.dir, s.port)
    else:
        # Twice the restore target: a run still going then has failed its target anyway.
        scratch.create(s, runner, runner.user,
                       lease=scratch.lease_seconds(2 * cluster.targets.max_restore_minutes))
        log.info("scratch %s allocated on port %s", s.dir, s.port)
    return {**s.to_dict(), "cluster": cluster.name, "leftovers_removed": [str(d) for d in removed]}


def restore_into(br: PgBackRestHook, sc: scratch.Scratch, *, repo: int, target_time: str | None,
                 target_timeline: str | None = None) -> dict[str, Any]:
    """`pgbackrest restore` of ``repo`` (to ``target_time``, ISO 8601 with zone, or the end of the archive), along
    ``target_timeline`` (the primary's when the ledger was taken; default the newest in the repo)."""
    res = br.restore(repo=repo, pg_path=sc.data_dir, target_time=_pg_time(target_time), check=False,
                     target_timeline=target_timeline)
    if res.returncode != 0:
        chosen = re.search(r"restore backup set (\S+?),? ", res.stdout + res.stderr)
        errors = [ln.strip() for ln in res.stderr.splitlines() if "ERROR" in ln] or res.stderr.strip().splitlines()
        if not chosen:  # nothing was read from the repo: the target or the stanza is the problem
            raise DrillError(f"pgbackrest restore of stanza {br.stanza!r} from repo{repo} into {sc.data_dir} failed "
                             f"before reading any backup set (exit code {res.returncode}): {' | '.join(errors[-3:])}. "
                             f"Check that the stanza and repo exist and that the scratch directory is writable by "
                             f"the user pgBackRest runs as.")
        raise DrillError(f"pgbackrest restore from repo{repo} failed (exit code {res.returncode}) while "
                         f"restoring backup set {chosen.group(1)}: {' | '.join(errors[-3:])}. The backup set may be "
                         f"damaged: run dr_daily_verification (pgbackrest verify) for repo{repo}, take a new full "
                         f"backup and expire the damaged set.")
    log.info("restored from repo%s into %s in %.1fs (target %s)", repo, sc.data_dir, res.seconds,
             target_time or "end of archive")
    return {"seconds": round(res.seconds, 3), "target_time": target_time, "repo": repo,
            "target_timeline": target_timeline or "latest"}


def _pg_time(iso: str | None) -> str | None:
    return parse_time(iso).isoformat(sep=" ") if iso else None


def scratch_settings(sc: scratch.Scratch) -> dict[str, Any]:
    """The whole configuration of a scratch server: its own port, address and socket, small memory, no
    archiving, no replication, no preloaded libraries; nothing is taken from the primary's files.

    ``hot_standby`` is off: the copy takes no connection before it is promoted (the readiness probe
    waits for that anyway), so its connection and worker limits need not match the primary's.
    """
    return {"port": sc.port, "listen_addresses": sc.host, "unix_socket_directories": str(sc.socket_dir),
            "cluster_name": "drdrill-scratch", "max_connections": 20, "shared_buffers": "128MB",
            "work_mem": "4MB", "maintenance_work_mem": "64MB", "max_wal_senders": 0, "wal_level": "replica",
            "archive_mode": "off", "archive_command": "", "hot_standby": "off", "shared_preload_libraries": "",
            "autovacuum": "off", "fsync": "off", "synchronous_commit": "off", "jit": "off", "ssl": "off",
            "password_encryption": "scram-sha-256", "logging_collector": "off", "log_min_messages": "warning",
            "hba_file": str(sc.data_dir / "pg_hba.conf"), "ident_file": str(sc.data_dir / "pg_ident.conf")}


# What pgBackRest's restore writes into postgresql.auto.conf for the recovery; every other line of that
# file (the primary's ALTER SYSTEM settings: its port, archive_command, primary_conninfo...) is dropped.
RECOVERY_KEYS = ("restore_command", "recovery_target", "recovery_target_time", "recovery_target_lsn",
                 "recovery_target_name", "recovery_target_xid", "recovery_target_inclusive",
                 "recovery_target_action", "recovery_target_timeline", "recovery_end_command")


def _conf_value(value: object) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def scratch_hba(role: str) -> str:
    """Only the drills' role, with its password (scram-sha-256), over TCP; the runner's OS user on the socket."""
    quoted = '"' + role.replace('"', '""') + '"'
    return "\n".join(["# Written by drdrill: a scratch copy's own pg_hba.conf", "local all all peer",
                      f"host all {quoted} all scram-sha-256", ""])


def configure_scratch(runner: Any, sc: scratch.Scratch, *, role: str) -> dict[str, Any]:
    """Give the restored copy its own configuration, whatever the primary's layout (Debian keeps its
    files in /etc/postgresql, so the copy may have none; a copy of the primary's would name its port
    and archive_command). The restored files are kept beside as ``*.restored`` and never read.
    Everything goes through the runner, as the server's OS user, where the server runs."""
    data = sc.data_dir
    moved = []
    for name in ("postgresql.conf", "pg_hba.conf", "pg_ident.conf"):
        res = runner.run(["mv", "-f", str(data / name), str(data / f"{name}.restored")], timeout=30, check=False)
        if res.returncode == 0:
            moved.append(name)
    auto = runner.run(["cat", str(data / "postgresql.auto.conf")], timeout=30, check=False).stdout
    kept = [ln for ln in auto.splitlines() if ln.split("=", 1)[0].strip() in RECOVERY_KEYS]
    conf = ["# Written by drdrill: a scratch copy's whole configuration (nothing of the primary's)",
            *(f"{k} = {_conf_value(v)}" for k, v in scratch_settings(sc).items()), ""]
    files = {"postgresql.conf": "\n".join(conf), "pg_hba.conf": scratch_hba(role), "pg_ident.conf": "",
             "postgresql.auto.conf": "\n".join(["# pgBackRest's recovery settings, kept by drdrill", *kept, ""])}
    for name, text in files.items():
        runner.run(["dd", f"of={data / name}", "status=none"], timeout=30, input=text)
    log.info("scratch configuration written (restored %s set aside; recovery settings kept: %s)",
             ", ".join(moved) or "no config files", ", ".join(ln.split("=", 1)[0].strip() for ln in kept) or "none")
    return {"restored_config_set_aside": moved}


def start_server(runner: Any, bin_dir: Path, sc: scratch.Scratch, *, owner: str | None,
                 role: str = "postgres") -> dict[str, Any]:
    """Start a restored copy in ``sc`` on its own configuration; returns when pg_ctl does (not promoted yet).

    ``role``: the login the drills use on the copy (the only one its pg_hba.conf lets in over TCP).
    """
    configure_scratch(runner, sc, role=role)
    started = time.time()
    runner.run([str(Path(bin_dir) / "pg_ctl"), "-D", str(sc.data_dir), "-l", str(sc.logfile), "-W", "start"],
               timeout=60)
    log.info("scratch server starting on %s:%s (log %s)", sc.host, sc.port, sc.logfile)
    return {"started_at": started, "start_seconds": round(time.time() - started, 3), "host": sc.host,
            "port": sc.port, "log": str(sc.logfile)}


def measure(plan: Plan, restored: dict[str, Any], dq: dict[str, Any], estate: Estate | None = None
            ) -> dict[str, Any]:
    """Restore time split (restore command, replay/promote, checks) against max restore minutes."""
    estate = estate or load_estate()
    cluster = estate.cluster(plan.cluster)
    if plan.dry_run:
        return {"results": [], "measurements": {}}
    restore_s = float(restored["seconds"])
    replay_s = max(0.0, float(restored["ready_at"]) - float(restored["started_at"]))
    checks_s = float(dq["seconds"])
    total = restore_s + replay_s + checks_s
    limit = cluster.targets.max_restore_minutes
    result = at_most("restore_time", round(total / 60, 3), limit, unit=" min", target=cluster.name,
                     what="restore + replay/promote + checks",
                     fix="Raise process_max, restore from a closer repo, or take more frequent diff backups.")
    m = {"restore_command_seconds": round(restore_s, 3), "replay_promote_seconds": round(replay_s, 3),
         "checks_seconds": round(checks_s, 3), "total_seconds": round(total, 3),
         "max_restore_minutes": limit,
         # Loading Great Expectations in the checks' task, before them: a fixed cost of that process,
         # shown apart and not part of the restore time.
         "gx_load_seconds": round(float(dq.get("gx_load_seconds") or 0.0), 3)}
    log.info("restore %.1fs + replay/promote %.1fs + checks %.1fs = %.1fs (target %s min)", restore_s, replay_s,
             checks_s, total, limit)
    return {"results": [result.to_dict()], "measurements": m}


def as_results(dicts: list[dict[str, Any]] | None) -> list[CheckResult]:
    return [CheckResult.from_dict(d) for d in (dicts or [])]

