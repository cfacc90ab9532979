"""Data-quality step of the restore test: does the restored database hold what the ledger saw?

Before the restore, the ledger step on the primary wrote a first canary row, captured the exact
``count(*)`` of every user table in one REPEATABLE READ snapshot, then wrote a second canary. This
module checks the restored database against that ledger with Great Expectations 1.x:

* ``tables_match``: the restored database has exactly the expected user tables (plain SQL);
* ``row_count.<schema.table>``: each table's row count is within its tolerance of the ledger's count;
* ``canary.<kind>``: each canary is present or absent, proving where recovery stopped;
* ``critical_not_empty.<schema.table>``: tables the business cannot live without have rows.

Like every drdrill check it never raises for a failed outcome: each check becomes a `CheckResult`
and the GX validation results are kept as JSON evidence for the journal.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from drdrill.core.checks import CheckResult, Status

if TYPE_CHECKING:
    from great_expectations.datasource.fluent import PostgresDatasource

log = logging.getLogger(__name__)

# Airflow's default `allowed_run_id_pattern`. The canary query is handed to GX as SQL text (query
# assets take no bound parameters), so a run_id outside this set is refused rather than quoted.
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.~:+-]{1,250}$")
CANARY_KINDS = ("before", "after")

# What each canary outcome proves, and what to look at when it is not what was expected.
_CANARY_MEANING = {
    ("before", True): "first canary present: restore reached the ledger snapshot",
    ("before", False): "first canary absent: restore stopped before the ledger snapshot",
    ("after", True): "second canary present: restore replayed WAL written after the ledger",
    ("after", False): "second canary absent: recovery stopped at the PITR target",
}
_CANARY_FIX = {
    ("before", False): "The first canary must not exist in this restore: check that the right database "
                       "and backup were restored.",
    ("before", True): "The restore stopped too early or restored the wrong backup: check the recovery "
                      "target, the backup set used and that WAL up to the ledger snapshot was archived.",
    ("after", False): "Recovery replayed past the PITR target: check recovery_target_time/lsn and "
                      "recovery_target_inclusive in the restore configuration.",
    ("after", True): "WAL written after the ledger is missing from the restore: check WAL archiving "
                     "(pg_stat_archiver, archive_command) and that the restore targeted 'latest'.",
}

_PG = postgresql.dialect()
# A restored instance that is not up must fail the checks quickly, not hang the task.
_CONNECT_TIMEOUT_S = 30


@dataclass(frozen=True)
class CanaryExpectation:
    """One canary row the restored database must (present=True) or must not hold."""

    run_id: str
    kind: str  # "before" | "after"
    present: bool
    label: str | None = None  # the check's name is canary.<label> (default: canary.<kind>)
    meaning: str | None = None  # what the expected outcome proves (default: the ledger's own canaries')


@dataclass
class DataQualityReport:
    """Every data-quality result plus the GX evidence behind it."""

    results: list[CheckResult]
    gx_result: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable, kept with the journal

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.failed]


def list_user_tables(conn: sa.Connection, exclude_schemas: tuple[str, ...] = ()) -> dict[str, tuple[str, str]]:
    """User tables of the connected database, as ``{"schema.table": (schema, table)}``.

    Same definition as the ledger's (`drdrill.hooks.postgres.USER_TABLES_SQL`), so both sides list one set.
    """
    from drdrill.hooks.postgres import user_table_pairs

    raw = conn.connection.dbapi_connection
    return {f"{s}.{t}": (s, t) for s, t in user_table_pairs(raw, exclude_schemas)}


def validate_restore(*, sqlalchemy_url: str, expected_tables: list[str] | None,
                     expected_counts: dict[str, int] | None,
                     tolerances: dict[str, int], critical_tables: list[str],
                     canaries: list[CanaryExpectation], target: str,
                     exclude_schemas: tuple[str, ...] = (), min_counts: dict[str, int] | None = None
                     ) -> DataQualityReport:
    """Check a restored PostgreSQL database against the ledger; see the module docstring.

    ``expected_counts`` is None when the restore target has no ledger (a user-given PITR time):
    row counts are then skipped. ``expected_tables`` None skips the exact table-set check (the
    other checks still name missing tables). ``tolerances`` maps "schema.table" to the allowed
    absolute difference (default 0). ``min_counts`` maps "schema.table" to the fewest rows it
    may hold (a critical table must hold at least 1).
    """
    started = time.monotonic()
    results: list[CheckResult] = []
    evidence: dict[str, Any] = {}
    shown_url = _redact_url(sqlalchemy_url)

    # 1. tables_match, with plain SQL: it also tells the GX checks which tables exist, because GX
    # refuses to even build an asset for a missing table.
    try:
        found = _fetch_user_tables(sqlalchemy_url, tuple(exclude_schemas))
    except (sa.exc.SQLAlchemyError, psycopg.Error) as exc:
        msg = (f"could not list the tables of the restored database at {shown_url}: "
               f"{_redact(_first_line(exc), sqlalchemy_url)}. Expected a reachable database; check that "
               "the restored instance is running and accepts connections, then rerun the check.")
        return DataQualityReport([CheckResult("tables_match", Status.FAIL, msg, target)],
                                 {"error": msg, "elapsed_seconds": round(time.monotonic() - started, 3)})
    if expected_tables is not None:
        results.append(_tables_match(found, expected_tables, target))

    gx, gxe = _import_gx()
    # 2-4. Every check that counts a table's rows, grouped by table: GX counts each table once.
    counts: list[_CountCheck] = []
    if expected_counts is not None:
        counts += [_row_count(table, expected_counts[table], int(tolerances.get(table, 0)))
                   for table in sorted(expected_counts)]
    critical = [_at_least(table, 1, critical=True) for table in sorted(set(critical_tables))]
    minimums = [_at_least(table, int(n)) for table, n in sorted((min_counts or {}).items())]
    try:
        source = _RestoredSource(gx, sqlalchemy_url, found)
    except Exception as exc:  # noqa: BLE001 - GX raises its own, driver and pydantic errors here
        msg = (f"Great Expectations could not open the restored database at {shown_url}: "
               f"{_redact(_first_line(exc), sqlalchemy_url)}. Expected a PostgreSQL URL GX accepts "
               "(postgresql+psycopg://user@host:port/db); fix the URL and rerun the check.")
        results.append(CheckResult("great_expectations", Status.FAIL, msg, target))
        return DataQualityReport(results, {"error": msg, "elapsed_seconds": round(time.monotonic() - started, 3)})
    try:
        outcomes, canary_outcomes = _validate_all(gx, gxe, source, [*counts, *critical, *minimums], canaries,
                                                  evidence)
    finally:
        # GX keeps a pooled engine per datasource; close it so the restored server is left idle.
        source.close()

    # 2. row counts against the ledger, each within its table's tolerance.
    if expected_counts is None:
        results.append(CheckResult(
            "row_count", Status.SKIP,
            "row counts not checked: no ledger counts exist for this restore target (a user-given "
            "point in time has no snapshot of exact counts); tables, canaries and critical tables "
            "were still checked", target))
    results += [_count_result(check, source.tables, outcomes, target) for check in counts]
    # 3. canaries: a query asset per canary, counted by GX.
    results += [_canary(c, o, target) for c, o in zip(canaries, canary_outcomes, strict=True)]
    # 4. critical tables must not be empty; tables with a minimum must reach it.
    results += [_count_result(check, source.tables, outcomes, target) for check in [*critical, *minimums]]

    elapsed = round(time.monotonic() - started, 3)
    log.info("data quality of %s: %d checks, %d failed, %.2fs", target, len(results),
             sum(r.failed for r in results), elapsed)
    return DataQualityReport(results, {"great_expectations_version": gx.__version__, "target": target,
                                       "elapsed_seconds": elapsed, "validations": evidence})


# --- the four checks -------------------------------------------------------------------------


def _tables_match(found: dict[str, tuple[str, str]], expected_tables: list[str], target: str) -> CheckResult:
    expected = set(expected_tables)
    missing = sorted(expected - found.keys())
    unexpected = sorted(found.keys() - expected)
    details = {"missing": missing, "unexpected": unexpected}
    if not missing and not unexpected:
        return CheckResult("tables_match", Status.PASS, f"all {len(expected)} expected tables present, "
                           "no unexpected table", target, len(found), len(expected), details)
    parts = [f"missing {', '.join(missing)}" if missing else "",
             f"unexpected {', '.join(unexpected)}" if unexpected else ""]
    msg = (f"{'; '.join(p for p in parts if p)}: found {len(found)} user tables, expected exactly the "
           f"{len(expected)} the ledger listed. A missing table was lost by the backup or restore; an "
           "unexpected one means this is not the database the ledger described. Check the backup set and "
           "restore target, or update the expected table list if the schema changed on purpose.")
    return CheckResult("tables_match", Status.FAIL, msg, target, len(found), len(expected), details)


@dataclass(frozen=True)
class _CountCheck:
    """One bound on one table's row count; every check on a table is one expectation of one GX suite."""

    name: str
    table: str
    low: int
    high: int | None
    threshold: Any
    expected: str  # for the messages
    kind: str  # "table" | "critical table"
    fix: str


def _row_count(table: str, expected: int, tolerance: int) -> _CountCheck:
    low, high = max(expected - tolerance, 0), expected + tolerance
    return _CountCheck(f"row_count.{table}", table, low, high,
                       {"expected": expected, "tolerance": tolerance, "min": low, "max": high},
                       f"{expected} (tolerance {tolerance})", "table",
                       "The restore does not match the ledger snapshot: check that the recovery target equals the "
                       "ledger's snapshot, or set a tolerance for tables written while the ledger ran.")


def _at_least(table: str, least: int, *, critical: bool = False) -> _CountCheck:
    """At least ``least`` rows (a critical table: at least 1)."""
    return _CountCheck(f"critical_not_empty.{table}" if critical else f"min_rows.{table}", table, least, None,
                       least, f"at least {least}" + (" in a critical table" if critical else ""),
                       "critical table" if critical else "table",
                       "Check that the backup covers this table and that the restore completed; compare with the "
                       "primary's count.")


def _count_result(check: _CountCheck, tables: dict[str, tuple[str, str]], outcomes: dict[str, _Outcome],
                  target: str) -> CheckResult:
    """One table's row count as GX validated it; a missing table fails naming it."""
    if check.table not in tables:
        return CheckResult(check.name, Status.FAIL, f"{check.table}: {check.kind} missing from the restored "
                           f"database, expected {check.expected}; see tables_match", target, None, check.threshold)
    outcome = outcomes[check.name]
    if outcome.error:
        return _gx_error(check.name, check.table, outcome.error, target, check.threshold)
    what = f"{check.table}: found {outcome.observed} rows, expected {check.expected}"
    if outcome.success:
        return CheckResult(check.name, Status.PASS, what, target, outcome.observed, check.threshold)
    return CheckResult(check.name, Status.FAIL, f"{what}. {check.fix}", target, outcome.observed, check.threshold)


def _canary_refused(canary: CanaryExpectation) -> bool:
    return canary.kind not in CANARY_KINDS or not RUN_ID_PATTERN.match(canary.run_id)


def _canary(canary: CanaryExpectation, outcome: _Outcome | None, target: str) -> CheckResult:
    name = f"canary.{canary.label or canary.kind}"
    expected_rows = 1 if canary.present else 0
    where = f"run_id {canary.run_id!r}, kind {canary.kind!r}"
    if _canary_refused(canary):
        return CheckResult(name, Status.FAIL, f"refused to query the canary for {where}: expected kind in "
                           f"{CANARY_KINDS} and a run_id matching {RUN_ID_PATTERN.pattern}. Pass the "
                           "Airflow run id the ledger step wrote, unchanged.", target, None, expected_rows)
    assert outcome is not None  # validated unless refused above
    if outcome.error:
        return _gx_error(name, f"drdrill.canary ({where})", outcome.error, target, expected_rows)
    found_rows = outcome.observed
    what = f"found {found_rows} canary row(s) for {where}, expected {expected_rows}"
    if outcome.success:
        return CheckResult(name, Status.PASS, f"{canary.meaning or _CANARY_MEANING[(canary.kind, canary.present)]} "
                           f"({what})", target, found_rows, expected_rows)
    actual_present = bool(found_rows)
    if actual_present == canary.present:  # e.g. two rows where one was expected
        msg = (f"{what}: the ledger wrote this canary more than once or another drill reused the run_id. "
               "Use a fresh run id and rerun the ledger step.")
    else:
        msg = (f"{_CANARY_MEANING[(canary.kind, actual_present)]} ({what}). "
               f"{_CANARY_FIX[(canary.kind, canary.present)]}") if not canary.meaning else (
            f"expected: {canary.meaning}; {what}. The recovery did not stop at its target: check the recovery "
            f"target time, the backup set used and the WAL archive around it")
    return CheckResult(name, Status.FAIL, msg, target, found_rows, expected_rows)


def _gx_error(name: str, what: str, error: str, target: str, threshold: Any) -> CheckResult:
    return CheckResult(name, Status.FAIL, f"{what}: Great Expectations could not count the rows ({error}); "
                       "expected a count. Check the table is readable by the drill's database user and "
                       "see the GX evidence in the journal.", target, None, threshold)


# --- Great Expectations plumbing ------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    success: bool
    observed: int | None
    error: str = ""


class _RestoredSource:
    """The restored database as one GX data source: an asset per counted table and per canary query.

    The assets are added before the data source is registered with the context, then it is
    registered once: a data source that is already registered makes the context re-serialise its
    whole configuration (every asset so far) for each asset or batch definition added, which grows
    with the square of the number of tables (21 YAML dumps, 0.17 s, for the sandbox's 8 tables).
    Batches come from batch requests, which are not stored, rather than from batch definitions.
    """

    def __init__(self, gx: Any, url: str, tables: dict[str, tuple[str, str]]) -> None:
        from great_expectations.datasource.fluent import PostgresDatasource

        self.tables = tables
        self._url = url
        self._context = _gx_context(gx)
        self.datasource: PostgresDatasource = PostgresDatasource(
            name="restored", connection_string=url, kwargs={"connect_args": {"connect_timeout": _CONNECT_TIMEOUT_S}})
        self.datasource.test_connection(test_assets=False)
        # key (a table, or canary#N) -> its asset's name, or why the asset could not be built
        self._assets: dict[str, str | Exception] = {}

    def add_table(self, table: str) -> None:
        schema, relname = self.tables[table]
        name = f"table:{table}"
        try:
            if _quote(schema) == schema and _quote(relname) == relname:
                # GX 1.14+ deprecates schema_name in favour of one datasource per schema (schema in the
                # connection); one datasource for the whole database is simpler and still works.
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="`schema_name` is deprecated",
                                            category=DeprecationWarning)
                    self.datasource.add_table_asset(name=name, table_name=relname, schema_name=schema)
            else:
                # GX 1.24 lowercases schema names and leaves table names unquoted, so "MixedCase" or
                # reserved-word names break table assets; a query asset with properly quoted names does not.
                query = str(sa.select(sa.literal_column("*")).select_from(sa.table(relname, schema=schema))
                            .compile(dialect=_PG))
                self.datasource.add_query_asset(name=name, query=query)
            self._assets[table] = name
        except Exception as exc:  # noqa: BLE001 - GX wraps driver errors in many types
            self._assets[table] = exc

    def add_query(self, key: str, query: str) -> None:
        name = f"query:{key}"
        try:
            self.datasource.add_query_asset(name=name, query=query)
            self._assets[key] = name
        except Exception as exc:  # noqa: BLE001 - as above
            self._assets[key] = exc

    def register(self) -> None:
        """Hand the data source, with all its assets, to the context (one configuration save)."""
        try:
            self.datasource = self._context.data_sources.add_postgres(self.datasource)
        except Exception as exc:  # noqa: BLE001 - then no check can run: each says why
            self._assets = dict.fromkeys(self._assets, exc)

    def validate(self, key: str, suite: Any, checks: list[str], evidence: dict[str, Any]) -> dict[str, _Outcome]:
        """Validate ``suite`` on the asset ``key``: one outcome, and one piece of evidence, per check.

        Each expectation of the suite carries its check's name in ``meta["check"]``.
        """
        try:
            asset = self._assets[key]
            if isinstance(asset, Exception):
                raise asset
            data = self.datasource.get_asset(asset)
            result = data.get_batch(data.build_batch_request()).validate(suite).to_json_dict()
        except Exception as exc:  # noqa: BLE001 - GX wraps driver errors in many types
            error = _redact(f"{type(exc).__name__}: {_first_line(exc)}", self._url)
            for check in checks:
                evidence[check] = {"success": False, "error": error}
            return {check: _Outcome(False, None, error) for check in checks}
        out = {}
        for check in checks:
            mine = [r for r in result.get("results", [])
                    if ((r.get("expectation_config") or {}).get("meta") or {}).get("check") == check]
            ok = bool(mine) and all(r.get("success") for r in mine)
            evidence[check] = _strip_tracebacks({**result, "success": ok, "results": mine, "statistics": {
                "evaluated_expectations": len(mine), "successful_expectations": int(ok),
                "unsuccessful_expectations": int(not ok), "success_percent": 100.0 if ok else 0.0}})
            first = mine[0] if mine else {}
            error = _exception_message(first.get("exception_info"))
            out[check] = _Outcome(ok, (first.get("result") or {}).get("observed_value"),
                                  _redact(error, self._url) if error else "")
        return out

    def close(self) -> None:
        try:
            self.datasource.get_engine().dispose()
        except Exception:  # closing is best effort: the results are already taken
            log.debug("could not dispose the GX engine", exc_info=True)


def _validate_all(gx: Any, gxe: Any, source: _RestoredSource, counts: list[_CountCheck],
                  canaries: list[CanaryExpectation], evidence: dict[str, Any]
                  ) -> tuple[dict[str, _Outcome], list[_Outcome | None]]:
    """Every count check (one GX validation, so one ``count(*)``, per table) and every canary query."""
    by_table: dict[str, list[_CountCheck]] = {}
    for check in counts:
        if check.table in source.tables:
            by_table.setdefault(check.table, []).append(check)
    for table in by_table:
        source.add_table(table)
    queried = [(f"canary#{i}", c) for i, c in enumerate(canaries) if not _canary_refused(c)]
    for key, canary in queried:
        source.add_query(key, _canary_sql(canary))
    source.register()

    outcomes: dict[str, _Outcome] = {}
    for table, checks in by_table.items():
        suite = gx.ExpectationSuite(name=f"drdrill.row_counts.{table}")
        for check in checks:
            suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(
                min_value=check.low, max_value=check.high, meta={"check": check.name}))
        outcomes.update(source.validate(table, suite, [c.name for c in checks], evidence))
    canary_outcomes: dict[str, _Outcome] = {}
    for key, canary in queried:
        name = f"canary.{canary.kind}"
        suite = gx.ExpectationSuite(name="drdrill.canary")
        suite.add_expectation(gxe.ExpectTableRowCountToEqual(value=1 if canary.present else 0, meta={"check": name}))
        canary_outcomes[key] = source.validate(key, suite, [name], evidence)[name]
    return outcomes, [canary_outcomes.get(f"canary#{i}") for i in range(len(canaries))]


# GX imports scipy.stats and altair (with narwhals) at module level for one expectation that
# these checks never use (KL divergence) and its charts: 0.7 s of its 2.3 s import here. While GX
# imports, they are only bound, and run on first use: a check that needs them still gets them.
# (boto3 and pandas were tried too: boto3 gains nothing measurable, pandas must load eagerly.)
_LOADED_ON_FIRST_USE = ("scipy", "altair")
_gx_loaded = False


class _LoadOnFirstUse(importlib.abc.MetaPathFinder):
    """Finds the packages above (and their modules) as usual, but with a loader that runs a module
    only when one of its attributes is first read (`importlib.util.LazyLoader`)."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name.partition(".")[0] not in _LOADED_ON_FIRST_USE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if isinstance(spec.loader, importlib.machinery.SourceFileLoader):
                    spec.loader = importlib.util.LazyLoader(spec.loader)
                return spec
        return None


def load_gx() -> float:
    """Import Great Expectations, once per process: the seconds this call took (0.0 once loaded).

    The import is a fixed cost of the process: 1.5 s here with the packages above left for later,
    2.3 s without that. `RowCountCheckOperator` pays it before its step starts and reports it
    apart; any other caller pays it on first use.
    """
    global _gx_loaded
    if _gx_loaded:
        return 0.0
    t0 = time.monotonic()
    # No telemetry from a DR drill, unless the operator explicitly asked for it.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # GX logs hundreds of lines at INFO while it imports and builds assets, which would drown
    # the drill's own task log: quiet it before the import.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    finder = _LoadOnFirstUse()
    sys.meta_path.insert(0, finder)
    try:
        import great_expectations  # noqa: F401
        import great_expectations.expectations  # noqa: F401
    finally:
        sys.meta_path.remove(finder)
    _gx_loaded = True
    return time.monotonic() - t0


def _import_gx() -> tuple[Any, Any]:
    """GX and its expectations, imported on first use (`load_gx`)."""
    load_gx()
    import great_expectations as gx
    import great_expectations.expectations as gxe

    return gx, gxe


def _gx_context(gx: Any) -> Any:
    """An ephemeral context (in memory) without Data Docs or progress bars: the JSON results are the evidence."""
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    return gx.get_context(mode="ephemeral", project_config=DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        # tqdm bars are written to stderr for every validation and garble Airflow task logs.
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False)))


def _canary_sql(canary: CanaryExpectation) -> str:
    """The canary query with SQLAlchemy-escaped literals (run_id is also pattern-checked upstream)."""
    table = sa.table("canary", sa.column("id"), sa.column("run_id"), sa.column("kind"), schema="drdrill")
    query = sa.select(table.c.id).where(table.c.run_id == canary.run_id, table.c.kind == canary.kind)
    return str(query.compile(dialect=_PG, compile_kwargs={"literal_binds": True}))


def _fetch_user_tables(url: str, exclude_schemas: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    engine = sa.create_engine(url, connect_args={"connect_timeout": _CONNECT_TIMEOUT_S}, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return list_user_tables(conn, exclude_schemas)
    finally:
        engine.dispose()


def _quote(identifier: str) -> str:
    return _PG.identifier_preparer.quote(identifier)


def _exception_message(info: dict[str, Any] | None) -> str:
    """GX nests exception info per metric when a metric failed; return the first message found."""
    if not info:
        return ""
    if "raised_exception" in info:
        return _first_line(info.get("exception_message") or "") if info["raised_exception"] else ""
    for value in info.values():
        if isinstance(value, dict) and (msg := _exception_message(value)):
            return msg
    return ""


def _strip_tracebacks(value: Any) -> Any:
    """Drop GX's full Python tracebacks from the evidence: the message is kept, the stack is noise."""
    if isinstance(value, dict):
        return {k: None if k == "exception_traceback" else _strip_tracebacks(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_tracebacks(v) for v in value]
    return value


def _first_line(exc: BaseException | str) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _redact_url(url: str) -> str:
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable database URL>"


def _redact(text: str, url: str) -> str:
    """Never let the database password reach a log line or the journal."""
    try:
        password = sa.make_url(url).password
    except sa.exc.ArgumentError:
        return text
    return text.replace(str(password), "***") if password else text
