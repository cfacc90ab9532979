"""Checks of the daily verification, one function per check group, for one cluster.

Each returns a list of `CheckResult`; a problem reaching a server or running pgBackRest is a
failed check with the reason, never an exception, so the drill lists every failure at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import psycopg

from drdrill.core.checks import CheckResult, Status, at_most
from drdrill.core.errors import DrillError
from drdrill.core.estate import Cluster
from drdrill.hooks import postgres as pg
from drdrill.hooks.pgbackrest import PgBackRestHook

log = logging.getLogger(__name__)


def guarded(name: str, target: str, fn: Callable[[], list[CheckResult]]) -> list[CheckResult]:
    """Run a check group; an error reaching the system becomes one failed check naming it."""
    try:
        results = fn()
    except (DrillError, psycopg.Error, OSError) as e:
        msg = str(e).strip() or type(e).__name__
        results = [CheckResult(name, Status.FAIL, f"could not run: {msg}", target)]
    for r in results:
        (log.warning if r.failed else log.info)("%s", r.line())
    return results


WAL_SEGMENT_BYTES = 16 * 1024 * 1024  # PostgreSQL's default; a cluster's own size is read from it


def repository_checks(br: PgBackRestHook, *, target: str, max_age_hours: dict[str, float] | None = None,
                      repo_max_age_hours: dict[int, dict[str, float]] | None = None,
                      expected_repos: set[int] | None = None, now: datetime | None = None,
                      wal_segment_bytes: int = WAL_SEGMENT_BYTES) -> list[CheckResult]:
    """`pgbackrest check` (archive round trip to every repo), `info` against the thresholds, and
    the continuity of every repo's WAL archive (no missing segment since its oldest backup).

    ``max_age_hours`` per backup type (e.g. ``{"full": 192, "diff": 36}``); without it the backup
    age is not judged, only the stanza, repo and backup status.
    """
    from drdrill.hooks.pgbackrest_models import evaluate_archive_continuity, evaluate_info

    def run() -> list[CheckResult]:
        out: list[CheckResult] = []
        res = br.check()
        if res.returncode == 0:
            out.append(CheckResult("archive_round_trip", Status.PASS,
                                   f"pgbackrest check pushed and found WAL in every repo ({res.seconds:.1f}s)",
                                   target, round(res.seconds, 2)))
        else:
            tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
            out.append(CheckResult("archive_round_trip", Status.FAIL,
                                   f"pgbackrest check exit code {res.returncode}: {' | '.join(tail)}. "
                                   f"WAL is not reaching every repo: check archive_command and repo access.",
                                   target, res.returncode, 0))
        stanzas = [s for s in br.info() if s.name == br.stanza]
        if not stanzas:
            return [*out, CheckResult("stanza_status", Status.FAIL,
                                      f"stanza {br.stanza!r} not found in pgbackrest info", target)]
        seen = set(stanzas[0].repo_keys())
        if expected_repos and expected_repos - seen:
            out.append(CheckResult("repos_configured", Status.FAIL,
                                   f"the estate lists repo {sorted(expected_repos)} but pgBackRest reports "
                                   f"{sorted(seen)}; fix the stanza's pgbackrest.conf or the estate", target))
        out += evaluate_info(stanzas[0], max_age_hours=dict(max_age_hours or {}), now=now or datetime.now(UTC),
                             target=target, repo_max_age_hours=repo_max_age_hours or {})
        for key in sorted(seen):  # one repo's listing failing must not hide another's gap
            out += guarded("wal_archive_continuity", f"{target}/repo{key}", lambda key=key: [
                evaluate_archive_continuity(stanzas[0], key, br.archive_files(key),
                                            segments_per_log=0x100000000 // wal_segment_bytes, target=target,
                                            now=now or datetime.now(UTC))])
        return out

    return guarded("backup_repository", target, run)


def backup_repository(cluster: Cluster, now: datetime | None = None) -> list[CheckResult]:
    """The repository checks of an estate cluster, with its thresholds."""
    per_repo = {r.index: dict(r.max_backup_age_hours) for r in cluster.pgbackrest.repos
                if r.max_backup_age_hours is not None}
    return repository_checks(PgBackRestHook.for_cluster(cluster), target=cluster.name,
                             max_age_hours=dict(cluster.targets.max_backup_age_hours), repo_max_age_hours=per_repo,
                             expected_repos={r.index for r in cluster.pgbackrest.repos}, now=now,
                             wal_segment_bytes=wal_segment_bytes(cluster))


def wal_segment_bytes(cluster: Cluster) -> int:
    """The primary's WAL segment size (initdb --wal-segsize); the default when it cannot be asked."""
    p = cluster.primary
    try:
        with pg.connect(cluster, p.host, p.port) as c:
            return int(pg.query_one(c, "SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'")[0])
    except (DrillError, psycopg.Error, OSError) as e:
        log.warning("could not read wal_segment_size from %s (%s); assuming %d bytes", p.name, e, WAL_SEGMENT_BYTES)
        return WAL_SEGMENT_BYTES


def verify_repos(br: PgBackRestHook, repos: list[int], *, target: str) -> list[CheckResult]:
    """`pgbackrest verify` per repo, parsed from its text (it exits 0 on corruption)."""
    from drdrill.hooks.pgbackrest_models import evaluate_verify

    out: list[CheckResult] = []
    for repo in repos:
        where = f"{target}/repo{repo}"

        def run(repo=repo, where=where) -> list[CheckResult]:
            report, res = br.verify(repo)
            if res.returncode != 0 and report.ok:
                return [CheckResult("backup_integrity", Status.FAIL,
                                    f"pgbackrest verify exit code {res.returncode}: "
                                    f"{(res.stderr or res.stdout).strip()[-300:]}", where)]
            return evaluate_verify(report, target=target)

        out += guarded("backup_integrity", where, run)
    return out


def backup_integrity(cluster: Cluster) -> list[CheckResult]:
    """`pgbackrest verify` of every repo of an estate cluster."""
    return verify_repos(PgBackRestHook.for_cluster(cluster), [r.index for r in cluster.pgbackrest.repos],
                        target=cluster.name)


ARCHIVER_SQL = """
SELECT archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal,
       last_failed_time, extract(epoch FROM now() - last_archived_time),
       (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%%.ready'),
       current_setting('archive_mode'), extract(epoch FROM current_setting('archive_timeout')::interval)
FROM pg_stat_archiver
"""


def wal_archiving(cluster: Cluster) -> list[CheckResult]:
    """WAL archiving health on the primary, against the RPO target."""
    node = cluster.primary
    target = f"{cluster.name}/{node.name}"
    t = cluster.targets

    def run() -> list[CheckResult]:
        with pg.connect(cluster, node.host, node.port) as c:
            (count, last_wal, last_time, failed, failed_wal, failed_time, age, ready, mode,
             timeout) = pg.query_one(c, ARCHIVER_SQL)
        out: list[CheckResult] = []
        if mode == "off":
            return [CheckResult("archive_mode", Status.FAIL, "archive_mode is off on the primary: no WAL reaches "
                                "the repos and point-in-time recovery is impossible", target, mode, "on")]
        # Idle databases archive nothing for hours; that is not lag. Lag is time since archiving
        # last progressed while segments wait (.ready files).
        lag = 0.0 if ready == 0 else (float(age) if age is not None else None)
        lag_check = at_most("wal_archive_lag", lag, min(t.max_wal_archive_lag_seconds, t.rpo_minutes * 60),
                            unit="s", target=target,
                            what=f"WAL archive lag ({ready} segment(s) waiting, last archived {last_wal})",
                            fix="Check archive_command errors in the PostgreSQL log and repo reachability.")
        out.append(replace(lag_check, details={
            "last_archived_wal": last_wal, "last_archived_time": str(last_time),
            "last_archived_age_seconds": round(float(age), 1) if age is not None else None,
            "archived_count": count, "rpo_seconds": t.rpo_minutes * 60}))
        failing_now = failed_time is not None and (last_time is None or failed_time > last_time)
        out.append(CheckResult(
            "archive_failures", Status.FAIL if failing_now and failed > t.max_archive_failures else Status.PASS,
            (f"archiving is failing: last failure {failed_wal} at {failed_time} is newer than the last success "
             f"{last_wal}; see the PostgreSQL log for archive_command errors") if failing_now else
            f"no archive failure since the last success ({failed} failure(s) in total)",
            target, failed, t.max_archive_failures))
        out.append(at_most("wal_ready_files", int(ready), t.max_ready_wal_files, target=target,
                           what="WAL segments waiting to be archived",
                           fix="Archiving is falling behind: check repo throughput or archive-async."))
        rpo_s = t.rpo_minutes * 60
        out.append(at_most("archive_timeout_within_rpo", float(timeout or 0) or None, rpo_s, unit="s",
                           target=target, what="archive_timeout (longest a partial WAL segment waits)",
                           fix="Set archive_timeout below the RPO target."))
        return out

    return guarded("wal_archiving", target, run)


STANDBY_SQL = """
SELECT pg_is_in_recovery(), pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(),
       (SELECT status FROM pg_stat_wal_receiver LIMIT 1)
"""

PRIMARY_REPL_SQL = """
SELECT application_name, state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint,
       extract(epoch FROM coalesce(replay_lag, interval '0'))
FROM pg_stat_replication
"""


def replication(cluster: Cluster) -> list[CheckResult]:
    """Each standby reachable, in recovery, streaming, and its lag in bytes and time under target."""
    primary = cluster.primary
    t = cluster.targets
    out: list[CheckResult] = []
    for node in cluster.standbys:
        target = f"{cluster.name}/{node.name}"

        def run(node=node, target=target) -> list[CheckResult]:
            with pg.connect(cluster, node.host, node.port) as c:
                in_rec, recv_lsn, replay_lsn, wal_status = pg.query_one(c, STANDBY_SQL)
            res = [CheckResult("standby_in_recovery", Status.PASS if in_rec else Status.FAIL,
                               "standby is in recovery" if in_rec else
                               "standby is NOT in recovery: it was promoted or is a second primary "
                               "(split brain risk); update the estate's topology", target, in_rec, True)]
            res.append(CheckResult("standby_streaming", Status.PASS if wal_status == "streaming" else Status.FAIL,
                                   f"WAL receiver {wal_status or 'not running'}" +
                                   ("" if wal_status == "streaming" else
                                    ": the standby is not streaming from the primary; check primary_conninfo, "
                                    "the replication slot and pg_hba"), target, wal_status, "streaming"))
            with pg.connect(cluster, primary.host, primary.port) as c:
                rows = pg.query(c, PRIMARY_REPL_SQL)
            mine = [r for r in rows if r[0] == node.name] or (rows if len(rows) == 1 == len(cluster.standbys)
                                                              else [])
            if not mine:
                res.append(CheckResult("replication_lag_bytes", Status.FAIL,
                                       f"the primary has no replication connection from {node.name} "
                                       f"(connections: {[r[0] for r in rows]})", target))
                return res
            _, _, lag_bytes, lag_s = mine[0]
            res.append(at_most("replication_lag_bytes", int(lag_bytes or 0), t.max_replication_lag_bytes,
                               unit=" B", target=target, what="replication lag",
                               fix="The standby cannot keep up: check its I/O and network."))
            res.append(at_most("replication_lag_seconds", float(lag_s or 0), t.max_replication_lag_seconds,
                               unit="s", target=target, what="replay lag"))
            return res

        out += guarded("replication", target, run)
    if not cluster.standbys:
        out.append(CheckResult("replication", Status.SKIP, "no standby in the estate", cluster.name))
    return out
