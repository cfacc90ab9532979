"""The 3-2-1-1-0 scorecard from one daily run's check results, the estate's backups: section and the restore
test's journals; the score recorded in the state store and a drop failing the run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from drdrill.core.checks import CheckResult, Status
from drdrill.core.errors import EstateError
from drdrill.core.estate import parse_estate
from drdrill.core.paths import DEFAULT_ESTATE
from drdrill.drills.backups import scorecard

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)
LOCK = {"name": "repo2-bucket", "conn_id": "aws_sandbox", "bucket": "drdrill-sandbox-repo2",
        "copies": [{"cluster": "main", "repo": 2}]}
# In the primary's region "a"; its DR vault in "b".
VAULT = {"name": "prod", "region": "a", "vault": "production-vault",
         "dr_vault": {"name": "dr-vault", "region": "b"}, "copies": [{"cluster": "main"}]}


def _estate(tmp_path: Path, **backups):
    raw = yaml.safe_load(DEFAULT_ESTATE.read_text())
    raw["journal"] = {"location": f"file://{tmp_path}/journal"}
    raw["backups"] = {k: v for k, v in backups.items()}
    return parse_estate(yaml.safe_dump(raw), tmp_path / "estate.yaml")


def _restore_journal(tmp_path: Path, *, status="passed", age_days=3.0, run_id="scheduled__x", dry_run=False,
                     restore_step="success"):
    d = tmp_path / "journal" / "dr_monthly_restore_test"
    d.mkdir(parents=True, exist_ok=True)
    doc = {"drill": "dr_monthly_restore_test", "run_id": run_id, "cluster": "main", "status": status,
           "params": {"dry_run": dry_run}, "written_at": (NOW - timedelta(days=age_days)).isoformat(),
           "steps": [{"task_id": "preflight", "status": "success"}, {"task_id": "restore", "status": restore_step}]}
    (d / f"{run_id}.json").write_text(json.dumps(doc))


def _healthy(*extra: CheckResult) -> list[CheckResult]:
    out = []
    for repo in (1, 2):
        t = f"main/repo{repo}"
        out += [CheckResult("repo_status", Status.PASS, "ok", t),
                CheckResult("backup_age.full", Status.PASS, f"newest full of repo{repo} 2.0 h <= 192 h", t),
                CheckResult("backup_errors", Status.PASS, "no backup with errors", t),
                CheckResult("verify", Status.PASS, "clean", t)]
    return out + list(extra)


def _lock_ok() -> CheckResult:
    return CheckResult("object_lock_config", Status.PASS, "COMPLIANCE 30 days", "object_lock/repo2-bucket")


def _by_name(results):
    return {r.name: r for r in results}


def test_the_sandbox_shape_scores_3_2_1_1_0_with_the_evidence_of_each_digit(tmp_path):
    estate = _estate(tmp_path, object_lock=[LOCK])
    _restore_journal(tmp_path)
    r = _by_name(scorecard.score(estate.cluster("main"), estate, _healthy(_lock_ok()), now=NOW))
    assert r["scorecard"].status is Status.PASS and r["scorecard"].value == "3-2-1-1-0", r["scorecard"].message
    assert [c["name"] for c in r["scorecard.copies"].details["copies"]] == ["pg1 (live)", "repo1 (posix)",
                                                                            "repo2 (s3)"]
    assert r["scorecard.media"].details["media"] == ["disk", "object storage"]
    assert "repo2 (s3) in region b" in r["scorecard.offsite"].message
    assert "S3 Object Lock COMPLIANCE on bucket drdrill-sandbox-repo2" in r["scorecard.immutable"].message
    assert r["scorecard.errors"].details["last_restore_test"]["run_id"] == "scheduled__x"
    # recorded for the next run
    saved = json.loads((tmp_path / "journal" / "_state" / "scorecard" / "main.json").read_text())
    assert saved["score"] == "3-2-1-1-0"


def test_object_lock_failing_loses_the_immutable_digit_naming_why(tmp_path):
    estate = _estate(tmp_path, object_lock=[LOCK])
    _restore_journal(tmp_path)
    weak = CheckResult("object_lock_config", Status.FAIL, "mode GOVERNANCE is weaker than COMPLIANCE",
                       "object_lock/repo2-bucket")
    r = _by_name(scorecard.score(estate.cluster("main"), estate, _healthy(weak), now=NOW))
    assert r["scorecard.immutable"].failed and r["scorecard"].failed
    assert r["scorecard"].value == "3-2-1-0-0" and "short: immutable" in r["scorecard"].message
    assert "repo2 is not immutable" in r["scorecard.immutable"].message and "GOVERNANCE" in \
        r["scorecard.immutable"].message


def test_a_repo_without_a_fresh_backup_is_not_a_copy_and_the_offsite_digit_goes_with_it(tmp_path):
    estate = _estate(tmp_path, object_lock=[LOCK])
    _restore_journal(tmp_path)
    results = [r for r in _healthy(_lock_ok()) if not (r.target == "main/repo2" and r.name == "backup_age.full")]
    results.append(CheckResult("backup_age.full", Status.FAIL, "newest full of repo2 300 h > 192 h", "main/repo2"))
    r = _by_name(scorecard.score(estate.cluster("main"), estate, results, now=NOW))
    assert r["scorecard"].value == "2-1-0-0-0"
    assert r["scorecard.copies"].failed and "repo2: FAIL backup_age.full [main/repo2]" in r["scorecard.copies"].message
    assert r["scorecard.offsite"].failed


@pytest.mark.parametrize(("journal", "phrase"), [
    (None, "no restore test of main has run"),
    ({"status": "failed"}, "failed: file://"),
    ({"age_days": 40}, "is 40 days old, over 35 days"),
    ({"dry_run": True}, "no restore test of main has run"),  # a dry run proves nothing
    # refused before restoring (a bad param, the kill switch, a busy cluster): no evidence either way
    ({"status": "failed", "restore_step": "not run"}, "no restore test of main has run"),
])
def test_the_zero_needs_a_real_restore_test_that_passed_within_35_days(tmp_path, journal, phrase):
    estate = _estate(tmp_path, object_lock=[LOCK])
    if journal is not None:
        _restore_journal(tmp_path, **journal)
    r = _by_name(scorecard.score(estate.cluster("main"), estate, _healthy(_lock_ok()), now=NOW))
    assert r["scorecard.errors"].failed and phrase in r["scorecard.errors"].message
    assert r["scorecard"].value.endswith("-1")


def test_a_refused_run_after_a_pass_does_not_hide_the_pass(tmp_path):
    estate = _estate(tmp_path, object_lock=[LOCK])
    _restore_journal(tmp_path, run_id="scheduled__pass", age_days=5)
    _restore_journal(tmp_path, run_id="manual__refused", age_days=1, status="failed", restore_step="not run")
    r = _by_name(scorecard.score(estate.cluster("main"), estate, _healthy(_lock_ok()), now=NOW))
    assert not r["scorecard.errors"].failed and r["scorecard.errors"].details["last_restore_test"]["run_id"] == \
        "scheduled__pass"


def test_a_verify_problem_is_an_error(tmp_path):
    estate = _estate(tmp_path, object_lock=[LOCK])
    _restore_journal(tmp_path)
    results = [r for r in _healthy(_lock_ok()) if not (r.name == "verify" and r.target == "main/repo1")]
    results.append(CheckResult("verify", Status.FAIL, "backup 20261206-101010F: 1 invalid file", "main/repo1"))
    r = _by_name(scorecard.score(estate.cluster("main"), estate, results, now=NOW))
    assert r["scorecard"].value == "3-2-1-1-1" and "20261206-101010F" in r["scorecard.errors"].message


def test_a_drop_fails_even_above_the_requirement_and_a_vault_counts_with_its_dr_copy(tmp_path):
    estate = _estate(tmp_path, object_lock=[LOCK], aws_backup=[VAULT])
    _restore_journal(tmp_path)
    vault = [CheckResult("aws_backup_vault_lock", Status.PASS, "locked, immutable", "aws_backup/prod"),
             CheckResult("aws_backup_recovery_point", Status.PASS, "2 h old", "aws_backup/prod"),
             CheckResult("aws_backup_recovery_point", Status.PASS, "5 h old", "aws_backup/prod/dr_vault")]
    first = _by_name(scorecard.score(estate.cluster("main"), estate, _healthy(_lock_ok(), *vault), now=NOW))
    assert first["scorecard"].value == "5-3-2-2-0" and not first["scorecard"].failed
    assert "AWS Backup vault production-vault: vault lock of production-vault immutable (aws_backup prod)" in \
        first["scorecard.immutable"].message
    # The next day the DR vault's copy is too old: 4-3-1-2-0 still meets 3-2-1-1-0, but it dropped.
    vault[2] = CheckResult("aws_backup_recovery_point", Status.FAIL, "30 h old > 26 h", "aws_backup/prod/dr_vault")
    second = _by_name(scorecard.score(estate.cluster("main"), estate, _healthy(_lock_ok(), *vault),
                                      now=NOW + timedelta(days=1)))
    assert second["scorecard"].failed and second["scorecard"].value == "4-3-1-2-0"
    assert "dropped from 5-3-2-2-0" in second["scorecard"].message and "copies" in second["scorecard"].message
    assert not second["scorecard.copies"].failed  # each digit still meets the requirement
    assert "AWS Backup DR vault dr-vault: FAIL aws_backup_recovery_point" in second["scorecard.copies"].message


def test_an_unchecked_system_earns_nothing(tmp_path):
    estate = _estate(tmp_path, object_lock=[LOCK])
    _restore_journal(tmp_path)
    r = _by_name(scorecard.score(estate.cluster("main"), estate, _healthy(), now=NOW))
    assert r["scorecard.immutable"].failed and "object_lock repo2-bucket was not checked" in \
        r["scorecard.immutable"].message


def test_copies_naming_an_unknown_cluster_or_repo_are_refused_at_load(tmp_path):
    with pytest.raises(EstateError, match=r"copies: cluster 'nope' is not a cluster of this estate"):
        _estate(tmp_path, object_lock=[{**LOCK, "copies": [{"cluster": "nope"}]}])
    with pytest.raises(EstateError, match=r"copies: repo 7 is not a pgBackRest repo of cluster main"):
        _estate(tmp_path, object_lock=[{**LOCK, "copies": [{"cluster": "main", "repo": 7}]}])
