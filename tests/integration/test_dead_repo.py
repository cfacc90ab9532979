"""A repo whose S3 endpoint is dead gets a verdict at once, and the other repo's checks are untouched.

The real pgBackRest and the real sandbox, with repo2 pointed (in a copy of pgbackrest.conf) at a
closed port (``refused``) or at a server that accepts TCP and never answers (``hung``,
`drdrill.sandbox.faults.Blackhole`). Every pgBackRest command goes through a `LocalRunner` that
records its argv, so the tests show what ran and what did not; no test asserts a duration.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from drdrill.core.checks import Status
from drdrill.core.runner import LocalRunner

pytestmark = pytest.mark.sandbox


class RecordingRunner(LocalRunner):
    """The local runner, keeping every argv it ran."""

    def __init__(self, run_as: str | None) -> None:
        super().__init__(run_as)
        self.ran: list[list[str]] = []

    def run(self, argv, **kwargs):
        self.ran.append(list(argv))
        return super().run(argv, **kwargs)


@contextmanager
def repo2_dead(estate, mode: str) -> Iterator[tuple[object, int, object]]:
    """(cluster whose pgbackrest.conf points repo2 at a dead endpoint, its port, the blackhole or None)."""
    from drdrill.sandbox import faults

    cluster = estate.cluster("main")
    conf = cluster.pgbackrest.config.with_name(f"test-dead-repo2-{mode}.conf")
    with faults.dead_endpoint(mode) as (port, hole):
        faults.conf_with_repo_port(cluster, 2, port, conf)
        try:
            yield cluster.model_copy(update={"pgbackrest": cluster.pgbackrest.model_copy(update={"config": conf})}), \
                port, hole
        finally:
            conf.unlink(missing_ok=True)


def _checks(cluster, runner, *, probe_timeouts=None, command_timeout=120.0, verify=True):
    from drdrill.drills import daily
    from drdrill.hooks.pgbackrest import PgBackRestHook

    br = PgBackRestHook.for_cluster(cluster, runner=runner)
    results = daily.repository_checks(
        br, target=cluster.name, max_age_hours=dict(cluster.targets.max_backup_age_hours),
        expected_repos={1, 2}, wal_segment_bytes=daily.wal_segment_bytes(cluster),
        probe_timeouts=probe_timeouts if probe_timeouts is not None else daily.probe_timeouts(cluster),
        command_timeout=command_timeout)
    if verify:
        results += daily.verify_repos(br, [1, 2], target=cluster.name, probe_timeouts=probe_timeouts)
    return results


def _pgbackrest_commands(runner) -> list[list[str]]:
    return [a for a in runner.ran if a and a[0] == "pgbackrest"]


@pytest.mark.parametrize("mode", ["refused", "hung"])
def test_a_dead_repo2_endpoint_fails_at_once_and_repo1_is_checked_in_full(estate, sandbox, mode):
    runner = RecordingRunner("postgres")
    with repo2_dead(estate, mode) as (cluster, port, hole):
        results = _checks(cluster, runner)
        accepted = hole.accepted if hole else None

    failed = {(r.name, r.target) for r in results if r.failed}
    assert failed == {("repo_reachable", "main/repo2"), ("archive_round_trip", "main"), ("verify", "main/repo2")}, \
        [r.line() for r in results if r.failed]
    reach = next(r for r in results if r.name == "repo_reachable")
    assert f"repo2: S3 endpoint https://localhost:{port} did not answer within 3 s" in reach.message
    assert ("connection refused" if mode == "refused" else "accepted the connection but did not answer") \
        in reach.message
    assert reach.details["not_run"] == ["check", "info --repo=2", "repo-ls --repo=2"]
    assert reach.details["probe"]["answered"] is False and reach.details["probe"]["timeout"] == 3
    integrity = next(r for r in results if r.name == "verify" and r.target == "main/repo2")
    assert integrity.message.startswith("not verified: repo2: S3 endpoint") and \
        integrity.details["not_run"] == ["verify --repo=2"]
    round_trip = next(r for r in results if r.name == "archive_round_trip")
    assert "not run" in round_trip.message and round_trip.details["unreachable_repos"] == [2]

    # repo1: every check ran and passed
    repo1 = {r.name: r.status for r in results if r.target == "main/repo1"}
    assert set(repo1) >= {"repo_status", "backup_age.full", "backup_age.diff", "backup_errors", "wal_archive_range",
                          "wal_archive_continuity", "verify"}, repo1
    assert set(repo1.values()) == {Status.PASS}
    stanza = next(r for r in results if r.name == "stanza_status")
    assert stanza.status is Status.PASS and "repo2 not read" in stanza.message
    # Nothing but the probes met repo2: no pgBackRest command on it, and no unscoped one (check, info)
    ran = _pgbackrest_commands(runner)
    assert ran and all("--repo=1" in a for a in ran), ran
    if hole is not None:
        assert accepted == 2  # one probe per check group, one connection each


def test_a_pgbackrest_command_that_hangs_is_killed_and_named(estate, sandbox):
    # The probe is off for repo2 (probe_timeout_seconds 0), so pgBackRest meets the hung endpoint:
    # each command on repo2 is killed after command_timeout and fails naming itself; repo1's pass.
    runner = RecordingRunner("postgres")
    with repo2_dead(estate, "hung") as (cluster, _port, hole):
        results = _checks(cluster, runner, probe_timeouts={2: 0}, command_timeout=3, verify=False)
        assert hole.accepted >= 1  # pgBackRest did connect this time

    by = {(r.name, r.target): r for r in results}
    assert by[("repo_reachable", "main/repo2")].status is Status.SKIP
    assert "probe_timeout_seconds is 0" in by[("repo_reachable", "main/repo2")].message
    check = by[("archive_round_trip", "main")]
    assert check.failed and check.message.startswith("pgbackrest check did not finish within 3 s and was killed")
    assert check.details == {"hung": "pgbackrest check", "timeout_seconds": 3}
    info = by[("repo_status", "main/repo2")]
    assert info.failed and info.details["hung"] == "pgbackrest info --output=json --repo=2"
    assert {(r.name, r.target) for r in results if r.failed} == {("archive_round_trip", "main"),
                                                                 ("repo_status", "main/repo2")}
    assert all(r.status is Status.PASS for r in results if r.target == "main/repo1")
    assert by[("wal_archive_continuity", "main/repo1")].status is Status.PASS


def test_a_live_s3_endpoint_answers_the_probe_and_every_command_is_scoped_to_one_repo(estate, sandbox):
    runner = RecordingRunner("postgres")
    results = _checks(estate.cluster("main"), runner, verify=False)
    assert not [r.line() for r in results if r.failed]
    reach = next(r for r in results if r.name == "repo_reachable")
    assert reach.status is Status.PASS and reach.target == "main/repo2"
    assert f"https://localhost:{estate.cluster('main').sandbox.s3_port} answered" in reach.message
    # The generic HTTPS probe (GCS, Azure) gets its answer from the same live TLS endpoint
    from drdrill.hooks.pgbackrest_storage import RepoStorage, probe

    https = probe(RepoStorage(2, "gcs", "localhost", estate.cluster("main").sandbox.s3_port), 3)
    assert https.answered and https.detail.startswith("HTTP "), https
    ran = [" ".join(a[a.index("--log-level-console=warn") + 1:]) for a in _pgbackrest_commands(runner)]
    assert ran == ["--pg1-port=55432 --pg1-path={} --pg1-socket-path={} check".format(
        estate.cluster("main").primary.data_dir, estate.cluster("main").primary.socket_dir),
        "--output=json --repo=1 info", "--output=json --repo=2 info",
        "--repo=1 --recurse --output=json repo-ls archive/main",
        "--repo=2 --recurse --output=json repo-ls archive/main"], ran
