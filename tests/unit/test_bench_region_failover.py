"""The pure parts of bench/region_failover.py: the warm estate it writes, the RTO phases, the ratio and its report."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from drdrill.core.estate import load_estate
from drdrill.core.paths import DEFAULT_ESTATE

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import region_failover as rf  # noqa: E402 - bench/ is a directory of scripts, not a package


def test_the_warm_estate_differs_only_in_dr_mode_and_loads(tmp_path):
    text = DEFAULT_ESTATE.read_text()
    warm = rf.estate_text_for_mode(text, "warm")
    changed = [(a, b) for a, b in zip(text.splitlines(), warm.splitlines(), strict=True) if a != b]
    assert changed == [("      mode: cold", "      mode: warm")]
    f = tmp_path / "estate.yaml"
    f.write_text(warm)
    assert load_estate(f, topology=False).cluster("main").dr.mode == "warm"
    assert rf.estate_text_for_mode(warm, "cold") == text
    assert rf.mode_estate(DEFAULT_ESTATE, "cold", tmp_path) == DEFAULT_ESTATE  # already cold: no copy
    assert rf.mode_estate(DEFAULT_ESTATE, "warm", tmp_path).read_text() == warm


@pytest.mark.parametrize("text, why", [("clusters: []\n", "0 'mode: cold|warm' lines"),
                                       ("a:\n  mode: cold\nb:\n  mode: warm\n", "2 'mode: cold|warm' lines")])
def test_an_estate_without_exactly_one_dr_mode_is_refused(text, why):
    with pytest.raises(ValueError, match=why):
        rf.estate_text_for_mode(text, "warm")


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode must be one of"):
        rf.estate_text_for_mode("  mode: cold\n", "hot")


def test_phases_follow_each_other_and_add_up_to_the_rto():
    marks = {"restore": 105.0, "replay": 106.5, "promote": 106.8, "wait_writable": 106.85, "dns": 107.0}
    phases = rf.phase_seconds(100.0, marks, 107.25)
    assert phases == {"restore": 5.0, "replay": 1.5, "promote": 0.3, "wait_writable": 0.05, "dns": 0.15,
                      "first_write": 0.25}
    assert sum(phases.values()) == pytest.approx(7.25)


def test_a_phase_without_an_end_is_none_and_the_next_counts_from_the_last_known_end():
    phases = rf.phase_seconds(100.0, {"restore": 105.0, "promote": 106.0, "wait_writable": 106.1, "dns": 106.2},
                              None)
    assert phases["replay"] is None and phases["promote"] == 1.0 and phases["first_write"] is None


def test_ratio():
    assert rf.ratio(1.3, 1.0) == 1.3
    assert rf.ratio(None, 1.0) is None and rf.ratio(1.0, None) is None and rf.ratio(1.0, 0.0) is None


def _sample(rto: float, **extra: object) -> dict:
    return {"rto": rto, "phases": rf.phase_seconds(0.0, {"restore": 0.0, "replay": rto / 2, "promote": rto * 0.8,
                                                         "wait_writable": rto * 0.85, "dns": rto * 0.9}, rto),
            "lost_writes": 3, "rpo": 0.2, "wal_bytes_lost": 4096, **extra}


def test_the_warm_summary_judges_the_ratio_and_the_rto_goal():
    s = rf.summarize("warm", [_sample(0.6), _sample(0.8), _sample(0.7)],
                     [_sample(0.9, process_wall=35.0), _sample(1.0, process_wall=36.0)])
    assert s["bare"]["rto"]["median"] == 0.7 and s["drill"]["rto"]["median"] == 0.95
    assert s["ratio_drill_over_bare"] == round(0.95 / 0.7, 3) and s["ratio_within_goal"] is False
    assert s["warm_drill_rto_within_goal"] is True
    text = "\n".join(rf.report_lines(s))
    assert "RTO drill / bare: 1.36 (goal <= 1.3) - OVER the goal" in text
    assert "warm RTO (drill) under 10 s: yes (0.95 s; bare 0.70 s)" in text
    assert "WAL lost" in text and "35 s" in text


def test_the_ratio_without_the_restore_leaves_the_restore_out():
    bare = _sample(12.0)
    bare["phases"]["restore"] = 10.0
    drill = _sample(7.0)
    drill["phases"]["restore"] = 4.5
    s = rf.summarize("cold", [bare], [drill])
    assert s["ratio_drill_over_bare"] == round(7.0 / 12.0, 3)
    assert s["rto_after_restore"] == {"bare": 2.0, "drill": 2.5} and s["ratio_after_restore"] == 1.25
    assert "without the restore phase (replay -> first write): drill / bare 1.25 (2.50 s / 2.00 s)" in "\n".join(
        rf.report_lines(s))
    assert rf.after_restore({"rto": 1.0, "phases": {}}) is None


def test_the_cold_summary_has_no_warm_goal_and_tolerates_a_missing_part():
    s = rf.summarize("cold", [_sample(8.0)], [])
    assert s["ratio_drill_over_bare"] is None and s["ratio_within_goal"] is None
    assert "warm_drill_rto_within_goal" not in s
    text = "\n".join(rf.report_lines(s))
    assert "RTO drill / bare: - (goal <= 1.3)" in text and "warm RTO" not in text
