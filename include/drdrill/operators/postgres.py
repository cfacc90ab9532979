"""Promote a PostgreSQL standby: the runbook's ``SELECT pg_promote()`` as an operator."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from drdrill.operators.base import DrillOperator, estate_cluster, truthy


class PostgresPromoteOperator(DrillOperator):
    """``SELECT pg_promote(wait => true)`` on a standby; refuses a server that is already primary.

    :param host: the standby's address
    :param port: the standby's port
    :param postgres_conn_id: Airflow Postgres connection with the login and password (a superuser,
        or a role granted EXECUTE on ``pg_promote``)
    :param cluster: an estate cluster instead of host/port/connection
    :param node: with ``cluster``: the node to promote
    :param wait_seconds: how long pg_promote waits for the promotion (default: the estate's
        ``failover.promote_timeout_seconds``, else 60)
    :param dry_run: log what would happen and return the target without touching it

    Returns ``{"host", "port", "promoted_at", "seconds"}`` (and ``node`` with ``cluster``); pass it
    to `PostgresPromotedSensor` (``target=``) to wait until the server accepts writes.

    Usage::

        PostgresPromoteOperator(task_id="promote", host="10.0.2.15", port=5432, postgres_conn_id="pg_dr")
    """

    template_fields: Sequence[str] = ("host", "port", "postgres_conn_id", "cluster", "node", "dry_run")

    def __init__(self, *, host: str | None = None, port: int | str | None = None, postgres_conn_id: str | None = None,
                 cluster: str | None = None, node: str | None = None, wait_seconds: int | None = None,
                 dry_run: Any = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host
        self.port = port
        self.postgres_conn_id = postgres_conn_id
        self.cluster = cluster
        self.node = node
        self.wait_seconds = wait_seconds
        self.dry_run = dry_run

    def run(self, context: Any) -> dict[str, Any]:
        from drdrill.hooks.postgres import PostgresNodeHook

        wait = self.wait_seconds
        if self.cluster:
            c = estate_cluster(self.cluster)
            n = c.node(str(self.node or ""))
            hook = PostgresNodeHook.for_node(c, n.host, n.port, "postgres")
            # conn_id and user: what a PostgresPromotedSensor on this output logs in with
            target: dict[str, Any] = {"host": n.host, "port": n.port, "node": n.name,
                                      "conn_id": hook.source_conn_id, "user": c.postgres.user}
            if wait is None and c.failover is not None:
                wait = int(c.failover.promote_timeout_seconds)
        else:
            if not self.host or not self.port:
                raise ValueError("give host and port of the standby to promote, or cluster and node")
            target = {"host": self.host, "port": int(self.port), "conn_id": self.postgres_conn_id}
            hook = PostgresNodeHook(host=self.host, port=int(self.port), database="postgres",
                                    postgres_conn_id=self.postgres_conn_id)
        if truthy(self.dry_run):
            self.log.info("[DRY RUN] would promote %s with pg_promote(wait => true)", target)
            return {**target, "dry_run": True, "promoted_at": time.time()}
        rec = hook.promote(wait_seconds=int(wait or 60))
        return {**target, "promoted_at": rec["promoted_at"], "seconds": rec["seconds"]}
