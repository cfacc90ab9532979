"""The evidence model, the resilience policy's score and the compliance report, over copies of real journals.

`tests/fixtures/journals/` holds journals written by real sandbox runs (restore tests, node and region
failovers, the incident runbook, chaos drills, daily verifications with their scorecard, an AWS Backup
restore test); the calendar tests rewrite one's run id and dates into the months they need.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drdrill import evidence
from drdrill.core.estate import Journal, load_estate
from drdrill.core.resilience import Objective, Resilience
from drdrill.core.scratch import run_tag
from drdrill.evidence import policy, windows
from drdrill.evidence.report import previous_quarter, quarter_bounds, render, write_quarter_report

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "journals"
SANDBOX_ESTATE = ROOT / "include" / "estate" / "sandbox.yaml"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # the fixtures were written on 2026-12-06
RESTORE = "dr_monthly_restore_test"
FAILOVER = "dr_quarterly_failover_drill"


def fixture(drill: str, stamp: str) -> Path:
    return FIXTURES / drill / f"manual__2026-12-06T{stamp}_00_00.json"


def estate_at(location: Path, **update):
    base = load_estate(SANDBOX_ESTATE, topology=False)
    return base.model_copy(update={"journal": Journal(location=f"file://{location}"), **update})


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """A journal location holding the fixtures, and the evidence built over it."""
    loc = tmp_path_factory.mktemp("journals")
    shutil.copytree(FIXTURES, loc, dirs_exist_ok=True)
    est = estate_at(loc)
    return loc, est, evidence.build(est, now=NOW)


def clone(loc: Path, src: Path, at: datetime, *, status: str | None = None, dry_run: bool | None = None,
          run_type: str = "scheduled") -> str:
    """A copy of a real journal as if it ran at ``at`` (new run id and dates); returns its run id."""
    doc = json.loads(src.read_text())
    run_id = f"{run_type}__{at.isoformat()}"
    doc.update(run_id=run_id, run_after=str(at), written_at=(at + timedelta(minutes=5)).isoformat(),
               run_type=f"DagRunType.{run_type.upper()}")
    if status:
        doc["status"] = status
    if dry_run is not None:
        doc["params"]["dry_run"] = dry_run
    d = loc / doc["drill"]
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{run_tag(run_id)}.json").write_text(json.dumps(doc))
    return run_id


def run_of(ev, drill: str, stamp: str):
    return next(r for r in ev.runs if r.drill == drill and r.run_id == f"manual__2026-12-06T{stamp.replace('_', ':')}"
                f"+00:00")


# ------------------------------------------------------------------ figures per drill family
def test_the_restore_test_gives_its_restore_time_against_max_restore_minutes(real):
    r = run_of(real[2], RESTORE, "16_45_05.586812").to_dict()
    assert r["status"] == "passed" and r["cluster"] == "main" and r["run_type"] == "manual" and not r["dry_run"]
    assert r["figures"] == [{"name": "restore_seconds", "label": "restore time", "value": 4.561, "target": 600.0,
                             "unit": "s", "met": True}]
    assert r["dag_run_href"] == ("dags/dr_monthly_restore_test/runs/"
                                 "manual__2026-12-06T16%3A45%3A05.586812%2B00%3A00")
    assert run_of(real[2], RESTORE, "16_17_46.567393").dry_run


def test_failover_drills_give_rto_rpo_and_lost_writes_for_node_and_region_scope(real):
    ev = real[2]
    node = {f["name"]: f for f in run_of(ev, FAILOVER, "16_37_47.549604").to_dict()["figures"]}
    assert node["rto_seconds"]["target"] == 1800.0 and node["rto_seconds"]["met"] is True
    assert node["rpo_seconds"] == {"name": "rpo_seconds", "label": "RPO", "value": 0.0, "target": 300.0, "unit": "s",
                                   "met": True}
    assert node["lost_writes"]["unit"] == "writes" and node["lost_writes"]["met"] is None
    region = run_of(ev, FAILOVER, "16_43_35.637200")
    assert region.scope == "region" and run_of(ev, FAILOVER, "16_37_47.549604").scope == "node"
    assert region.figure("rto_seconds").value > 0 and region.figure("rpo_seconds").target == 300.0
    # The region scope's own figures: the DR node's restore from the DR repo, the WAL it could not replay.
    assert region.figure("dr_restore_seconds") is None  # warm: the DR standby was running, nothing restored
    assert region.figure("wal_bytes_lost").value == 16696 and region.figure("wal_bytes_lost").unit == "bytes"
    cold = run_of(ev, FAILOVER, "16_44_11.062164").figure("dr_restore_seconds")
    assert cold.value == 4.812 and cold.met is None
    assert run_of(ev, FAILOVER, "16_37_47.549604").figure("dr_restore_seconds") is None
    incident = run_of(ev, "dr_postgres_primary_failover", "16_03_53.557688")
    assert incident.figure("rto_seconds").value == 6.933 and incident.scope == "node"


def test_chaos_drills_give_recovery_against_the_service_bound_and_detection(real):
    ev = real[2]
    pod = run_of(ev, "dr_weekly_pod_kill", "16_39_09.485180")
    # The journal names the service only: the run counts for its cluster (db-standby's database is main).
    assert pod.service == "db-standby" and pod.cluster == "main"
    assert json.loads(fixture("dr_weekly_pod_kill", "16_39_09.485180").read_text())["cluster"] is None
    assert (pod.figure("recovery_seconds").value, pod.figure("recovery_seconds").target) == (2.788, 120.0)
    assert pod.figure("detect_seconds").value == 2.754 and pod.figure("detect_seconds").met is None
    az = run_of(ev, "dr_monthly_az_failure", "16_39_34.725373")
    assert az.figure("recovery_seconds").met is True
    entry = next(d for d in ev.drills if d.drill == "dr_weekly_pod_kill" and d.cluster == "main")
    assert pod in entry.runs
    aws = run_of(ev, "dr_monthly_aws_backup_restore_test", "15_53_18.567367").to_dict()["figures"]
    assert aws == [{"name": "restore_seconds", "label": "AWS Backup restore time", "value": 0.053, "target": 5.0,
                    "unit": "s", "met": True}]


def test_trends_hold_every_real_measurement_with_its_target_and_links(real):
    t = real[2].to_dict()["trends"]
    assert set(t) == {"rto_seconds", "rpo_seconds", "restore_seconds", "recovery_seconds"}
    assert {p["drill"] for p in t["rto_seconds"]} == {FAILOVER, "dr_postgres_primary_failover"}
    restore = [p for p in t["restore_seconds"] if p["drill"] == RESTORE]
    assert [p["value"] for p in restore] == [13.917, 4.561] or len(restore) == 2  # the dry run has none
    assert all(p["journal"].startswith("file://") and p["dag_run_href"].startswith("dags/") for v in t.values()
               for p in v)


def test_every_run_carries_the_sha256_of_its_journal_bytes(real):
    loc, _, ev = real
    assert len(ev.runs) == 15  # the timeline.md attachment is not a journal
    for r in ev.runs:
        path = Path(r.journal.removeprefix("file://"))
        assert path.parent.parent == loc
        assert r.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_run_and_its_journal_are_found_for_the_per_run_view(real):
    loc, est, ev = real
    r = ev.find_run(RESTORE, "manual__2026-12-06T16:45:05.586812+00:00")
    assert r is not None and ev.find_run(RESTORE, "manual__nope") is None
    assert r.journal in ev.journal_paths()
    assert hashlib.sha256(evidence.read_journal(est, r.journal)).hexdigest() == r.sha256


def test_the_contract_shape_is_json_ready(real):
    d = json.loads(json.dumps(real[2].to_dict()))
    assert set(d) >= {"generated_at", "estate", "since", "until", "timezone", "unreadable", "runs", "drills", "trends",
                      "scorecard", "policy"}
    assert d["estate"] == "sandbox" and d["timezone"] == "UTC" and d["unreadable"] == []
    assert [r["at"] for r in d["runs"]] == sorted(r["at"] for r in d["runs"])
    run_keys = {"drill", "cluster", "run_id", "run_type", "status", "at", "written_at", "journal", "sha256",
                "dag_run_href", "figures", "failures", "dry_run"}
    assert all(run_keys <= set(r) for r in d["runs"])
    drill = next(x for x in d["drills"] if x["drill"] == RESTORE and x["cluster"] == "main")
    assert drill["cadence"] == "monthly" and drill["runs"] == 3
    assert drill["last_passed"]["run_id"] == "manual__2026-12-06T16:45:05.586812+00:00"
    assert set(d["policy"]) == {"disruptions", "scores", "formula"}


def test_an_unreadable_journal_is_counted_never_raised(tmp_path):
    shutil.copytree(FIXTURES / RESTORE, tmp_path / RESTORE)
    (tmp_path / RESTORE / "manual__2026-12-07T00_00_00.000000_00_00.json").write_text("{not json")
    (tmp_path / RESTORE / "manual__2026-12-07T01_00_00.000000_00_00.json").write_text("[1, 2]")
    (tmp_path / RESTORE / "manual__2026-12-07T02_00_00.000000_00_00.gx.json").write_text("{}")  # an attachment
    (tmp_path / "_state").mkdir()
    (tmp_path / "_state" / "topology.json").write_text("{}")  # not a drill's directory
    ev = evidence.build(estate_at(tmp_path), now=NOW)
    assert len(ev.runs) == 3
    bad = {Path(u["path"]).name: u["error"] for u in ev.unreadable}
    assert set(bad) == {"manual__2026-12-07T00_00_00.000000_00_00.json",
                        "manual__2026-12-07T01_00_00.000000_00_00.json"}
    assert bad["manual__2026-12-07T00_00_00.000000_00_00.json"].startswith("JSONDecodeError")
    assert "not a drdrill journal" in bad["manual__2026-12-07T01_00_00.000000_00_00.json"]
    assert "Unreadable journals" in render(ev, "md")


def test_a_missing_journal_location_is_empty_evidence(tmp_path):
    d = evidence.build(estate_at(tmp_path / "nothing-yet"), now=NOW).to_dict()
    assert d["runs"] == [] and all(r["status"] == "not_run" for r in d["policy"]["disruptions"])
    assert d["policy"]["scores"]["overall"] == 0.0


# ------------------------------------------------------------------ windows
def test_cadence_follows_the_schedule_rules():
    from drdrill.core.schedules import DrillSchedule, Schedules

    s = Schedules()
    assert [windows.cadence(s.for_drill(d)) for d in ("dr_daily_verification", "dr_weekly_pod_kill", RESTORE,
                                                      FAILOVER)] == ["daily", "weekly", "monthly", "quarterly"]
    assert windows.cadence(DrillSchedule(day="business days")) == "daily"
    assert windows.cadence(DrillSchedule(day="last fri", months=[3, 9])) == "monthly"
    assert windows.cadence(DrillSchedule(day="wed", enabled=False)) == "manual"
    assert windows.cadence(None) == "manual"


def test_windows_passed_failed_missed_skipped_open_and_not_due(tmp_path):
    src = fixture(RESTORE, "16_45_05.586812")
    clone(tmp_path, src, datetime(2026, 1, 2, 10, tzinfo=UTC))  # January: passed
    clone(tmp_path, src, datetime(2026, 2, 2, 10, tzinfo=UTC), status="failed")  # February: failed only
    feb_retry = clone(tmp_path, src, datetime(2026, 2, 20, 10, tzinfo=UTC), status="failed", run_type="manual")
    # March: no run at all -> missed
    clone(tmp_path, src, datetime(2026, 4, 1, 10, tzinfo=UTC), dry_run=True)  # April: a dry run only -> skipped
    clone(tmp_path, src, datetime(2026, 5, 1, 10, tzinfo=UTC), status="skipped")  # May: skipped only
    june = clone(tmp_path, src, datetime(2026, 6, 1, 10, tzinfo=UTC), dry_run=True)  # June: current, dry run only
    now = datetime(2026, 6, 15, 12, tzinfo=UTC)
    ev = evidence.build(estate_at(tmp_path), now=now, since=datetime(2025, 10, 1, tzinfo=UTC))
    entry = next(d for d in ev.drills if d.drill == RESTORE and d.cluster == "main")
    got = [(w.start.isoformat(), w.end.isoformat(), w.status) for w in entry.windows]
    assert got == [("2025-10-01", "2025-11-01", "not_due"), ("2025-11-01", "2025-12-01", "not_due"),
                   ("2025-12-01", "2026-01-01", "not_due"), ("2026-01-01", "2026-02-01", "passed"),
                   ("2026-02-01", "2026-03-01", "failed"), ("2026-03-01", "2026-04-01", "missed"),
                   ("2026-04-01", "2026-05-01", "skipped"), ("2026-05-01", "2026-06-01", "skipped"),
                   ("2026-06-01", "2026-07-01", "open")]
    assert feb_retry in entry.windows[4].run_ids and entry.windows[8].run_ids == [june]
    # The other scheduled drills never ran: their windows since the first journal are missed.
    daily = next(d for d in ev.drills if d.drill == "dr_daily_verification")
    assert daily.windows[-1].status == "open" and {w.status for w in daily.windows} == {"not_due", "missed", "open"}
    incident = next(d for d in ev.drills if d.drill == "dr_postgres_primary_failover")
    assert incident.cadence == "manual" and incident.windows == []
    md = render(ev, "md")
    assert "| dr_monthly_restore_test | main | monthly | 2026-03-01 to 2026-04-01 | **missed** | no run |" in md
    # A closed period (a quarter's report: until is the next quarter's first midnight) ends the day before.
    closed = evidence.build(estate_at(tmp_path), now=now, since=datetime(2026, 1, 1, tzinfo=UTC),
                            until=datetime(2026, 4, 1, tzinfo=UTC))
    entry = next(d for d in closed.drills if d.drill == RESTORE and d.cluster == "main")
    assert [(w.start.month, w.status) for w in entry.windows] == [(1, "passed"), (2, "failed"), (3, "missed")]
    daily = next(d for d in closed.drills if d.drill == "dr_daily_verification")
    assert daily.windows[-1].start.isoformat() == "2026-03-31" and daily.windows[-1].status == "missed"
    with pytest.raises(ValueError, match="since .* is after until"):
        evidence.build(estate_at(tmp_path), now=now, since=now, until=now - timedelta(days=1))


def test_weekly_quarterly_and_business_day_windows_follow_the_calendar():
    from drdrill.core.schedules import DrillSchedule, Schedules

    s = Schedules()
    weeks = windows.periods(s.for_drill("dr_weekly_pod_kill"), s.holidays, datetime(2026, 3, 4).date(),
                            datetime(2026, 3, 20).date())
    assert [(a.isoformat(), b.isoformat()) for a, b in weeks] == [("2026-03-02", "2026-03-09"),
                                                                  ("2026-03-09", "2026-03-16"),
                                                                  ("2026-03-16", "2026-03-23")]
    quarters = windows.periods(s.for_drill(FAILOVER), s.holidays, datetime(2026, 2, 1).date(),
                               datetime(2026, 12, 1).date())
    assert [a.isoformat() for a, _ in quarters] == ["2026-01-01", "2026-04-01", "2026-07-01", "2026-10-01"]
    # Business days: a window per working day, none on the weekend or on a holiday (25 December).
    days = windows.periods(DrillSchedule(day="business days"), s.holidays, datetime(2026, 12, 24).date(),
                           datetime(2026, 12, 29).date())
    assert [a.isoformat() for a, _ in days] == ["2026-12-24", "2026-12-28", "2026-12-29"]


# ------------------------------------------------------------------ scorecard
def test_the_scorecard_is_the_newest_daily_journal_holding_scorecard_results(real):
    loc, est, ev = real
    (sc,) = ev.to_dict()["scorecard"]
    assert (sc["cluster"], sc["score"], sc["target"], sc["status"]) == ("main", "3-2-1-1-0", "3-2-1-1-0", "pass")
    assert sc["run_id"] == "manual__2026-12-06T16:41:50.229741+00:00"
    assert [(d["digit"], d["value"], d["target"], d["status"]) for d in sc["digits"]] == [
        ("copies", 3, 3, "pass"), ("media", 2, 2, "pass"), ("offsite", 1, 1, "pass"), ("immutable", 1, 1, "pass"),
        ("errors", 0, 0, "pass")]
    assert sc["digits"][0]["evidence"].startswith("3 copies (required 3): pg1 (live)")
    # Up to 16:30 the newest scorecard is the failed one of 16:13.
    (older,) = evidence.build(est, now=NOW, until=datetime(2026, 12, 6, 16, 30, tzinfo=UTC)).to_dict()["scorecard"]
    assert older["run_id"] == "manual__2026-12-06T16:13:17.155040+00:00" and older["status"] == "fail"
    assert any(d["status"] == "fail" for d in older["digits"])


# ------------------------------------------------------------------ policy and score
def test_policy_statuses_and_the_score_formula(real):
    loc, est, ev = real
    rows = {r["disruption"]: r for r in ev.to_dict()["policy"]["disruptions"]}
    assert {d: r["status"] for d, r in rows.items()} == {
        "instance": "met", "az": "met", "database_node": "met", "region": "failed", "data_loss": "met"}
    # The newest region failover failed (16:44), though an earlier one passed (16:43).
    assert rows["region"]["run_id"] == "manual__2026-12-06T16:44:11.062164+00:00"
    assert rows["instance"]["rto_measured_seconds"] == 2.788 and rows["instance"]["rto_target_seconds"] == 120
    assert rows["instance"]["rpo_measured_seconds"] is None and rows["instance"]["rpo_met"] is None
    assert rows["data_loss"]["rto_measured_seconds"] == 4.561 and rows["data_loss"]["rto_met"] is True
    assert 0.79 < rows["az"]["age_days"] < 0.82
    scores = ev.to_dict()["policy"]["scores"]
    assert scores == {"overall": 85.0, "clusters": {"main": 85.0}}  # (1 + 1 + 1 + 0.25 + 1) / 5 x 100
    # A tighter policy: restore time 1 s is breached; the region dropped for main.
    tight = est.model_copy(update={"resilience": Resilience.model_validate(
        {"data_loss": {"rto_seconds": 1, "rpo_seconds": 300}, "clusters": {"main": {"region": None}}})})
    rows = {r["disruption"]: r for r in evidence.build(tight, now=NOW).to_dict()["policy"]["disruptions"]}
    assert rows["data_loss"]["status"] == "breached" and rows["data_loss"]["rto_met"] is False
    assert "region" not in rows
    # 70 days later: the monthly and weekly evidence expired, the quarterly failover's (184 days) did not.
    later = evidence.build(est, now=NOW + timedelta(days=70))
    got = {r.disruption: r.status for r in later.policy}
    assert got == {"instance": "expired", "az": "expired", "database_node": "met", "region": "failed",
                   "data_loss": "expired"}
    assert policy.scores(later.policy)["overall"] == 55.0  # (0.5 + 0.5 + 1 + 0.25 + 0.5) / 5 x 100


def test_a_cluster_override_and_never_run_drills(tmp_path):
    shutil.copytree(FIXTURES / RESTORE, tmp_path / RESTORE)
    ev = evidence.build(estate_at(tmp_path), now=NOW)
    got = {r.disruption: r.status for r in ev.policy}
    assert got == {"instance": "not_run", "az": "not_run", "database_node": "not_run", "region": "not_run",
                   "data_loss": "met"}
    assert policy.scores(ev.policy) == {"overall": 20.0, "clusters": {"main": 20.0}}
    r = Resilience.model_validate({"clusters": {"main": {"region": {"rto_seconds": 7200}}}})
    assert r.for_cluster("main")["region"] == Objective(rto_seconds=7200, rpo_seconds=900)
    with pytest.raises(ValueError, match="unknown disruption 'pod'"):
        Resilience.model_validate({"pod": {"rto_seconds": 1, "rpo_seconds": 0}})


def test_the_estate_refuses_a_policy_for_an_unknown_cluster(tmp_path):
    from drdrill.core.errors import EstateError

    text = SANDBOX_ESTATE.read_text() + "\n  clusters:\n    billing: {region: null}\n"
    f = tmp_path / "estate.yaml"
    f.write_text(text)
    with pytest.raises(EstateError, match="resilience.clusters: 'billing' is not a cluster"):
        load_estate(f, topology=False)


def test_the_sandbox_policy_is_met_by_the_sandbox_drills(real):
    est = load_estate(SANDBOX_ESTATE, topology=False)
    for d, obj in est.resilience.for_cluster("main").items():
        assert obj.rto_seconds > 0, d
    assert est.resilience.data_loss.rto_seconds == est.cluster("main").targets.max_restore_minutes * 60


# ------------------------------------------------------------------ the report and its CLI
@pytest.fixture(scope="module")
def estate_file(real, tmp_path_factory):
    loc = real[0]
    f = tmp_path_factory.mktemp("estate") / "estate.yaml"
    f.write_text(SANDBOX_ESTATE.read_text().replace("location: file://${DRDRILL_SANDBOX_DIR}/journal",
                                                    f"location: file://{loc}"))
    return f


def test_report_md_cites_every_journal_with_its_sha256(real, estate_file, tmp_path, capsys):
    from drdrill.__main__ import main

    out = tmp_path / "q4.md"
    assert main(["report", "--since", "2026-10-01", "--until", "2026-12-31", "--format", "md", "--estate",
                 str(estate_file), "-o", str(out)]) == 0
    md = out.read_text()
    assert md.startswith("# DR compliance report: sandbox, 2026-10-01 to 2026-12-31\n")
    for title in ("## Resilience policy", "## 3-2-1-1-0 scorecard", "## Drills and their windows",
                  "## Windows not satisfied", "## Drill runs", "## Journals cited"):
        assert title in md
    for r in real[2].runs:
        assert f"| {r.journal} | {r.sha256} |" in md
    assert "sha256sum" in md and policy.FORMULA in md
    assert "| region | main | dr_quarterly_failover_drill | 3600 s / 900 s |" in md and "**failed**" in md
    # To standard output when no file is given; a period without runs is still a report.
    assert main(["report", "--since", "2025-01-01", "--until", "2025-03-31", "--format", "md", "--estate",
                 str(estate_file)]) == 0
    assert "| Drill runs | 0 (0 passed, 0 failed, 0 dry runs or skipped) |" in capsys.readouterr().out


def test_report_html_is_self_contained_and_escaped(real, estate_file, tmp_path):
    from drdrill.__main__ import main

    out = tmp_path / "r.html"
    assert main(["report", "--since", "2026-12-01", "--until", "2026-12-31", "--estate", str(estate_file),
                 "-o", str(out)]) == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    for external in ("<script", "<link", "src=", "@import", "url("):
        assert external not in page
    assert page.count("<table>") >= 6 and all(r.sha256 in page for r in real[2].runs)
    assert '<td class="failed">failed</td>' in page
    doc = real[2].to_dict()
    doc["runs"][0]["failures"] = ["<img src=x onerror=alert(1)>"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in render(doc, "html")


@pytest.mark.parametrize("argv, message", [
    (["--since", "2026-12-31", "--until", "2026-12-01"], "--since 2026-12-31 is after --until 2026-12-01"),
    (["--since", "2026-13-01"], "argument --since: '2026-13-01' is not a date: use YYYY-MM-DD"),
    (["--until", "31.12.2026"], "argument --until: '31.12.2026' is not a date"),
    (["--format", "pdf"], "argument --format: invalid choice: 'pdf'"),
])
def test_report_bad_input_is_a_clear_error_and_exit_code_2(argv, message, capsys):
    from drdrill.__main__ import main

    with pytest.raises(SystemExit) as e:
        main(["report", *argv])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_report_of_a_missing_estate_file_exits_1(tmp_path, capsys):
    from drdrill.__main__ import main

    assert main(["report", "--estate", str(tmp_path / "nope.yaml")]) == 1
    assert "nope.yaml does not exist" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown report format 'pdf'"):
        render({}, "pdf")


def test_quarters():
    assert quarter_bounds("2026-Q4") == (datetime(2026, 10, 1).date(), datetime(2027, 1, 1).date())
    assert previous_quarter(datetime(2026, 1, 2).date()) == "2025-Q4"
    assert previous_quarter(datetime(2026, 12, 6).date()) == "2026-Q3"
    with pytest.raises(ValueError, match="not YYYY-Qn"):
        quarter_bounds("2026-Q5")


# ------------------------------------------------------------------ the quarterly DAG
def test_the_quarterly_dag_writes_the_report_once(airflow_db, tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    src = fixture(RESTORE, "16_45_05.586812")
    clone(tmp_path / "journal", src, datetime(2026, 7, 1, 10, tzinfo=UTC))
    f = tmp_path / "estate.yaml"
    f.write_text(SANDBOX_ESTATE.read_text().replace("location: file://${DRDRILL_SANDBOX_DIR}/journal",
                                                    f"location: file://{tmp_path}/journal"))
    monkeypatch.setenv("DRDRILL_ESTATE", str(f))
    path = ROOT / "dags" / "dr_quarterly_compliance_report.py"
    reports = tmp_path / "journal" / "reports"

    dag = DagBag(dag_folder=str(path)).get_dag("dr_quarterly_compliance_report")

    def run(conf):
        return dag.test(run_conf=conf)

    dr = run({"quarter": "2026-Q3"})
    assert dr.state == "success", dr.state
    md = (reports / "2026-Q3.md").read_text()
    assert md.startswith("# DR compliance report: sandbox, 2026-07-01 to 2026-09-30")
    assert "scheduled__2026-07-01T10:00:00+00:00" in md
    # A closed quarter: its months are over (July passed, August and September missed); only the week
    # across the quarter's end (28 September to 4 October) is still open at its end.
    assert "| dr_monthly_restore_test | main | monthly | 3 | 1 | 0 | 2 | 0 | 0 | 0 |" in md
    assert "| dr_weekly_pod_kill | main | weekly | 14 | 0 | 0 | 13 | 0 | 1 | 0 |" in md
    html_before = (reports / "2026-Q3.html").read_bytes()
    # A second journal in the same (closed) quarter, then the same report again: kept, not overwritten.
    clone(tmp_path / "journal", src, datetime(2026, 8, 3, 10, tzinfo=UTC))
    assert run({"quarter": "2026-Q3"}).state == "success"
    assert (reports / "2026-Q3.md").read_text() == md and (reports / "2026-Q3.html").read_bytes() == html_before
    # The reports directory is not taken for a drill's journals.
    ev = evidence.build(load_estate(f, topology=False), now=NOW)
    assert ev.unreadable == [] and {r.drill for r in ev.runs} == {RESTORE}
    assert sorted(p.name for p in reports.iterdir()) == ["2026-Q3.html", "2026-Q3.md"]


def test_a_quarter_not_closed_yet_is_refused_before_anything_is_written(tmp_path):
    est = estate_at(tmp_path)
    with pytest.raises(ValueError, match="quarter 2026-Q4 ends 2027-01-01 \\(UTC\\): it is not closed yet"):
        write_quarter_report(est, "2026-Q4", now=NOW)
    assert not (tmp_path / "reports").exists()


# ------------------------------------------------------------------ object storage
def test_journals_and_reports_on_s3(tmp_path):
    """An s3:// journal location (moto over HTTP): read through ObjectStoragePath, the report written once."""
    import boto3

    from moto_server import moto_server

    with moto_server("evidence_s3") as url:
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
        s3.create_bucket(Bucket="evidence")
        sent = {}
        for f in [fixture(RESTORE, "16_45_05.586812"), fixture(FAILOVER, "16_43_35.637200"),
                  fixture("dr_daily_verification", "16_41_50.229741")]:
            key = f"drdrill/{f.parent.name}/{f.name}"
            s3.put_object(Bucket="evidence", Key=key, Body=f.read_bytes())
            sent[f"s3://evidence/{key}"] = hashlib.sha256(f.read_bytes()).hexdigest()
        s3.put_object(Bucket="evidence", Key=f"drdrill/{RESTORE}/broken.json", Body=b"{")
        s3.put_object(Bucket="evidence", Key=f"drdrill/{FAILOVER}/x.timeline.md", Body=b"# timeline")
        est = estate_at(tmp_path).model_copy(update={"journal": Journal(location="s3://evidence/drdrill",
                                                                        conn_id="evidence_s3")})
        ev = evidence.build(est, now=NOW)
        assert {r.journal: r.sha256 for r in ev.runs} == sent
        some = sorted(sent)[0]
        assert hashlib.sha256(evidence.read_journal(est, some)).hexdigest() == sent[some]
        assert [u["path"] for u in ev.unreadable] == [f"s3://evidence/drdrill/{RESTORE}/broken.json"]
        assert ev.to_dict()["scorecard"][0]["score"] == "3-2-1-1-0"
        first = write_quarter_report(est, "2026-Q3", now=NOW)
        assert first == {"html": {"path": "s3://evidence/drdrill/reports/2026-Q3.html", "action": "written"},
                         "md": {"path": "s3://evidence/drdrill/reports/2026-Q3.md", "action": "written"}}
        body = s3.get_object(Bucket="evidence", Key="drdrill/reports/2026-Q3.md")["Body"].read()
        assert body.startswith(b"# DR compliance report: sandbox, 2026-07-01 to 2026-09-30")
        assert {v["action"] for v in write_quarter_report(est, "2026-Q3", now=NOW).values()} == {"kept"}
        evidence.clear_cache()
        assert len(evidence.build(est, now=NOW).runs) == 3  # the reports/ prefix holds no journals


def test_the_model_and_the_report_of_a_local_location_import_no_airflow(estate_file):
    # The API server's plugin imports it (plugins stay light) and an auditor runs the report without Airflow.
    import os
    import subprocess
    import sys

    code = ("import sys; from drdrill.__main__ import main; rc = main(['report', '--estate', sys.argv[1], "
            "'--format', 'md', '-o', '/dev/null']); "
            "print(rc, sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')))")
    res = subprocess.run([sys.executable, "-c", code, str(estate_file)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "include")})
    assert res.stdout.strip().splitlines()[-1] == "0 []", res.stdout + res.stderr
