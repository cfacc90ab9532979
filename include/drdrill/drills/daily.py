"""Checks of the daily verification, one function per check group, for one cluster.

Each returns a list of `CheckResult`; a problem reaching a server or running pgBackRest is a
failed check with the reason, never an exception, so the drill lists every failure at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime

import psycopg

from drdrill.core.checks import CheckResult, Status, at_most
from drdrill.core.errors import CommandError, DrillError
from drdrill.core.estate import Cluster, PgBackRest, Repo
from drdrill.hooks import postgres as pg
from drdrill.hooks.pgbackrest import PgBackRestHook

log = logging.getLogger(__name__)


def guarded(name: str, target: str, fn: Callable[[], list[CheckResult]]) -> list[CheckResult]:
    """Run a check group; an error reaching the system becomes one failed check naming it.

    A command killed for taking too long is named as such (``pgbackrest info --repo=2 did not
    finish within 120 s``): that is what a hung storage or database looks like.
    """
    try:
        results = fn()
    except (DrillError, psycopg.Error, OSError) as e:
        if isinstance(e, CommandError) and e.timed_out_after is not None:
            cmd = PgBackRestHook.command_line(e.argv) if e.argv[:1] == ["pgbackrest"] else " ".join(e.argv)
            msg = (f"{cmd} did not finish within {e.timed_out_after:g} s and was killed: it hung (pgBackRest "
                   f"retries storage it cannot reach for minutes). Check the repo's endpoint and the network path "
                   f"from the database host, or raise pgbackrest.command_timeout_seconds if the repo is only slow")
            results = [CheckResult(name, Status.FAIL, msg, target, details={"hung": cmd,
                                                                            "timeout_seconds": e.timed_out_after})]
        else:
            msg = str(e).strip() or type(e).__name__
            results = [CheckResult(name, Status.FAIL, f"could not run: {msg}", target)]
    for r in results:
        (log.warning if r.failed else log.info)("%s", r.line())
    return results


WAL_SEGMENT_BYTES = 16 * 1024 * 1024  # PostgreSQL's default; a cluster's own size is read from it
PROBE_TIMEOUT = Repo.model_fields["probe_timeout_seconds"].default  # for repos the estate does not list
COMMAND_TIMEOUT = PgBackRest.model_fields["command_timeout_seconds"].default
_KIND = {"s3": "S3", "gcs": "GCS", "azure": "Azure", "sftp": "SFTP"}


def probe_repos(br: PgBackRestHook, repos: list[int], timeouts: dict[int, float] | float | None, *,
                target: str) -> dict[int, CheckResult]:
    """``repo_reachable`` for every remote repo of ``repos``: does its endpoint answer at all?

    The endpoints are asked at once (one thread each), each within its timeout (``timeouts``: per
    repo, or one for all; default `PROBE_TIMEOUT`; 0 = not asked). A FAIL means the endpoint did not answer and no
    pgBackRest command should be run on that repo. Local repos (posix, cifs) get no result. When
    pgbackrest.conf cannot be read here, every repo is SKIP and its commands run as before.
    """
    per_repo = timeouts if isinstance(timeouts, dict) else {}
    default = PROBE_TIMEOUT if timeouts is None or isinstance(timeouts, dict) else float(timeouts)
    try:
        storages = {r: br.repo_storage(r) for r in repos}
    except (DrillError, OSError) as e:
        why = str(e).strip() or type(e).__name__
        return {r: CheckResult("repo_reachable", Status.SKIP, f"not probed: could not read pgbackrest.conf here "
                               f"({why}); a dead endpoint is then found only by the commands' timeouts",
                               f"{target}/repo{r}") for r in repos}
    out: dict[int, CheckResult] = {}
    asked = {}
    for r, st in storages.items():
        if not st.remote:
            continue
        timeout = float(per_repo.get(r, default))
        if timeout <= 0:
            out[r] = CheckResult("repo_reachable", Status.SKIP, f"repo{r}: {_KIND[st.type]} endpoint {st.endpoint} "
                                 "not probed (probe_timeout_seconds is 0)", f"{target}/repo{r}")
        else:
            asked[r] = timeout

    def ask(r: int) -> CheckResult:
        where, kind = f"{target}/repo{r}", _KIND[storages[r].type]
        try:
            p = br.probe(r, timeout=asked[r])
        except Exception as e:  # noqa: BLE001 - a probe that cannot be asked must not hide the repo: its commands run
            return CheckResult("repo_reachable", Status.SKIP, f"repo{r}: {kind} endpoint {storages[r].endpoint} not "
                               f"probed: {type(e).__name__}: {e}", where)
        if p.answered:
            return CheckResult("repo_reachable", Status.PASS, f"repo{r}: {kind} endpoint {p.endpoint} answered in "
                               f"{p.seconds:.2f} s ({p.detail})", where, round(p.seconds, 3), p.timeout,
                               {"probe": p.to_dict()})
        return CheckResult("repo_reachable", Status.FAIL, f"repo{r}: {kind} endpoint {p.endpoint} did not answer "
                           f"within {p.timeout:g} s ({p.detail})", where, None, p.timeout, {"probe": p.to_dict()})

    if asked:
        with ThreadPoolExecutor(max_workers=len(asked), thread_name_prefix="probe") as pool:
            out.update(zip(asked, pool.map(ask, asked), strict=True))
    return out


def _repos(keys: list[int]) -> str:
    return ", ".join(f"repo{k}" for k in keys)


def _not_run(res: CheckResult, repo: int, commands: list[str], name: str | None = None,
             prefix: str = "") -> CheckResult:
    """A failed probe as the check of a group: the reason, then what was not run on the repo and why."""
    return replace(res, name=name or res.name, message=(
        f"{prefix}{res.message}. Not run on repo{repo}: {', '.join(commands)} (pgBackRest retries an unreachable "
        f"store for minutes). Check the endpoint, its DNS and the network path from the database host, and the "
        f"object store's status"), details={**res.details, "not_run": commands})


def repository_checks(br: PgBackRestHook, *, target: str, max_age_hours: dict[str, float] | None = None,
                      repo_max_age_hours: dict[int, dict[str, float]] | None = None,
                      expected_repos: set[int] | None = None, now: datetime | None = None,
                      wal_segment_bytes: int = WAL_SEGMENT_BYTES,
                      probe_timeouts: dict[int, float] | float | None = None,
                      command_timeout: float = COMMAND_TIMEOUT,
                      pitr_window_hours: dict[int, float | None] | None = None) -> list[CheckResult]:
    """Each remote repo's endpoint asked first (`probe_repos`), then `pgbackrest check` (archive round
    trip to every repo), `info` per repo against the thresholds, the continuity of every repo's
    WAL archive (no missing segment since its oldest backup), and, per repo in ``pitr_window_hours``,
    how far back it can recover any second (`evaluate_recoverable_window`).

    ``max_age_hours`` per backup type (e.g. ``{"full": 192, "diff": 36}``); without it the backup
    age is not judged, only the stanza, repo and backup status. Every command on a repo is scoped
    with ``--repo=N`` and killed after ``command_timeout`` seconds, so one hung repo neither delays
    nor hides another's checks; a repo whose endpoint did not answer gets no command at all.
    """
    from drdrill.hooks.pgbackrest_models import (
        evaluate_archive_continuity,
        evaluate_info,
        evaluate_recoverable_window,
        merge_info,
    )

    def run() -> list[CheckResult]:
        out: list[CheckResult] = []
        try:
            configured: list[int] | None = br.configured_repos()
        except (DrillError, OSError) as e:
            log.warning("could not read pgbackrest.conf here (%s): taking the repos from the estate or info", e)
            configured = None
        if configured is not None and expected_repos and expected_repos - set(configured):
            out.append(CheckResult("repos_configured", Status.FAIL,
                                   f"the estate lists repo {sorted(expected_repos)} but pgbackrest.conf "
                                   f"({br.config or 'default'}) defines {configured}; fix the stanza's "
                                   f"pgbackrest.conf or the estate", target))
        repos = configured or sorted(expected_repos or set()) or sorted(
            {k for s in br.info(timeout=command_timeout) if s.name == br.stanza for k in s.repo_keys()})
        reach = probe_repos(br, repos, probe_timeouts, target=target)
        dead = sorted(r for r, res in reach.items() if res.failed)
        for r, res in sorted(reach.items()):
            out.append(_not_run(res, r, ["check", f"info --repo={r}", f"repo-ls --repo={r}"]) if res.failed
                       else res)
        out += guarded("archive_round_trip", target, lambda: [_round_trip(br, dead, target, command_timeout)])

        stanzas = {}
        for r in (r for r in repos if r not in dead):
            def read(r: int = r) -> list[CheckResult]:
                found = [s for s in br.info(r, timeout=command_timeout) if s.name == br.stanza]
                if not found:
                    return [CheckResult("stanza_status", Status.FAIL, f"stanza {br.stanza!r} not found in "
                                        f"pgbackrest info --repo={r}", f"{target}/repo{r}")]
                stanzas[r] = found[0]
                return []
            out += guarded("repo_status", f"{target}/repo{r}", read)
        if not stanzas:
            return out
        info = merge_info(list(stanzas.values()))
        checked = evaluate_info(info, max_age_hours=dict(max_age_hours or {}), now=now or datetime.now(UTC),
                                target=target, repo_max_age_hours=repo_max_age_hours or {})
        unread = [r for r in repos if r not in stanzas]
        if unread:  # the stanza status covers only the repos that were read: say so
            note = f" (from {_repos(sorted(stanzas))} only; {_repos(unread)} not read)"
            checked = [replace(c, message=c.message + note) if c.name == "stanza_status" else c for c in checked]
        out += checked
        windows = pitr_window_hours or {}
        for key in sorted(stanzas):  # one repo's listing failing must not hide another's gap
            def archive(key: int = key) -> list[CheckResult]:
                files = br.archive_files(key, timeout=command_timeout)
                kw = {"segments_per_log": 0x100000000 // wal_segment_bytes, "target": target,
                      "now": now or datetime.now(UTC)}
                return [evaluate_archive_continuity(info, key, files, **kw)] + (
                    [evaluate_recoverable_window(info, key, files, required_hours=windows[key], **kw)]
                    if key in windows else [])
            out += guarded("wal_archive_continuity", f"{target}/repo{key}", archive)
        return out

    return guarded("backup_repository", target, run)


def _round_trip(br: PgBackRestHook, dead: list[int], target: str, timeout: float) -> CheckResult:
    """`pgbackrest check`: WAL switched, pushed and found in every repo. Not run while a repo is dead:
    pgBackRest 2.45's check has no ``--repo`` and would wait on it for minutes."""
    if dead:
        return CheckResult(
            "archive_round_trip", Status.FAIL,
            f"not run: pgbackrest check waits on every repo (it has no --repo) and {_repos(dead)} did not answer "
            f"(see repo_reachable). archive_command pushes each WAL segment to every repo too: while a repo does not "
            f"answer, archive-push fails after minutes of retries, PostgreSQL retries the same segment, and no repo "
            f"receives newer WAL; see the wal_archiving checks on the primary", target, None, 0,
            {"not_run": ["check"], "unreachable_repos": dead})
    res = br.check(timeout=timeout)
    if res.returncode == 0:
        return CheckResult("archive_round_trip", Status.PASS,
                           f"pgbackrest check pushed and found WAL in every repo ({res.seconds:.1f}s)",
                           target, round(res.seconds, 2))
    tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
    return CheckResult("archive_round_trip", Status.FAIL,
                       f"pgbackrest check exit code {res.returncode}: {' | '.join(tail)}. "
                       f"WAL is not reaching every repo: check archive_command and repo access.",
                       target, res.returncode, 0)


def backup_repository(cluster: Cluster, now: datetime | None = None) -> list[CheckResult]:
    """The repository checks of an estate cluster, with its thresholds."""
    per_repo = {r.index: dict(r.max_backup_age_hours) for r in cluster.pgbackrest.repos
                if r.max_backup_age_hours is not None}
    return repository_checks(PgBackRestHook.for_cluster(cluster), target=cluster.name,
                             max_age_hours=dict(cluster.targets.max_backup_age_hours), repo_max_age_hours=per_repo,
                             expected_repos={r.index for r in cluster.pgbackrest.repos}, now=now,
                             wal_segment_bytes=wal_segment_bytes(cluster), probe_timeouts=probe_timeouts(cluster),
                             command_timeout=cluster.pgbackrest.command_timeout_seconds,
                             pitr_window_hours=pitr_windows(cluster))


def pitr_windows(cluster: Cluster) -> dict[int, float | None]:
    """The recoverable window every repo must hold, in hours (the repo's own, else the cluster's target)."""
    return {r.index: r.pitr_window_hours or cluster.targets.pitr_window_hours for r in cluster.pgbackrest.repos}


def probe_timeouts(cluster: Cluster) -> dict[int, float]:
    return {r.index: r.probe_timeout_seconds for r in cluster.pgbackrest.repos}


def wal_segment_bytes(cluster: Cluster) -> int:
    """The primary's WAL segment size (initdb --wal-segsize); the default when it cannot be asked."""
    p = cluster.primary
    try:
        with pg.connect(cluster, p.host, p.port) as c:
            return int(pg.query_one(c, "SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'")[0])
    except (DrillError, psycopg.Error, OSError) as e:
        log.warning("could not read wal_segment_size from %s (%s); assuming %d bytes", p.name, e, WAL_SEGMENT_BYTES)
        return WAL_SEGMENT_BYTES


def verify_repos(br: PgBackRestHook, repos: list[int], *, target: str,
                 probe_timeouts: dict[int, float] | float | None = None) -> list[CheckResult]:
    """`pgbackrest verify` per repo, parsed from its text (it exits 0 on corruption).

    A remote repo whose endpoint does not answer (`probe_repos`) is not verified: its check fails
    at once with the reason (verify alone would take minutes and then report "No usable backup.info
    file", as if the repo were damaged).
    """
    from drdrill.hooks.pgbackrest_models import evaluate_verify

    reach = probe_repos(br, repos, probe_timeouts, target=target)
    out: list[CheckResult] = []
    for repo in repos:
        where = f"{target}/repo{repo}"
        if repo in reach and reach[repo].failed:
            out.append(_not_run(reach[repo], repo, [f"verify --repo={repo}"], name="verify", prefix="not verified: "))
            log.warning("%s", out[-1].line())
            continue

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
                        target=cluster.name, probe_timeouts=probe_timeouts(cluster))


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


def verified_clusters(clusters: list[str], results: list[CheckResult], steps: list[dict]) -> list[str]:
    """The clusters of this run whose backups are verified: the scorecard ran and passed for the cluster,
    no check of it failed (a result whose target is the cluster or under it), and none of its check tasks
    failed (the mapped tasks' step records, one per cluster in ``clusters``' order)."""
    if any(s.get("task_id") == "scorecard" and s.get("status") != "success" for s in steps):
        return []
    out = []
    for i, name in enumerate(clusters):
        mine = [r for r in results if r.target == name or r.target.startswith(name + "/")]
        crashed = [s for s in steps if s.get("map_index") == i and s.get("status") != "success"]
        card = [r for r in mine if r.name == "scorecard"]
        if card and not crashed and not any(r.failed for r in mine):
            out.append(name)
    return out
