"""The daily verification's backups-verified Asset: which clusters get an event (drdrill.drills.daily), its URI."""

from __future__ import annotations

from drdrill.core.checks import CheckResult, Status


def _checks(cluster: str, failed: str | None = None) -> list[CheckResult]:
    out = [CheckResult(name, Status.FAIL if name == failed else Status.PASS, "m", f"{cluster}/{target}")
           for name, target in (("verify", "repo1"), ("backup_age.full", "repo2"), ("replication", "pg2"))]
    return out + [CheckResult("scorecard", Status.PASS, "3-2-1-1-0", f"{cluster}/scorecard")]


def _steps(n: int, crashed: int | None = None) -> list[dict]:
    steps = [{"task_id": t, "map_index": i, "status": "failed" if (i == crashed and t == "replication") else "success"}
             for t in ("backup_repository", "backup_integrity", "wal_archiving", "replication") for i in range(n)]
    return steps + [{"task_id": "scorecard", "map_index": -1, "status": "success"}]


def test_only_clusters_whose_every_check_passed_are_verified():
    from drdrill.drills.daily import verified_clusters

    results = _checks("main") + _checks("billing", failed="verify") + _checks("main2")
    assert verified_clusters(["main", "billing", "main2"], results, _steps(3)) == ["main", "main2"]
    # "main" is not "main2": a failure of main2 is not main's.
    results = _checks("main") + _checks("main2", failed="replication")
    assert verified_clusters(["main", "main2"], results, _steps(2)) == ["main"]


def test_a_crashed_check_task_or_a_missing_scorecard_verifies_nothing_for_that_cluster():
    from drdrill.drills.daily import verified_clusters

    results = _checks("main") + _checks("billing")
    assert verified_clusters(["main", "billing"], results, _steps(2, crashed=1)) == ["main"]
    no_card = [r for r in results if not (r.name == "scorecard" and r.target == "billing/scorecard")]
    assert verified_clusters(["main", "billing"], no_card, _steps(2)) == ["main"]
    failed_card = _steps(2)[:-1] + [{"task_id": "scorecard", "map_index": -1, "status": "failed"}]
    assert verified_clusters(["main", "billing"], results, failed_card) == []
    assert verified_clusters([], [], _steps(0)) == []


def test_the_asset_uri_names_estate_and_cluster_and_keeps_its_x_scheme():
    from drdrill.assets import BACKUPS_VERIFIED_ALIAS, backups_verified, backups_verified_alias

    a = backups_verified("prod eu", "main")
    assert a.uri == "x-drdrill://prod%20eu/main/backups-verified" == a.name
    assert backups_verified_alias().name == BACKUPS_VERIFIED_ALIAS == "drdrill-backups-verified"
