"""WAL archive continuity: holes between the oldest backup and the newest segment, per repo."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from drdrill.hooks.pgbackrest_models import archive_gaps, evaluate_archive_continuity, parse_info

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pgbackrest"
SHA = "0" * 40
NOW = datetime(2026, 11, 26, tzinfo=UTC)


def seg(tl: int, n: int, partial: bool = False) -> str:
    name = f"{tl:08X}{n // 256:08X}{n % 256:08X}"
    return f"15-1/{tl:08X}{n // 256:08X}/{name}{'.partial' if partial else ''}-{SHA}.lz4"


def test_a_continuous_archive_has_no_gap_across_a_log_boundary():
    files = [seg(1, n) for n in range(250, 262)]  # 0000000100000000000000FA .. 000000010000000100000005
    assert archive_gaps(files, start="0000000100000000000000FA", end="000000010000000100000005",
                        segments_per_log=256) == []


def test_a_promotion_partial_and_the_new_timeline_are_not_a_hole():
    # Timeline 1 up to segment 5, whose tail was archived as .partial at the promotion; timeline 2
    # continues at segment 5. The history file is not a segment.
    files = [seg(1, n) for n in range(1, 5)] + [seg(1, 5, partial=True), "15-1/00000002.history-" + SHA]
    files += [seg(2, n) for n in range(5, 9)]
    assert archive_gaps(files, start="000000010000000000000001", end="000000020000000000000008",
                        segments_per_log=256) == []


def test_holes_are_found_and_named_in_runs():
    files = [seg(1, n) for n in range(1, 20) if n not in (7, 12, 13, 14)]
    gaps = archive_gaps(files, start="000000010000000000000001", end="000000010000000000000013",
                        segments_per_log=256)
    assert [(g.first, g.last, g.count) for g in gaps] == [
        ("000000010000000000000007", "000000010000000000000007", 1),
        ("00000001000000000000000C", "00000001000000000000000E", 3)]


def test_segments_of_another_archive_id_do_not_fill_a_hole():
    files = [seg(1, n) for n in range(1, 6) if n != 3] + [seg(1, 3).replace("15-1/", "14-1/")]
    gaps = archive_gaps(files, start="000000010000000000000001", end="000000010000000000000005",
                        segments_per_log=256, archive_ids=["15-1"])
    assert [g.first for g in gaps] == ["000000010000000000000003"]


def _stanza():
    return parse_info((FIXTURES / "info-healthy.json").read_text())[0]


def test_a_hole_fails_naming_the_segment_and_the_lost_window():
    # repo1: oldest backup starts at 04, a diff starts at 09; archive max 09. Segment 06 is gone.
    files = [seg(1, n) for n in range(1, 10) if n != 6]
    r = evaluate_archive_continuity(_stanza(), 1, files, segments_per_log=256, target="main", now=NOW)
    assert r.failed and r.target == "main/repo1"
    assert "missing WAL segment 000000010000000000000006" in r.message
    # Recoverable up to the full backup's stop; the diff that starts after the hole recovers again.
    assert r.details["lost_from"] == datetime.fromtimestamp(1795611259, UTC).isoformat()
    assert r.details["lost_to"] == datetime.fromtimestamp(1795611266, UTC).isoformat()


def test_a_hole_with_no_backup_after_it_loses_everything_up_to_now():
    files = [seg(1, n) for n in range(1, 10) if n != 8]
    r = evaluate_archive_continuity(_stanza(), 2, files, segments_per_log=256, target="main", now=NOW)
    assert r.failed and r.details["lost_to"].startswith("now (2026-11-26") and "no backup starts after" in r.message


def test_segments_before_the_oldest_backup_do_not_matter():
    files = [seg(1, n) for n in range(4, 10)]  # 01..03 expired: not needed by any retained backup
    r = evaluate_archive_continuity(_stanza(), 1, files, segments_per_log=256, target="main", now=NOW)
    assert not r.failed and r.details == {"from": "000000010000000000000004", "to": "000000010000000000000009",
                                          "segments": 6}


def test_a_hole_before_a_promotion_is_named_on_its_own_timeline():
    # Timeline 1 to segment 9 with segment 3 missing, then timeline 5 from segment 9 on: the hole
    # is 000000010000000000000003, not a segment of timeline 5 that never existed.
    files = ([seg(1, n) for n in (1, 2, 4, 5, 6, 7, 8)] + [seg(1, 9, partial=True)]
             + [seg(5, n) for n in range(9, 13)])
    [gap] = archive_gaps(files, start="000000010000000000000001", end="00000005000000000000000C",
                         segments_per_log=256)
    assert (gap.first, gap.last, gap.count) == ("000000010000000000000003", "000000010000000000000003", 1)
    # And a hole after the switch is named on the new timeline.
    files.remove(seg(5, 11))
    gaps = archive_gaps(files, start="000000010000000000000001", end="00000005000000000000000C",
                        segments_per_log=256)
    assert [g.first for g in gaps] == ["000000010000000000000003", "00000005000000000000000B"]


# ---------------------------------------------------------------- the recoverable window (pitr_window)
FULL1_STOP = datetime.fromtimestamp(1795611259, UTC)  # repo1's full backup
DIFF1_STOP = datetime.fromtimestamp(1795611267, UTC)  # repo1's diff, which starts at segment 09


def _window(files, required, repo=1, now=None):
    from drdrill.hooks.pgbackrest_models import evaluate_recoverable_window

    return evaluate_recoverable_window(_stanza(), repo, files, segments_per_log=256, target="main",
                                       now=now or FULL1_STOP + timedelta(hours=10), required_hours=required)


def test_the_window_reaches_back_to_the_oldest_backup_when_the_archive_is_continuous():
    r = _window([seg(1, n) for n in range(4, 10)], required=9)
    assert not r.failed and r.value == 10.0 and r.details["from_backup"] == "20261125-125416F"
    assert "repo1 can recover any second from" in r.message and ">= the 9 h target" in r.message


def test_a_window_shorter_than_the_target_fails_naming_both():
    r = _window([seg(1, n) for n in range(4, 10)], required=168)
    assert r.failed and r.value == 10.0 and r.threshold == 168
    assert "10.0 h, shorter than the 168 h target (targets.pitr_window_hours)" in r.message


def test_a_hole_cuts_the_window_at_the_first_backup_after_it():
    # Segment 06 is gone: only the diff (starting at 09) can replay to the newest WAL.
    r = _window([seg(1, n) for n in range(1, 10) if n != 6], required=10)
    assert r.failed and r.details["from_backup"] == "20261125-125416F_20261125-125426D"
    assert "cut off by the hole at 000000010000000000000006" in r.message
    assert r.value == round((FULL1_STOP + timedelta(hours=10) - DIFF1_STOP).total_seconds() / 3600, 3)


def test_a_hole_after_every_backup_leaves_no_window():
    r = _window([seg(1, n) for n in range(1, 10) if n != 8], required=1, repo=2)
    assert r.failed and r.value == 0.0 and "no backup starts after the archive's hole at 000000010000000000000008" \
        in r.message


def test_no_target_skips():
    assert _window([seg(1, n) for n in range(4, 10)], required=None).status.value == "skip"


def test_a_random_pick_is_replayed_by_its_seed_and_stays_inside_the_window():
    from drdrill.drills.restore import pick_time

    start, until = FULL1_STOP, FULL1_STOP + timedelta(days=7)
    t1, f1 = pick_time(4242, start, until)
    assert pick_time(4242, start, until) == (t1, f1)  # the journalled seed replays the same time
    assert start <= t1 <= until and t1.microsecond % 1000 == 0
    picks = {pick_time(seed, start, until)[0] for seed in range(50)}
    assert len(picks) == 50 and min(picks) < start + timedelta(days=2) and max(picks) > until - timedelta(days=2)
