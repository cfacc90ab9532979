"""pgBackRest operators: repository check and backup verification, for any stanza.

Both return every check as a dict (name, status, message, target, value, threshold) and fail
the task naming each failed check, unless ``fail_on_problem=False`` (a drill whose journal
decides, like the daily verification, which lists every failure at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drdrill.operators.base import DrillOperator, estate_cluster


def _hook(cluster: str | None, pgbackrest_conn_id: str | None, stanza: str | None) -> tuple[Any, Any]:
    from drdrill.hooks.pgbackrest import PgBackRestHook

    if cluster:
        c = estate_cluster(cluster)
        return PgBackRestHook.for_cluster(c), c
    return PgBackRestHook(pgbackrest_conn_id, stanza=stanza), None


def _configured_repos(br: Any) -> list[int]:
    """The stanza's repos from pgbackrest.conf; from `info` (which touches every repo) if it cannot be read here."""
    try:
        return br.configured_repos()
    except Exception as e:  # noqa: BLE001 - whatever keeps it from being read here: ask pgBackRest instead
        br.log.warning("could not read pgbackrest.conf here (%s): asking pgbackrest info for the repos", e)
        return sorted({k for s in br.info() if s.name == br.stanza for k in s.repo_keys()})


def _finish(results: list[Any], fail: bool, what: str) -> list[dict[str, Any]]:
    from drdrill.core.checks import summarize
    from drdrill.core.errors import DrillFailed

    dicts = [r.to_dict() for r in results]
    failed = [r for r in results if r.failed]
    if failed and fail:
        raise DrillFailed(f"{what}: {len(failed)} failed check(s)\n{summarize(results)}", results=dicts)
    return dicts


class PgBackRestCheckOperator(DrillOperator):
    """`pgbackrest check` (WAL archive round trip to every repo), `info` against thresholds, and
    every repo's WAL archive checked for missing segments since its oldest backup.

    Each remote repo's endpoint is asked first (a few seconds, no pgBackRest): a repo that does
    not answer fails at once and gets no pgBackRest command, which would retry for minutes.

    :param stanza: the stanza (or ``stanza`` in the connection's extra)
    :param pgbackrest_conn_id: Airflow connection of type ``pgbackrest`` (run-as user, stanza, config)
    :param cluster: an estate cluster instead: its stanza, config, current primary and thresholds
    :param max_backup_age_hours: newest backup's maximum age per type, e.g. ``{"full": 192, "diff": 36}``
    :param wal_segment_bytes: the cluster's WAL segment size (``initdb --wal-segsize``), default 16 MiB
    :param probe_timeout_seconds: how long a remote repo's endpoint may take to answer (0: not asked);
        with ``cluster``, each repo's ``probe_timeout_seconds`` in the estate
    :param fail_on_problem: fail the task when a check fails (default); else only return the checks

    Usage::

        PgBackRestCheckOperator(task_id="check", pgbackrest_conn_id="pgbackrest_default",
                                max_backup_age_hours={"full": 192, "diff": 36})
    """

    template_fields: Sequence[str] = ("stanza", "cluster", "pgbackrest_conn_id")

    def __init__(self, *, stanza: str | None = None, pgbackrest_conn_id: str | None = None,
                 cluster: str | None = None, max_backup_age_hours: dict[str, float] | None = None,
                 wal_segment_bytes: int = 16 * 1024 * 1024, probe_timeout_seconds: float = 3.0,
                 fail_on_problem: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stanza = stanza
        self.pgbackrest_conn_id = pgbackrest_conn_id
        self.cluster = cluster
        self.max_backup_age_hours = max_backup_age_hours
        self.wal_segment_bytes = wal_segment_bytes
        self.probe_timeout_seconds = probe_timeout_seconds
        self.fail_on_problem = fail_on_problem

    def run(self, context: Any) -> list[dict[str, Any]]:
        from drdrill.drills import daily

        br, c = _hook(self.cluster, self.pgbackrest_conn_id, self.stanza)
        results = (daily.backup_repository(c) if c is not None else
                   daily.repository_checks(br, target=br.stanza, max_age_hours=self.max_backup_age_hours,
                                           wal_segment_bytes=int(self.wal_segment_bytes),
                                           probe_timeouts=float(self.probe_timeout_seconds)))
        return _finish(results, self.fail_on_problem, f"pgbackrest check of stanza {br.stanza}")


class PgBackRestVerifyOperator(DrillOperator):
    """`pgbackrest verify` per repo, judged from its report (it exits 0 even on corruption).

    A remote repo whose endpoint does not answer within a few seconds is not verified: it fails at
    once with the reason.

    :param repos: repo numbers to verify (default: every repo the estate or pgbackrest.conf lists)
    :param stanza: the stanza (or ``stanza`` in the connection's extra)
    :param pgbackrest_conn_id: Airflow connection of type ``pgbackrest``
    :param cluster: an estate cluster instead of stanza and connection
    :param probe_timeout_seconds: how long a remote repo's endpoint may take to answer (0: not asked);
        with ``cluster``, each repo's ``probe_timeout_seconds`` in the estate
    :param fail_on_problem: fail the task when a repo holds a damaged backup or WAL (default)

    Usage::

        PgBackRestVerifyOperator(task_id="verify", pgbackrest_conn_id="pgbackrest_default", repos=[1, 2])
    """

    template_fields: Sequence[str] = ("stanza", "cluster", "pgbackrest_conn_id", "repos")

    def __init__(self, *, repos: list[int] | None = None, stanza: str | None = None,
                 pgbackrest_conn_id: str | None = None, cluster: str | None = None, probe_timeout_seconds: float = 3.0,
                 fail_on_problem: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.repos = repos
        self.stanza = stanza
        self.pgbackrest_conn_id = pgbackrest_conn_id
        self.cluster = cluster
        self.probe_timeout_seconds = probe_timeout_seconds
        self.fail_on_problem = fail_on_problem

    def run(self, context: Any) -> list[dict[str, Any]]:
        from drdrill.drills import daily

        br, c = _hook(self.cluster, self.pgbackrest_conn_id, self.stanza)
        repos = [int(r) for r in self.repos] if self.repos else (
            [r.index for r in c.pgbackrest.repos] if c is not None else _configured_repos(br))
        timeouts = daily.probe_timeouts(c) if c is not None else float(self.probe_timeout_seconds)
        results = daily.verify_repos(br, repos, target=c.name if c is not None else br.stanza, probe_timeouts=timeouts)
        return _finish(results, self.fail_on_problem, f"pgbackrest verify of stanza {br.stanza}")
