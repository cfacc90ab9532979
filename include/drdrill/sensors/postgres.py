"""Deferrable sensor: wait until a PostgreSQL server has finished recovery and accepts writes."""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk import BaseSensorOperator

from drdrill.core.journal import record_step
from drdrill.triggers.postgres import PostgresPromotedTrigger


class PostgresPromotedSensor(BaseSensorOperator):
    """Pokes once, then defers to `PostgresPromotedTrigger` until the server is promoted.

    Returns ``{"ready_at": epoch seconds, ...}`` so the drill can measure replay/promote time.

    :param target: dict with ``host`` and ``port`` (templated; usually the promote step's or the scratch's
        XCom), and the ``conn_id`` (and ``user``) to log in with when the step that made it knows them
    :param user: database user when neither the target nor the connection names one
    :param dbname: database name
    :param conn_id: Airflow Postgres connection (login, password, TLS options) when the target names none
    :param dry_run: when true, return at once without probing (templated)
    :param wait_timeout: seconds to wait for promotion before failing
    """

    template_fields = ("target", "dry_run")

    def __init__(self, *, target: Any, user: str = "postgres", dbname: str = "postgres",
                 conn_id: str | None = None, dry_run: Any = False, wait_timeout: float = 600.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target
        self.user = user
        self.dbname = dbname
        self.conn_id = conn_id
        self.dry_run = dry_run
        self.wait_timeout = wait_timeout

    def _trigger(self, started_at: float | None = None) -> PostgresPromotedTrigger:
        return PostgresPromotedTrigger(host=self.target["host"], port=int(self.target["port"]),
                                       user=self.target.get("user") or self.user, dbname=self.dbname,
                                       conn_id=self.target.get("conn_id") or self.conn_id, timeout=self.wait_timeout,
                                       started_at=started_at)

    def _record(self, context: Any, status: str, started: float, error: str | None = None) -> None:
        record_step(context, self.task_id, status, started, error)

    def execute(self, context: Any) -> Any:
        started = time.time()
        if str(self.dry_run).lower() in ("true", "1"):
            self.log.info("[DRY RUN] would wait for %s to finish recovery", self.target)
            self._record(context, "success", started)
            return {"ready_at": started, "dry_run": True}
        import asyncio

        trig = self._trigger(started)
        ok, seen = asyncio.run(trig.probe())
        if ok:
            self._record(context, "success", started)
            return {"ready_at": time.time(), "host": trig.host, "port": trig.port, "message": seen}
        self.log.info("%s:%s %s; deferring until promoted (timeout %.0fs)", trig.host, trig.port, seen,
                      self.wait_timeout)
        self.defer(trigger=trig, method_name="execute_complete", kwargs={"started": started})

    def execute_complete(self, context: Any, event: dict[str, Any], started: float | None = None) -> Any:
        # Airflow may resume without the defer kwargs; the trigger carries the start time too.
        started = started or event.get("started_at") or time.time()
        if event.get("status") != "success":
            self._record(context, "failed", started, event.get("message"))
            from drdrill.core.errors import DrillError

            raise DrillError(event.get("message", "server was not promoted"))
        self.log.info("%s:%s promoted", event.get("host"), event.get("port"))
        self._record(context, "success", started)
        return event


class PostgresDownSensor(BaseSensorOperator):
    """The runbook's trigger criteria: the primary failed health checks for N consecutive seconds.

    Defers to `PostgresDownTrigger` (no worker slot held while waiting). ``plan`` is the
    failover preflight's XCom; ``skip`` (templated) returns at once when the on-call engineer
    has already confirmed the outage.
    """

    template_fields = ("plan", "skip", "wait_timeout")

    def __init__(self, *, plan: Any, skip: Any = False, wait_timeout: Any = 3600, user: str = "postgres",
                 dbname: str = "postgres", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.skip = skip
        self.wait_timeout = wait_timeout
        self.user = user
        self.dbname = dbname

    def execute(self, context: Any) -> Any:
        from drdrill.triggers.postgres import PostgresDownTrigger

        started = time.time()
        p = self.plan
        if str(self.skip).lower() in ("true", "1") or p.get("dry_run"):
            why = "dry run" if p.get("dry_run") else "skip_health_wait: the on-call engineer confirmed the outage"
            self.log.info("not waiting for the trigger criteria (%s)", why)
            record_step(context, self.task_id, "success", started)
            return {"skipped": True, "reason": why, "confirmed_at": started}
        trig = PostgresDownTrigger(host=p["primary_addr"]["host"], port=int(p["primary_addr"]["port"]),
                                   user=self.user, dbname=self.dbname, conn_id=p.get("conn_id"),
                                   timeout=float(self.wait_timeout), failed_for=p["health_check_failed_seconds"],
                                   poll_interval=p["health_check_interval_seconds"], started_at=started)
        self.log.info("waiting until %s:%s fails every health check for %.0fs (check every %.0fs, give up "
                      "after %.0fs)", trig.host, trig.port, trig.failed_for, trig.poll_interval, trig.timeout)
        self.defer(trigger=trig, method_name="execute_complete", kwargs={"started": started})

    def execute_complete(self, context: Any, event: dict[str, Any], started: float | None = None) -> Any:
        started = started or event.get("started_at") or time.time()
        if event.get("status") != "success":
            record_step(context, self.task_id, "failed", started, event.get("message"))
            from drdrill.core.errors import DrillError

            raise DrillError(event.get("message", "trigger criteria not met"))
        self.log.warning("%s:%s failed its health checks since %s: trigger criteria met", event.get("host"),
                         event.get("port"), event.get("failing_since"))
        record_step(context, self.task_id, "success", started)
        return event
