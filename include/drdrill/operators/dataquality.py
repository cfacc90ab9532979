"""Data quality of a (restored) PostgreSQL database with Great Expectations 1.x.

`RowCountCheckOperator` proves what a restore must hold: the exact set of user tables, each
table's row count within a tolerance, critical tables not empty, and canary rows present or
absent (where recovery stopped). Every check is a result with what was found and expected; the
Great Expectations validation results are returned as evidence (``gx_result``), the seconds the
checks took as ``seconds`` and the seconds loading Great Expectations took before them (once per
process) as ``gx_load_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from drdrill.operators.base import DrillOperator, estate_cluster, truthy


class RowCountCheckOperator(DrillOperator):
    """Row counts, tables and canaries of a PostgreSQL database, checked with Great Expectations.

    :param target: where the database is, e.g. `PgBackRestRestoreOperator`'s output (``host``, ``port``)
    :param host: or the host directly (wins over ``target``)
    :param port: and the port
    :param database: database to check (default: the cluster's, the connection's schema, or ``postgres``)
    :param postgres_conn_id: Airflow Postgres connection with the login and password
    :param cluster: an estate cluster: user, database, connection, tolerances, critical tables and
        excluded schemas from its ``postgres`` and ``restore_test`` sections
    :param expected_counts: ``{"schema.table": rows}`` each table must hold (within its tolerance)
    :param tolerances: ``{"schema.table": rows}`` allowed difference (default 0)
    :param expected_tables: the exact set of user tables the database must have (default: not checked)
    :param critical_tables: tables that must not be empty
    :param min_counts: ``{"schema.table": rows}`` the fewest rows each table may hold
    :param canaries: ``[{"run_id": ..., "kind": "before"|"after", "present": bool}]`` rows of
        ``drdrill.canary`` that must be present or absent (optional ``label``: the check is named
        ``canary.<label>``; ``meaning``: what the expected outcome proves, for the message)
    :param exclude_schemas: schemas whose tables are ignored
    :param fail_on_mismatch: fail the task when a check fails (default); else only return the results
    :param dry_run: return at once without connecting

    Usage::

        RowCountCheckOperator(task_id="row_counts", target=restore.output, postgres_conn_id="postgres_dr",
                              database="app", min_counts={"app.orders": 1000},
                              critical_tables=["app.customers"])
    """

    template_fields: Sequence[str] = ("target", "host", "port", "database", "postgres_conn_id", "cluster",
                                      "expected_counts", "expected_tables", "min_counts", "canaries", "dry_run")

    def __init__(self, *, target: Any = None, host: str | None = None, port: int | str | None = None,
                 database: str | None = None, postgres_conn_id: str | None = None, cluster: str | None = None,
                 expected_counts: dict[str, int] | None = None, tolerances: dict[str, int] | None = None,
                 expected_tables: list[str] | None = None, critical_tables: list[str] | None = None,
                 min_counts: dict[str, int] | None = None,
                 canaries: list[dict[str, Any]] | None = None, exclude_schemas: list[str] | None = None,
                 fail_on_mismatch: bool = True, dry_run: Any = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target
        self.host = host
        self.port = port
        self.database = database
        self.postgres_conn_id = postgres_conn_id
        self.cluster = cluster
        self.expected_counts = expected_counts
        self.tolerances = tolerances
        self.expected_tables = expected_tables
        self.critical_tables = critical_tables
        self.min_counts = min_counts
        self.canaries = canaries
        self.exclude_schemas = exclude_schemas
        self.fail_on_mismatch = fail_on_mismatch
        self.dry_run = dry_run

    def execute(self, context: Any) -> Any:
        # Loading Great Expectations (1.5 s) is a fixed cost of the process, like Airflow's own
        # start-up, not part of checking a database: it is paid here, once per process and only in
        # a task that runs the checks, before the step (and its clock) starts, and returned apart
        # as ``gx_load_seconds``.
        self._gx_load_seconds = 0.0
        if not truthy(self.dry_run):
            from drdrill.drills.dataquality import load_gx

            try:
                self._gx_load_seconds = round(load_gx(), 3)
            except Exception as e:  # noqa: BLE001 - the step imports it again, fails and records why
                self.log.warning("could not load Great Expectations: %s", e)
        return super().execute(context)

    def run(self, context: Any) -> dict[str, Any]:
        from drdrill.core.checks import summarize
        from drdrill.core.errors import DrillFailed
        from drdrill.drills.dataquality import CanaryExpectation, validate_restore
        from drdrill.hooks.postgres import PostgresNodeHook

        if truthy(self.dry_run):
            self.log.info("[DRY RUN] would validate tables, row counts and canaries of %s", self.target or self.host)
            return {"results": [], "seconds": 0.0, "gx_load_seconds": 0.0, "gx_result": {}}
        t = self.target or {}
        host, port = self.host or t.get("host"), self.port or t.get("port")
        if not host or not port:
            raise ValueError(f"no database to check: give target (with host and port) or host and port, got "
                             f"target={self.target!r}")
        c = estate_cluster(self.cluster) if self.cluster else None
        if t.get("dir"):  # a scratch server this run still uses: extend its lease (on its host)
            from drdrill.core import scratch
            from drdrill.core.runner import runner_for

            scratch.renew(t["dir"], runner_for(c.backup_runner) if c is not None else None)
        rt = c.restore_test if c is not None else None
        if c is not None:
            hook = PostgresNodeHook.for_node(c, host, int(port), self.database or t.get("database"))
            name = f"{c.name}/scratch:{port}"
        else:
            hook = PostgresNodeHook(host=host, port=int(port), database=self.database or t.get("database"),
                                    postgres_conn_id=self.postgres_conn_id)
            name = f"{host}:{port}"
        t0 = time.monotonic()
        report = validate_restore(
            sqlalchemy_url=hook.sqlalchemy_url_string(), expected_tables=self.expected_tables,
            expected_counts=self.expected_counts,
            tolerances=dict(self.tolerances if self.tolerances is not None else
                            (rt.row_count_tolerance if rt else {})),
            critical_tables=list(self.critical_tables if self.critical_tables is not None else
                                 (rt.critical_tables if rt else [])),
            canaries=[CanaryExpectation(str(x["run_id"]), str(x["kind"]), bool(x["present"]), x.get("label"),
                                        x.get("meaning")) for x in (self.canaries or [])],
            min_counts={k: int(v) for k, v in (self.min_counts or {}).items()},
            target=name, exclude_schemas=tuple(self.exclude_schemas if self.exclude_schemas is not None else
                                               (rt.exclude_schemas if rt else ())))
        secs = time.monotonic() - t0
        for r in report.results:
            (self.log.warning if r.failed else self.log.info)("%s", r.line())
        out = {"results": [r.to_dict() for r in report.results], "seconds": round(secs, 3),
               "gx_load_seconds": getattr(self, "_gx_load_seconds", 0.0), "gx_result": report.gx_result}
        if report.failed and self.fail_on_mismatch:
            raise DrillFailed(f"data quality of {name}: {len(report.failed)} failed check(s)\n"
                              f"{summarize(report.results)}", results=out["results"])
        return out
