"""Tests for the pgBackRest info/verify parsers against outputs recorded from a real pgBackRest 2.45."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drdrill.core.checks import Status
from drdrill.core.errors import CommandError, PreflightError
from drdrill.hooks.pgbackrest_models import (
    StanzaInfo,
    evaluate_info,
    evaluate_verify,
    merge_info,
    merge_verify,
    parse_info,
    parse_verify,
    select_stanza,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pgbackrest"

FULL1 = "20261125-125416F"
FULL2 = "20261125-125420F"
DIFF1 = "20261125-125416F_20261125-125426D"
INCR1 = "20261125-125416F_20261125-125639I"
# The last backup in the recordings stopped at 12:56:41 UTC; "shortly after" is a few minutes later.
SOON = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def info(name: str) -> StanzaInfo:
    stanzas = parse_info(fixture(name))
    assert len(stanzas) == 1
    return stanzas[0]


def by_key(results, name, target):
    matches = [r for r in results if r.name == name and r.target == target]
    assert len(matches) == 1, (name, target, [r.line() for r in results])
    return matches[0]


# ---- parse_info -----------------------------------------------------------------------------------------

def test_parse_healthy_info():
    s = info("info-healthy.json")
    assert s.name == "demo"
    assert (s.status_code, s.status_message) == (0, "ok")
    assert s.repo_keys() == [1, 2]
    assert [(r.key, r.code, r.message) for r in s.repos] == [(1, 0, "ok"), (2, 0, "ok")]
    assert [(b.label, b.type, b.repo_key, b.error) for b in s.backups] == [
        (FULL1, "full", 1, False), (FULL2, "full", 2, False), (DIFF1, "diff", 1, False)]
    assert [(a.repo_key, a.id, a.min, a.max) for a in s.archives] == [
        (1, "15-1", "000000010000000000000001", "000000010000000000000009"),
        (2, "15-1", "000000010000000000000001", "000000010000000000000009")]
    full = s.backups[0]
    assert full.start == datetime(2026, 11, 25, 12, 54, 16, tzinfo=UTC)
    assert full.stop == datetime(2026, 11, 25, 12, 54, 19, tzinfo=UTC)
    assert full.stop.utcoffset() == timedelta(0)
    assert (full.lsn_start, full.lsn_stop) == ("0/4000028", "0/5000050")
    assert (full.size, full.repo_size) == (54540012, 4763732)
    assert s.backups[2].reference == [FULL1]


def test_newest_oldest():
    s = info("info-backup-error.json")
    assert s.newest("full", 1).label == FULL1
    assert s.newest("diff", 1).label == DIFF1
    assert s.newest("incr", 1).label == INCR1
    assert s.newest("full", 2).label == FULL2
    assert s.newest("diff", 2) is None
    assert s.newest("full", 3) is None
    assert s.oldest(1).label == FULL1
    assert s.oldest(2).label == FULL2
    assert s.oldest(3) is None


def test_parse_error_flag():
    s = info("info-backup-error.json")
    assert [(b.label, b.error) for b in s.backups] == [
        (FULL1, False), (FULL2, False), (DIFF1, False), (INCR1, True)]


def test_parse_missing_stanza():
    s = info("info-error.json")
    assert (s.name, s.status_code, s.status_message) == ("ghost", 1, "missing stanza path")
    assert [(r.key, r.code) for r in s.repos] == [(1, 1), (2, 1)]
    assert s.backups == [] and s.archives == []


def test_error_flag_defaults_to_false_when_absent():
    s = StanzaInfo.model_validate({
        "name": "x", "status": {"code": 0, "message": "ok"}, "repo": [], "archive": [],
        "backup": [{"label": "20260101-000000F", "type": "full", "timestamp": {"start": 0, "stop": 60},
                    "database": {"repo-key": 1}}]})
    assert s.backups[0].error is False
    assert s.backups[0].lsn_start is None and s.backups[0].size is None


def test_malformed_json_is_a_command_error():
    with pytest.raises(CommandError, match=r"not valid JSON .*--output=json"):
        parse_info("stanza: demo\n    status: ok\n")


def test_wrong_top_level_is_a_command_error():
    with pytest.raises(CommandError, match="expected a list of stanzas"):
        parse_info('{"name": "demo"}')


def test_wrong_shape_names_the_field():
    doc = json.loads(fixture("info-healthy.json"))
    del doc[0]["backup"][1]["timestamp"]
    doc[0]["backup"][2]["type"] = "weekly"
    with pytest.raises(CommandError) as exc:
        parse_info(json.dumps(doc))
    msg = str(exc.value)
    assert "'demo'" in msg and "backup.1.timestamp" in msg and "backup.2.type" in msg
    assert "Check the pgBackRest version" in msg


def test_select_stanza():
    stanzas = parse_info(fixture("info-healthy.json"))
    assert select_stanza(stanzas, "demo").name == "demo"
    with pytest.raises(CommandError, match=r"stanza 'main' is not in .*found: \['demo'\]"):
        select_stanza(stanzas, "main")


# ---- evaluate_info --------------------------------------------------------------------------------------

def test_healthy_passes_shortly_after():
    results = evaluate_info(info("info-healthy.json"), max_age_hours={"full": 24}, now=SOON, target="main")
    assert all(r.status is Status.PASS for r in results), [r.line() for r in results]
    assert [(r.name, r.target) for r in results] == [
        ("stanza_status", "main"),
        ("repo_status", "main/repo1"), ("backup_age.full", "main/repo1"), ("backup_errors", "main/repo1"),
        ("wal_archive_range", "main/repo1"),
        ("repo_status", "main/repo2"), ("backup_age.full", "main/repo2"), ("backup_errors", "main/repo2"),
        ("wal_archive_range", "main/repo2"),
    ]
    age = by_key(results, "backup_age.full", "main/repo1")
    assert age.value == pytest.approx((SOON - datetime(2026, 11, 25, 12, 54, 19, tzinfo=UTC)).seconds / 3600,
                                      abs=0.001)
    assert age.threshold == 24 and age.details["label"] == FULL1


def test_ten_days_later_fails_full_age_on_each_repo():
    later = SOON + timedelta(days=10)
    results = evaluate_info(info("info-healthy.json"), max_age_hours={"full": 24}, now=later, target="main")
    for key, label in ((1, FULL1), (2, FULL2)):
        r = by_key(results, "backup_age.full", f"main/repo{key}")
        assert r.status is Status.FAIL
        assert f"repo{key}" in r.message and label in r.message and "exceeds the target of 24h" in r.message
        assert "Run a full backup" in r.message
        assert r.value > 240
    assert [r.name for r in results if r.failed] == ["backup_age.full", "backup_age.full"]


def test_diff_threshold_fails_repo_without_diff():
    results = evaluate_info(info("info-healthy.json"), max_age_hours={"full": 24, "diff": 12}, now=SOON,
                            target="main")
    assert by_key(results, "backup_age.diff", "main/repo1").status is Status.PASS
    missing = by_key(results, "backup_age.diff", "main/repo2")
    assert missing.status is Status.FAIL and missing.value is None and missing.threshold == 12
    assert "no diff backup found on repo2" in missing.message and "--repo=2 --type=diff" in missing.message


def test_full_only_offsite_repo_gets_its_own_thresholds():
    # The seed's cross-region repo2 only receives full backups: a per-repo threshold says so.
    results = evaluate_info(info("info-healthy.json"), max_age_hours={"full": 24, "diff": 12}, now=SOON,
                            target="main", repo_max_age_hours={2: {"full": 48}})
    assert by_key(results, "backup_age.diff", "main/repo1").status is Status.PASS
    assert not [r for r in results if r.name == "backup_age.diff" and r.target == "main/repo2"]
    assert by_key(results, "backup_age.full", "main/repo2").threshold == 48


def test_type_without_threshold_is_not_checked():
    results = evaluate_info(info("info-backup-error.json"), max_age_hours={"full": 24}, now=SOON,
                            target="main")
    assert not [r for r in results if r.name in ("backup_age.diff", "backup_age.incr")]


def test_error_flag_fails_naming_label():
    results = evaluate_info(info("info-backup-error.json"), max_age_hours={"full": 24, "incr": 24}, now=SOON,
                            target="main")
    flagged = by_key(results, "backup_errors", "main/repo1")
    assert flagged.status is Status.FAIL and flagged.value == 1
    assert INCR1 in flagged.message and "invalid page checksum" in flagged.message
    assert flagged.details["labels"] == [INCR1]
    assert by_key(results, "backup_errors", "main/repo2").status is Status.PASS
    # repo2 holds only a full backup, so the incr threshold fails there too (types are matched exactly).
    assert [(r.name, r.target) for r in results if r.failed] == [
        ("backup_errors", "main/repo1"), ("backup_age.incr", "main/repo2")]


def test_missing_stanza_fails_status_and_every_repo():
    results = evaluate_info(info("info-error.json"), max_age_hours={"full": 24}, now=SOON, target="main")
    stanza = by_key(results, "stanza_status", "main")
    assert stanza.status is Status.FAIL and "missing stanza path" in stanza.message
    assert "stanza-create" in stanza.message
    for key in (1, 2):
        assert by_key(results, "repo_status", f"main/repo{key}").failed
        assert by_key(results, "backup_age.full", f"main/repo{key}").failed
        wal = by_key(results, "wal_archive_range", f"main/repo{key}")
        assert wal.failed and "no archive id" in wal.message


def test_one_repo_missing_fails_only_that_repo():
    results = evaluate_info(info("info-repo2-missing.json"), max_age_hours={"full": 24}, now=SOON,
                            target="main")
    stanza = by_key(results, "stanza_status", "main")
    assert stanza.failed and "code 4 (different across repos)" in stanza.message
    assert by_key(results, "repo_status", "main/repo1").status is Status.PASS
    assert by_key(results, "wal_archive_range", "main/repo1").status is Status.PASS
    repo2 = by_key(results, "repo_status", "main/repo2")
    assert repo2.failed and "missing stanza path" in repo2.message


def test_bad_parameters_are_refused():
    s = info("info-healthy.json")
    with pytest.raises(PreflightError, match="unknown backup type"):
        evaluate_info(s, max_age_hours={"ful": 24}, now=SOON, target="main")
    with pytest.raises(PreflightError, match="no timezone"):
        evaluate_info(s, max_age_hours={"full": 24}, now=SOON.replace(tzinfo=None), target="main")


# ---- merge_info: info --repo=N per repo judged like info without --repo -------------------------------------

def _judged(stanza: StanzaInfo) -> list[tuple[str, str, str, str]]:
    now = max(b.stop for b in stanza.backups) + timedelta(minutes=5)
    return [(r.name, r.target, r.status.value, r.message) for r in evaluate_info(
        stanza, max_age_hours={"full": 24, "diff": 24}, now=now, target="main")]


def test_per_repo_info_merged_is_judged_like_info_of_every_repo():
    merged = merge_info([info("info-sandbox-repo1.json"), info("info-sandbox-repo2.json")])
    whole = info("info-sandbox-all.json")
    assert _judged(merged) == _judged(whole)
    assert (merged.status_code, merged.status_message) == (0, "ok")


def test_per_repo_info_merged_says_repos_differ_like_pgbackrest():
    merged = merge_info([info("info-sandbox-repo1.json"), info("info-sandbox-repo2-missing-repo2.json")])
    whole = info("info-sandbox-repo2-missing-all.json")
    assert (merged.status_code, merged.status_message) == (whole.status_code, whole.status_message) == (
        4, "different across repos")
    now = max(b.stop for b in whole.backups) + timedelta(minutes=5)
    assert ([(r.name, r.target, r.status) for r in evaluate_info(merged, max_age_hours={"full": 24}, now=now,
                                                                   target="main")]
            == [(r.name, r.target, r.status) for r in evaluate_info(whole, max_age_hours={"full": 24}, now=now,
                                                                      target="main")])


def test_an_unreachable_repo_is_status_99_naming_the_endpoint():
    # What info --repo=2 prints (exit code 0) after minutes of retries when repo2's endpoint is down.
    s = info("info-sandbox-repo2-unreachable.json")
    results = evaluate_info(s, max_age_hours={"full": 24}, now=SOON, target="main")
    repo2 = by_key(results, "repo_status", "main/repo2")
    assert repo2.failed and "HostConnectError" in repo2.message and "Connection refused" in repo2.message


# ---- parse_verify / evaluate_verify ---------------------------------------------------------------------

def test_verify_ok():
    report = parse_verify(fixture("verify-ok.txt"), repo_key=1)
    assert report.ok and report.problems == []
    assert [(r.repo_key, r.stanza, r.status) for r in report.repos] == [(1, "demo", "ok")]
    assert report.repos[0].lines[:2] == ["stanza: demo", "status: ok"]
    [check] = evaluate_verify(report, target="main")
    assert check.status is Status.PASS and check.target == "main/repo1"


def test_verify_corrupt_backup_names_label():
    report = parse_verify(fixture("verify-corrupt-backup.txt"), repo_key=1)
    assert not report.ok
    [p] = report.problems
    assert (p.repo_key, p.kind, p.name) == (1, "backup", FULL1)
    assert p.detail.startswith("checksum invalid: 1")
    assert (p.checked, p.valid, p.counts) == (977, 976, {"checksum invalid": 1})
    [check] = evaluate_verify(report, target="main")
    assert check.failed and check.target == "main/repo1" and check.value == 1
    assert FULL1 in check.message and "checksum invalid: 1" in check.message
    assert DIFF1 not in check.message  # verify reported the diff valid
    assert "run a new full backup to this repo" in check.message.lower()


def test_verify_terse_output_gives_the_same_problem():
    terse = parse_verify(fixture("verify-corrupt-backup-terse.txt"), repo_key=1)
    verbose = parse_verify(fixture("verify-corrupt-backup.txt"), repo_key=1)
    assert terse.problems == verbose.problems


def test_verify_corrupt_archive_names_archive_id():
    report = parse_verify(fixture("verify-corrupt-archive.txt"), repo_key=1)
    [p] = report.problems
    assert (p.kind, p.name, p.counts, p.checked, p.valid) == ("archive", "15-1", {"other": 1}, 9, 8)
    [check] = evaluate_verify(report, target="main")
    assert check.failed and "15-1 (other: 1, 8 of 9 WAL valid)" in check.message
    assert "Point-in-time recovery" in check.message


def test_verify_with_log_lines_is_not_double_counted_and_names_files():
    report = parse_verify(fixture("verify-corrupt-both-log.txt"))
    assert len(report.repos) == 1 and report.repos[0].repo_key is None
    assert [(p.kind, p.name) for p in report.problems] == [("archive", "15-1"), ("backup", FULL1)]
    archive, backup = report.problems
    wal8 = "000000010000000000000008-1d77b63709da5b48f948507e59f70d66524c7c58.gz"
    assert archive.files == [f"invalid result: 15-1/0000000100000000/{wal8}"]
    assert backup.files == [f"invalid checksum: {FULL1}/pg_data/base/5/16404.gz"]
    [check] = evaluate_verify(report, target="main")
    assert check.target == "main" and FULL1 in check.message and "15-1" in check.message


def test_verify_repo_from_begin_log_line():
    text = ("2026-11-25 12:56:14.355 P00   INFO: verify command begin 2.45: --output=text --repo=2 "
            "--stanza=demo --verbose\n" + fixture("verify-ok-repo2.txt"))
    assert parse_verify(text).repos[0].repo_key == 2
    assert parse_verify(text, repo_key=3).repos[0].repo_key == 3


def test_verify_unusable_repo():
    report = parse_verify(fixture("verify-no-stanza.txt"), repo_key=2)
    assert not report.ok
    assert [(p.kind, p.detail) for p in report.problems] == [
        ("repo", "No usable backup.info file"), ("repo", "No usable archive.info file")]
    [check] = evaluate_verify(report, target="main")
    assert check.failed and "No usable backup.info file" in check.message and "stanza" in check.message


def test_merged_reports_give_one_check_per_repo():
    report = merge_verify([parse_verify(fixture("verify-corrupt-backup.txt"), repo_key=1),
                           parse_verify(fixture("verify-ok-repo2.txt"), repo_key=2)])
    assert not report.ok
    assert [p.repo_key for p in report.problems] == [1]
    checks = evaluate_verify(report, target="main")
    assert [(c.target, c.status) for c in checks] == [("main/repo1", Status.FAIL), ("main/repo2", Status.PASS)]


@pytest.mark.parametrize("text", ["", "\n", "2026-11-25 12:56:14.355 P00   INFO: verify command end\n"])
def test_empty_verify_output_is_a_command_error(text):
    with pytest.raises(CommandError, match="--output=text --verbose"):
        parse_verify(text)
