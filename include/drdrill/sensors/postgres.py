"""Deferrable sensor: wait until a PostgreSQL server has finished recovery and accepts writes."""

from __future__ import annotations

import time
from datetime import UTC
from typing import Any

from airflow.sdk import BaseSensorOperator

from drdrill.journal import STEP_KEY
from drdrill.triggers.postgres import PostgresPromotedTrigger


class PostgresPromotedSensor(BaseSensorOperator):
    """Pokes once, then defers to `PostgresPromotedTrigger` until the server is promoted.

    Returns ``{"ready_at": epoch seconds, ...}`` so the drill can measure replay/promote time.

    :param target: dict with ``host`` and ``port`` (templated; usually the scratch XCom)
    :param user: database user
    :param dbname: database name
    :param conn_id: optional Airflow connection holding the password
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
        return PostgresPromotedTrigger(host=self.target["host"], port=int(self.target["port"]), user=self.user,
                                       dbname=self.dbname, conn_id=self.conn_id, timeout=self.wait_timeout,
                                       started_at=started_at)

    def _record(self, context: Any, status: str, started: float, error: str | None = None) -> None:
        from datetime import datetime

        def iso(t: float) -> str:
            return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")

        rec = {"task_id": self.task_id, "map_index": -1, "status": status, "started_at": iso(started),
               "ended_at": iso(time.time()), "seconds": round(time.time() - started, 3)}
        if error:
            rec["error"] = error
        context["ti"].xcom_push(key=STEP_KEY, value=rec)

    def execute(self, context: Any) -> Any:
        started = time.time()
        if str(self.dry_run).lower() in ("true", "1"):
            self.log.info("[DRY RUN] would wait for %s to finish recovery", self.target)
            self._record(context, "success", started)
            return {"ready_at": started, "dry_run": True}
        import asyncio

        trig = self._trigger(started)
        ok, seen = asyncio.run(trig.probe(None if not self.conn_id else asyncio.run(trig._password())))
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
            from drdrill.errors import DrillError

            raise DrillError(event.get("message", "server was not promoted"))
        self.log.info("%s:%s promoted", event.get("host"), event.get("port"))
        self._record(context, "success", started)
        return event
