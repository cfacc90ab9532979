"""Integration tests of drdrill.drills.dataquality against a throwaway PostgreSQL 15 server.

The server is private to this module: its own data directory, port and socket directory, started
with pg_ctl and stopped by pg_ctl on its own data directory, so other servers on the machine are
never touched. Override the location with DRDRILL_TEST_PG_ROOT / DRDRILL_TEST_PG_PORT.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from drdrill.core.checks import Status
from drdrill.drills.dataquality import CanaryExpectation, DataQualityReport, validate_restore

PG_BIN = Path(os.environ.get("DRDRILL_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_ROOT = Path(os.environ.get("DRDRILL_TEST_PG_ROOT", "/tmp/helper-gx"))
# Below 32768: outside Linux's ephemeral range, so no client socket of the suite can hold it.
PG_PORT = int(os.environ.get("DRDRILL_TEST_PG_PORT", "26250"))

RUN_ID = "manual__2026-11-25T12:00:00+00:00"
COUNTS = {"public.a": 1000, "app.b": 10, "app.empty": 0, "app.MixedCase": 3,
          "app.events": 12, "app.events_p1": 5, "app.events_p2": 7}
PITR_CANARIES = [CanaryExpectation(RUN_ID, "before", True), CanaryExpectation(RUN_ID, "after", False)]

SEED_SQL = f"""
DROP SCHEMA IF EXISTS app CASCADE; DROP SCHEMA IF EXISTS drdrill CASCADE; DROP SCHEMA IF EXISTS extra CASCADE;
DROP TABLE IF EXISTS public.a;
CREATE SCHEMA app; CREATE SCHEMA drdrill;
CREATE TABLE public.a (id int PRIMARY KEY); INSERT INTO public.a SELECT generate_series(1, 1000);
CREATE TABLE app.b (id int); INSERT INTO app.b SELECT generate_series(1, 10);
CREATE TABLE app.empty (id int);
CREATE TABLE app."MixedCase" (id int); INSERT INTO app."MixedCase" VALUES (1), (2), (3);
CREATE TABLE app.events (id int) PARTITION BY RANGE (id);
CREATE TABLE app.events_p1 PARTITION OF app.events FOR VALUES FROM (0) TO (100);
CREATE TABLE app.events_p2 PARTITION OF app.events FOR VALUES FROM (100) TO (200);
INSERT INTO app.events SELECT generate_series(1, 5) UNION ALL SELECT generate_series(101, 107);
CREATE TABLE drdrill.canary (id bigserial PRIMARY KEY, run_id text NOT NULL, kind text NOT NULL,
                             created_at timestamptz NOT NULL DEFAULT clock_timestamp());
INSERT INTO drdrill.canary (run_id, kind) VALUES ('{RUN_ID}', 'before');
"""


def _as_postgres(argv: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; as any other user it runs as that user.
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _pg_ctl(datadir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(datadir), *args]),
                          check=False, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A private PostgreSQL 15 server for this module; yields its SQLAlchemy URL."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL binaries not found in {PG_BIN}; set DRDRILL_TEST_PG_BIN")
    PG_ROOT.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="dq-", dir=PG_ROOT))
    datadir, sockdir = root / "data", root / "sock"
    sockdir.mkdir()
    if os.geteuid() == 0:
        shutil.chown(PG_ROOT, "postgres")
        for p in (root, sockdir):
            shutil.chown(p, "postgres")
    pid = None
    try:
        subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(datadir), "-U", "postgres",
                                     "--auth=trust", "--no-sync"]),
                       check=True, capture_output=True, text=True, timeout=120)
        (datadir / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        started = _pg_ctl(datadir, "start", "-w", "-l", str(root / "server.log"), "-o",
                          f"-p {PG_PORT} -k {sockdir} -c listen_addresses=127.0.0.1 -c fsync=off")
        if started.returncode != 0:
            log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
            pytest.fail(f"test PostgreSQL did not start on port {PG_PORT}: {started.stderr}{log}")
        pid = int((datadir / "postmaster.pid").read_text().splitlines()[0])
        yield f"postgresql+psycopg://postgres@127.0.0.1:{PG_PORT}/postgres"
    finally:
        if pid is not None:
            _pg_ctl(datadir, "stop", "-m", "fast", "-w")
            _wait_gone(pid)
        shutil.rmtree(root, ignore_errors=True)
        if PG_ROOT.exists() and not any(PG_ROOT.iterdir()):
            PG_ROOT.rmdir()


def _wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"test PostgreSQL (pid {pid}) still running {timeout}s after pg_ctl stop")


@pytest.fixture
def db(pg_url: str) -> Iterator[sa.Engine]:
    """The seeded database, reset for every test so tests may change it."""
    engine = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(SEED_SQL)
    yield engine
    engine.dispose()


def _validate(engine: sa.Engine, **overrides: Any) -> DataQualityReport:
    kwargs: dict[str, Any] = {
        "sqlalchemy_url": engine.url.render_as_string(hide_password=False),
        "expected_tables": list(COUNTS), "expected_counts": dict(COUNTS), "tolerances": {},
        "critical_tables": ["public.a", "app.b"], "canaries": PITR_CANARIES, "target": "test/pg",
    }
    return validate_restore(**{**kwargs, **overrides})


def _by_name(report: DataQualityReport) -> dict[str, Any]:
    return {r.name: r for r in report.results}


def test_everything_as_expected_passes(db: sa.Engine) -> None:
    report = _validate(db)
    results = _by_name(report)
    assert report.failed == [], [r.line() for r in report.failed]
    assert set(results) == {"tables_match", *(f"row_count.{t}" for t in COUNTS), "canary.before",
                            "canary.after", "critical_not_empty.public.a", "critical_not_empty.app.b"}
    assert all(r.target == "test/pg" for r in report.results)
    assert results["row_count.app.MixedCase"].value == 3  # GX table assets cannot name it; query fallback
    assert results["row_count.app.events"].value == 12  # partitioned parent counts its partitions
    assert "restore reached the ledger snapshot" in results["canary.before"].message
    assert "recovery stopped at the PITR target" in results["canary.after"].message
    evidence = json.loads(json.dumps(report.gx_result))
    assert evidence["validations"]["row_count.public.a"]["success"] is True
    print(f"validate_restore on {len(COUNTS)} tables: {report.gx_result['elapsed_seconds']}s")


def test_deleted_row_fails_row_count_naming_the_table(db: sa.Engine) -> None:
    with db.begin() as conn:
        conn.exec_driver_sql("DELETE FROM public.a WHERE id = 1")
    report = _validate(db)
    assert [r.name for r in report.failed] == ["row_count.public.a"]
    failed = report.failed[0]
    assert failed.message.startswith("public.a: found 999 rows, expected 1000 (tolerance 0)")
    assert failed.value == 999 and failed.threshold["expected"] == 1000
    json.dumps(report.gx_result)


def test_tolerance_covers_a_deleted_row(db: sa.Engine) -> None:
    with db.begin() as conn:
        conn.exec_driver_sql("DELETE FROM public.a WHERE id = 1")
    report = _validate(db, tolerances={"public.a": 1})
    assert report.failed == []
    assert _by_name(report)["row_count.public.a"].message == "public.a: found 999 rows, expected 1000 (tolerance 1)"


def test_missing_and_unexpected_tables_fail_tables_match(db: sa.Engine) -> None:
    with db.begin() as conn:
        conn.exec_driver_sql("DROP TABLE app.b; CREATE SCHEMA extra; CREATE TABLE extra.surprise (id int)")
    report = _validate(db)
    results = _by_name(report)
    match = results["tables_match"]
    assert match.status is Status.FAIL
    assert "missing app.b" in match.message and "unexpected extra.surprise" in match.message
    assert match.details == {"missing": ["app.b"], "unexpected": ["extra.surprise"]}
    assert results["row_count.app.b"].failed and "missing" in results["row_count.app.b"].message
    assert results["critical_not_empty.app.b"].failed
    json.dumps(report.gx_result)


def test_second_canary_present_when_expected_absent_fails(db: sa.Engine) -> None:
    with db.begin() as conn:
        conn.exec_driver_sql(f"INSERT INTO drdrill.canary (run_id, kind) VALUES ('{RUN_ID}', 'after')")
    report = _validate(db)
    assert [r.name for r in report.failed] == ["canary.after"]
    msg = report.failed[0].message
    assert "found 1 canary row(s)" in msg and "expected 0" in msg and "recovery_target" in msg
    # The same database is what a "latest" restore must show: both canaries present.
    latest = _validate(db, canaries=[CanaryExpectation(RUN_ID, "before", True),
                                     CanaryExpectation(RUN_ID, "after", True)])
    assert latest.failed == []


def test_first_canary_missing_fails(db: sa.Engine) -> None:
    report = _validate(db, canaries=[CanaryExpectation("manual__2026-01-01T00:00:00+00:00", "before", True)])
    assert [r.name for r in report.failed] == ["canary.before"]
    assert "found 0 canary row(s)" in report.failed[0].message


def test_unknown_counts_give_one_skip(db: sa.Engine) -> None:
    report = _validate(db, expected_counts=None)
    assert report.failed == []
    skipped = [r for r in report.results if r.status is Status.SKIP]
    assert [r.name for r in skipped] == ["row_count"]
    assert not any(r.name.startswith("row_count.") for r in report.results)


def test_empty_critical_table_fails(db: sa.Engine) -> None:
    report = _validate(db, critical_tables=["app.empty"])
    assert [r.name for r in report.failed] == ["critical_not_empty.app.empty"]
    assert "found 0 rows, expected at least 1" in report.failed[0].message


def test_run_id_with_sql_is_refused_not_run(db: sa.Engine) -> None:
    evil = "x'; DROP TABLE public.a; --"
    report = _validate(db, canaries=[CanaryExpectation(evil, "before", True)])
    assert [r.name for r in report.failed] == ["canary.before"]
    assert "refused" in report.failed[0].message
    with db.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM public.a").scalar() == 1000


def test_unreachable_database_fails_without_raising() -> None:
    report = validate_restore(sqlalchemy_url=f"postgresql+psycopg://postgres:s3cret@127.0.0.1:{PG_PORT + 1}/x",
                              expected_tables=[], expected_counts={}, tolerances={}, critical_tables=[],
                              canaries=[], target="test/pg")
    assert [r.name for r in report.failed] == ["tables_match"]
    assert "s3cret" not in report.failed[0].message and "***" in report.failed[0].message
