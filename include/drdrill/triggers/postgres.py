"""Triggers that wait, in the triggerer, for a PostgreSQL server to reach a state.

Lives in an importable package (not ``dags/``) because the triggerer imports it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from drdrill.core.pgerrors import REFUSED_US, refusal


def _refused_message(host: str, port: int, seen: str, conn_id: str | None) -> str:
    return (f"{host}:{port} is {seen}. An authentication or permission failure is not an outage and never counts "
            f"as the server being down: fix the credentials (connection {conn_id or '-'}), pg_hba.conf or the "
            f"role's grants")


class PostgresPromotedTrigger(BaseTrigger):
    """Fires when the server at host:port accepts connections and is out of recovery.

    :param host: server host
    :param port: server port
    :param user: database user
    :param dbname: database to connect to
    :param conn_id: Airflow Postgres connection (login, password, sslmode...; resolved in ``run`` through
        `PostgresNodeHook`, never serialised); ``user`` is the login when it names none
    :param timeout: seconds before giving up with an error event
    :param poll_interval: seconds between probes
    :param payload: returned as is in the events (what the deferring task needs to resume: Airflow
        does not always hand the defer kwargs back)
    """

    def __init__(self, *, host: str, port: int, user: str, dbname: str, conn_id: str | None = None,
                 timeout: float = 600.0, poll_interval: float = 0.1, started_at: float | None = None,
                 down_grace: float = 30.0, payload: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.host = host
        self.port = int(port)
        self.user = user
        self.dbname = dbname
        self.conn_id = conn_id
        self.timeout = float(timeout)
        self.poll_interval = float(poll_interval)
        # A server in recovery answers "starting up"; one that refuses connections this long is dead.
        self.down_grace = float(down_grace)
        # Kept across triggerer restarts so the timeout counts from the first deferral.
        self.started_at = started_at if started_at is not None else time.time()
        self.payload = payload

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("drdrill.triggers.postgres.PostgresPromotedTrigger", {
            "host": self.host, "port": self.port, "user": self.user, "dbname": self.dbname,
            "conn_id": self.conn_id, "timeout": self.timeout, "poll_interval": self.poll_interval,
            "started_at": self.started_at, "down_grace": self.down_grace, "payload": self.payload})

    def connect_kwargs(self) -> dict[str, Any]:
        """psycopg arguments through `PostgresNodeHook` (login, password, sslmode... of ``conn_id``).

        Blocking (reads the connection): call it in a thread. Never logged, never serialised.
        """
        from drdrill.hooks.postgres import PostgresNodeHook

        kw = PostgresNodeHook(host=self.host, port=self.port, database=self.dbname, user=self.user,
                              postgres_conn_id=self.conn_id, connect_timeout=2).connect_kwargs()
        kw.update(autocommit=True, application_name="drdrill-trigger")
        return kw

    async def _connect_kwargs(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.connect_kwargs)

    async def probe(self, kwargs: dict[str, Any] | None = None) -> tuple[bool, str]:
        """(promoted and accepting connections, what was seen). ``kwargs``: from `connect_kwargs`."""
        import psycopg

        if kwargs is None:
            kwargs = await self._connect_kwargs()
        try:
            conn = await psycopg.AsyncConnection.connect(**kwargs)
        except psycopg.Error as e:
            text = " ".join(str(e).split())
            why = refusal(e)
            if why:  # the server answered: it is up, and refuses us
                return False, f"{REFUSED_US}{why}: {text}"
            if "refused" in text or "No such file" in text:
                return False, f"not running (connection refused): {text}"
            return False, f"not accepting connections: {text}"
        async with conn:
            cur = await conn.execute("SELECT pg_is_in_recovery()")
            row = await cur.fetchone()
        return (not row[0]), ("promoted" if not row[0] else "still in recovery")

    async def run(self) -> AsyncIterator[TriggerEvent]:
        kwargs = await self._connect_kwargs()
        seen = ""
        down_since: float | None = None
        while True:
            ok, seen = await self.probe(kwargs)
            if seen.startswith(REFUSED_US):
                yield TriggerEvent({"status": "error", "host": self.host, "port": self.port, "payload": self.payload,
                                    "message": _refused_message(self.host, self.port, seen, self.conn_id)})
                return
            refused = seen.startswith("not running")
            down_since = (down_since or time.time()) if refused else None
            if down_since and time.time() - down_since > self.down_grace:
                yield TriggerEvent({"status": "error", "host": self.host, "port": self.port, "payload": self.payload,
                                    "message": f"{self.host}:{self.port} is not running: it refused connections "
                                               f"for {self.down_grace:.0f}s ({seen}); the server probably stopped "
                                               f"during recovery: read its log"})
                return
            if ok:
                yield TriggerEvent({"status": "success", "ready_at": time.time(), "started_at": self.started_at,
                                    "host": self.host, "port": self.port, "message": seen, "payload": self.payload})
                return
            if time.time() - self.started_at > self.timeout:
                yield TriggerEvent({"status": "error", "host": self.host, "port": self.port, "payload": self.payload,
                                    "message": f"{self.host}:{self.port} not promoted after {self.timeout:.0f}s; "
                                               f"last seen: {seen}"})
                return
            await asyncio.sleep(self.poll_interval)


class PostgresDownTrigger(PostgresPromotedTrigger):
    """Fires when the server has failed every health check for ``failed_for`` consecutive seconds.

    The runbook's trigger criterion ("primary fails health checks for >2 consecutive minutes"):
    one successful check resets the count. Gives up with an error event after ``timeout``
    (the primary stayed healthy: no failover).
    """

    def __init__(self, *, failed_for: float, **kwargs: Any) -> None:
        kwargs.setdefault("poll_interval", 10.0)
        super().__init__(**kwargs)
        self.failed_for = float(failed_for)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kw = super().serialize()
        kw.pop("down_grace", None)
        kw.pop("payload", None)
        return ("drdrill.triggers.postgres.PostgresDownTrigger", {**kw, "failed_for": self.failed_for})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        kwargs = await self._connect_kwargs()
        failing_since: float | None = None
        checks = failures = 0
        while True:
            _, seen = await self.probe(kwargs)
            checks += 1
            if seen.startswith(REFUSED_US):  # up: not an outage, and no failover may follow from it
                yield TriggerEvent({"status": "error", "host": self.host, "port": self.port,
                                    "started_at": self.started_at, "checks": checks, "failures": failures,
                                    "message": _refused_message(self.host, self.port, seen, self.conn_id)
                                    + "; the failover criterion is not met"})
                return
            healthy = not seen.startswith("not ")
            if healthy:
                failing_since = None
            else:
                failures += 1
                failing_since = failing_since or time.time()
                if time.time() - failing_since >= self.failed_for:
                    yield TriggerEvent({"status": "success", "host": self.host, "port": self.port,
                                        "started_at": self.started_at,
                                        "failing_since": failing_since, "confirmed_at": time.time(),
                                        "checks": checks, "failures": failures, "message": seen})
                    return
            if time.time() - self.started_at > self.timeout:
                yield TriggerEvent({"status": "error", "host": self.host, "port": self.port,
                                    "started_at": self.started_at,
                                    "message": f"{self.host}:{self.port} did not fail its health checks for "
                                               f"{self.failed_for:.0f} consecutive seconds within {self.timeout:.0f}s "
                                               f"(last check: {seen}); the trigger criteria are not met, so no "
                                               f"failover. If the on-call engineer confirmed the outage, run "
                                               f"again with skip_health_wait."})
                return
            await asyncio.sleep(self.poll_interval)
