"""Restore a pgBackRest backup into a scratch PostgreSQL server, and tear that server down.

`PgBackRestRestoreOperator` creates a tagged scratch directory (or uses one a setup task made),
restores the chosen repo (latest, or a point in time) with ``--archive-mode=off``, starts the
copy on its own configuration (port, socket, pg_hba.conf letting only the drills' role in by
password, small memory, archiving off; the primary's config files are set aside), and defers
until it has finished recovery and accepts writes. It returns where the copy listens and how
long each part took. If anything fails after it created the directory, it stops the server and
removes the directory before failing.
`ScratchServerTeardownOperator` removes the scratch server afterwards: use it as the teardown
of the restore, so it runs whatever happens in between.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drdrill.operators.base import DrillOperator, estate_cluster, truthy

DEFAULT_BIN_DIR = "/usr/lib/postgresql/15/bin"
# How often the worker asks the restored copy whether it is promoted, before deferring: a probe
# is one local connection attempt (under a millisecond when refused), and every interval is
# waited for half on average once the copy is ready.
POKE_INTERVAL_SECONDS = 0.05


class _Place:
    """Where the scratch server lives and how commands reach it (estate cluster or arguments)."""

    def __init__(self, op: Any) -> None:
        from drdrill.core.estate import RunnerSpec
        from drdrill.core.runner import runner_for
        from drdrill.hooks.pgbackrest import PgBackRestHook

        self.cluster = estate_cluster(op.cluster) if op.cluster else None
        if self.cluster is not None:
            c = self.cluster
            self.backrest = PgBackRestHook.for_cluster(c)  # the backup host's runner (Cluster.backup_runner)
            self.bin_dir, self.run_as = Path(c.postgres.bin_dir), self.backrest.runner.user
            self.user, self.database, self.conn_id = c.postgres.user, c.postgres.database, c.postgres.conn_id
        else:
            self.backrest = PgBackRestHook(op.pgbackrest_conn_id, stanza=op.stanza) if op.pgbackrest_conn_id or \
                op.stanza else None
            self.bin_dir = Path(op.pg_bin_dir or DEFAULT_BIN_DIR)
            self.run_as = self.backrest.runner.run_as if self.backrest else op.run_as
            # The teardown has no probe: it never connects to the server it removes.
            self.user = getattr(op, "user", "postgres")
            self.database = getattr(op, "database", "postgres")
            self.conn_id = getattr(op, "postgres_conn_id", None) or None
        self.runner = self.backrest.runner if self.backrest else runner_for(RunnerSpec(kind="local",
                                                                                       run_as=self.run_as))

    def login(self) -> str:
        """The role the drills log in as on the copy: the connection's login, else ``user``."""
        if self.conn_id:
            from airflow.sdk import BaseHook

            return BaseHook.get_connection(self.conn_id).login or self.user
        return self.user


class PgBackRestRestoreOperator(DrillOperator):
    """Restore a backup into an isolated scratch server and wait until it accepts writes.

    :param repo: pgBackRest repo to restore from (1, 2, ...)
    :param target_time: point in time to recover to (ISO 8601 with a zone); empty: end of the archive
    :param target_timeline: recover along this timeline (the primary's); empty: the newest in the repo, which
        after an abandoned promotion (a failover rolled back) is that branch, not the primary's
    :param stanza: the stanza (or ``stanza`` in the pgbackrest connection's extra)
    :param pgbackrest_conn_id: Airflow connection of type ``pgbackrest`` (run-as user, stanza, config)
    :param cluster: an estate cluster instead: stanza, runner, binaries, user and scratch settings
    :param scratch: a scratch allocated by an upstream setup task (dict with run_id, dir, port, host);
        when given, this operator neither creates nor removes it
    :param scratch_root: where to create ``<root>/<run id>/`` (default: the estate's scratch.root)
    :param scratch_port: the copy's port (default: the first free one of ``port_range``)
    :param port_range: ports to choose from, default 55500-55599
    :param host: address the copy listens on (default 127.0.0.1)
    :param pg_bin_dir: PostgreSQL binaries (default /usr/lib/postgresql/15/bin)
    :param run_as: OS user the copy runs as, without a pgbackrest connection (its login otherwise)
    :param user: database user the readiness probe connects as (default ``postgres``)
    :param database: database of the readiness probe (default ``postgres``)
    :param postgres_conn_id: Airflow Postgres connection holding that user's password, if any
    :param wait_timeout: seconds to wait for recovery to finish before failing
    :param poke_seconds: how long to wait in the worker before deferring to the triggerer (default 5)
    :param dry_run: walk through without restoring or starting anything
    :param check_kill_switch: read drdrill's kill switch (the Airflow Variable ``drdrill_kill_switch``,
        `drdrill.core.killswitch`) right before the restore and refuse, creating nothing, while it is
        engaged or cannot be read (default True)

    Returns ``{"host", "port", "dir", "run_id", "repo", "target_time", "seconds" (restore command),
    "started_at", "ready_at", ...}``: pass it to `RowCountCheckOperator` (``target=``) and
    `ScratchServerTeardownOperator`.

    Usage::

        restore = PgBackRestRestoreOperator(task_id="restore", pgbackrest_conn_id="pgbackrest_default",
                                            repo=2, scratch_root="/var/lib/drdrill/scratch")
        teardown = ScratchServerTeardownOperator(task_id="teardown", scratch_from="restore",
                                                 pgbackrest_conn_id="pgbackrest_default")
        restore >> teardown.as_teardown(setups=restore)
    """

    template_fields: Sequence[str] = ("repo", "target_time", "target_timeline", "stanza", "pgbackrest_conn_id",
                                      "cluster", "scratch", "scratch_root", "scratch_port", "postgres_conn_id",
                                      "dry_run")

    def __init__(self, *, repo: int | str = 1, target_time: str | None = None, target_timeline: Any = None,
                 stanza: str | None = None,
                 pgbackrest_conn_id: str | None = None, cluster: str | None = None, scratch: Any = None,
                 scratch_root: str | None = None, scratch_port: int | str | None = None,
                 port_range: tuple[int, int] = (55500, 55599), host: str = "127.0.0.1",
                 pg_bin_dir: str | None = None, run_as: str | None = None, user: str = "postgres",
                 database: str = "postgres", postgres_conn_id: str | None = None, wait_timeout: float = 1800,
                 poke_seconds: float = 5, dry_run: Any = False, check_kill_switch: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.repo = repo
        self.target_time = target_time
        self.target_timeline = target_timeline
        self.stanza = stanza
        self.pgbackrest_conn_id = pgbackrest_conn_id
        self.cluster = cluster
        self.scratch = scratch
        self.scratch_root = scratch_root
        self.scratch_port = scratch_port
        self.port_range = port_range
        self.host = host
        self.pg_bin_dir = pg_bin_dir
        self.run_as = run_as
        self.user = user
        self.database = database
        self.postgres_conn_id = postgres_conn_id
        self.wait_timeout = wait_timeout
        self.poke_seconds = poke_seconds
        self.dry_run = dry_run
        self.check_kill_switch = check_kill_switch

    def execute(self, context: Any) -> Any:
        # Not wrapped by DrillOperator's step: the step ends in execute_complete after deferring.
        from drdrill.core.journal import record_step

        started = time.time()
        try:
            return self._restore(context, started)
        except Exception as e:
            record_step(context, self.task_id, "failed", started, f"{type(e).__name__}: {e}"[:4000])
            raise

    def _allocate(self, context: Any, place: _Place) -> tuple[Any, bool]:
        from drdrill.core import scratch

        if self.scratch:
            s = self.scratch
            scratch.renew(s["dir"], place.runner)  # this run is alive and using it
            return scratch.Scratch(s["run_id"], s["dir"], int(s["port"]), s["host"]), False
        run_id = context["dag_run"].run_id
        port = int(self.scratch_port) if self.scratch_port not in (None, "", "None") else None
        dag_id = context["dag"].dag_id
        if place.cluster is not None:
            from drdrill.core.estate import load_estate

            sc = scratch.allocate(load_estate(), run_id, scratch_dir=self.scratch_root or None, port=port,
                                  dag_id=dag_id)
        else:
            sc = scratch.allocate_in(Path(self.scratch_root), run_id, host=self.host, port=port,
                                     port_range=tuple(self.port_range), dag_id=dag_id)
        if not truthy(self.dry_run):
            # the wait for recovery plus an hour for the restore and the checks, unless set
            scratch.create(sc, place.runner, place.run_as,
                           lease=scratch.lease_seconds(float(self.wait_timeout) / 60 + 60))
        return sc, True

    def _restore(self, context: Any, started: float) -> Any:
        from drdrill.drills import restore as logic

        if self.target_time:
            t = logic.parse_time(str(self.target_time))
            if t.timestamp() >= time.time():
                raise ValueError(f"target_time {t.isoformat()} is in the future; a restore can only reach a time "
                                 f"that has already been archived")
        place = _Place(self)
        if place.backrest is None:
            raise ValueError("give cluster, or stanza / pgbackrest_conn_id: which stanza to restore")
        if not self.scratch and not self.scratch_root and place.cluster is None:
            raise ValueError("scratch_root is required (where the scratch server's directory is created)")
        verdict = None
        if self.check_kill_switch:  # right before the action: nothing allocated, created or restored yet
            from drdrill.core.killswitch import check_kill_switch

            what = self.cluster or self.stanza or place.backrest.stanza
            verdict = check_kill_switch(f"the restore of {what} (repo{self.repo}) into a scratch server")
        sc, created = self._allocate(context, place)
        base = {**sc.to_dict(), "repo": int(self.repo), "target_time": self.target_time or None,
                "created_scratch": created, "database": place.database, "kill_switch": verdict}
        if truthy(self.dry_run):
            self.log.info("[DRY RUN] would restore repo%s into %s and start it on port %s", self.repo, sc.dir, sc.port)
            return self._done(context, started, {**base, "dry_run": True, "seconds": 0.0, "started_at": started,
                                                 "ready_at": started})
        try:
            tli = self.target_timeline if self.target_timeline not in (None, "", "None") else None
            rec = logic.restore_into(place.backrest, sc, repo=int(self.repo), target_time=self.target_time or None,
                                     target_timeline=str(tli) if tli is not None else None)
            rec.update(logic.start_server(place.runner, place.bin_dir, sc, owner=place.run_as, role=place.login()))
        except BaseException:
            if created:
                self._remove(sc, place)
            raise
        rec = {**base, **rec}
        trig = self._trigger(place, sc, started, rec)
        seen = self._wait_briefly(trig)
        if seen is None:
            return self._done(context, started, {**rec, "ready_at": time.time()})
        self.log.info("%s:%s %s; deferring until recovery has finished (timeout %.0fs)", sc.host, sc.port, seen,
                      float(self.wait_timeout))
        self.defer(trigger=trig, method_name="execute_complete", kwargs={"started": started})

    def _wait_briefly(self, trig: Any) -> str | None:
        """Probe for up to ``poke_seconds`` in this process (most copies are ready in a second or
        two, and a deferral costs a scheduling round trip); None when ready, else what was seen."""
        import asyncio

        async def poll() -> str | None:
            kwargs = await trig._connect_kwargs()
            deadline = time.monotonic() + float(self.poke_seconds)
            while True:
                ok, seen = await trig.probe(kwargs)
                if ok:
                    return None
                if time.monotonic() >= deadline:
                    return seen
                await asyncio.sleep(POKE_INTERVAL_SECONDS)

        return asyncio.run(poll())

    def _trigger(self, place: _Place, sc: Any, started: float, payload: dict[str, Any] | None = None) -> Any:
        from drdrill.triggers.postgres import PostgresPromotedTrigger

        return PostgresPromotedTrigger(host=sc.host, port=int(sc.port), user=place.user, dbname="postgres",
                                       conn_id=place.conn_id, timeout=float(self.wait_timeout), started_at=started,
                                       payload=payload)

    def execute_complete(self, context: Any, event: dict[str, Any], started: float | None = None,
                         rec: dict[str, Any] | None = None) -> Any:
        from drdrill.core.errors import DrillError
        from drdrill.core.journal import record_step

        started = started or event.get("started_at") or time.time()
        rec = rec or event.get("payload") or {}
        if event.get("status") != "success":
            if rec.get("created_scratch"):
                from drdrill.core import scratch

                self._remove(scratch.Scratch(rec["run_id"], rec["dir"], int(rec["port"]), rec["host"]), _Place(self))
            record_step(context, self.task_id, "failed", started, event.get("message"))
            raise DrillError(event.get("message", "the restored copy did not finish recovery"))
        return self._done(context, started, {**rec, "ready_at": event.get("ready_at") or time.time()})

    def _done(self, context: Any, started: float, rec: dict[str, Any]) -> dict[str, Any]:
        from drdrill.core.journal import record_step

        self.log.info("restored copy accepts writes on %s:%s (restore %.1fs, recovery %.1fs)", rec["host"],
                      rec["port"], rec.get("seconds", 0.0), rec["ready_at"] - rec["started_at"])
        record_step(context, self.task_id, "success", started)
        return rec

    def _remove(self, sc: Any, place: _Place) -> None:
        from drdrill.core import scratch

        self.log.warning("restore failed: removing the scratch server it created in %s", sc.dir)
        try:
            scratch.remove(Path(sc.dir), place.runner, place.bin_dir)
        except Exception as e:  # noqa: BLE001 - the original error matters more; say what is left
            self.log.error("could not remove %s (%s); the next run's setup or the teardown removes it", sc.dir, e)


class ScratchServerTeardownOperator(DrillOperator):
    """Stop a scratch server and remove its tagged directory (nothing untagged is ever removed).

    :param scratch: the scratch (dict with ``dir``, ``host``, ``port``), e.g. the restore's XCom
    :param scratch_from: or the task id whose XCom holds it (default ``restore``); a task that failed
        before returning it leaves nothing to remove here (the restore removes its own)
    :param cluster: an estate cluster (runner and binaries) instead of the arguments below
    :param pgbackrest_conn_id: pgbackrest connection whose login is the OS user servers run as
    :param stanza: the stanza, when the connection's extra does not name one
    :param run_as: or that OS user directly
    :param pg_bin_dir: PostgreSQL binaries (default /usr/lib/postgresql/15/bin)

    Usage::

        teardown = ScratchServerTeardownOperator(task_id="teardown", scratch_from="restore",
                                                 pgbackrest_conn_id="pgbackrest_default")
        restore >> check >> teardown.as_teardown(setups=restore)
    """

    template_fields: Sequence[str] = ("scratch", "scratch_from", "cluster", "pgbackrest_conn_id")

    def __init__(self, *, scratch: Any = None, scratch_from: str | None = "restore", cluster: str | None = None,
                 pgbackrest_conn_id: str | None = None, stanza: str | None = None, run_as: str | None = None,
                 pg_bin_dir: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scratch = scratch
        self.scratch_from = scratch_from
        self.cluster = cluster
        self.pgbackrest_conn_id = pgbackrest_conn_id
        self.stanza = stanza
        self.run_as = run_as
        self.pg_bin_dir = pg_bin_dir

    def run(self, context: Any) -> dict[str, Any]:
        from drdrill.core import scratch

        s = self.scratch or (context["ti"].xcom_pull(task_ids=self.scratch_from) if self.scratch_from else None)
        if not s or not s.get("dir"):
            self.log.info("no scratch server to remove (its task did not create one)")
            return {"removed": None}
        if s.get("dry_run") and not Path(s["dir"]).exists():
            return {"removed": None, "dry_run": True}
        place = _Place(self)
        scratch.remove(Path(s["dir"]), place.runner, place.bin_dir)
        return {"removed": s["dir"], "port_freed": scratch.port_free(s["host"], int(s["port"]))}
