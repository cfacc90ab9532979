"""Actions on one PostgreSQL server of a cluster: stop, kill, start, promote, rebuild as standby.

Every command goes through the runner of the node it acts on (the node's ``runner``, else the
cluster's) as an argv list (``pg_ctl``, ``pg_rewind``, pgBackRest), so the same code acts on the
sandbox and on database hosts reached over SSH: the primary is killed on the primary's host, the
old primary rewound on its own host. The SQL steps
(``pg_promote``, replication slots, streaming state) go through `drdrill.hooks.postgres`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from drdrill.core import pgctl
from drdrill.core.errors import CommandError, DrillError
from drdrill.core.estate import Cluster, Node
from drdrill.core.polling import wait_until
from drdrill.core.runner import Runner, runner_for
from drdrill.hooks import postgres as pg
from drdrill.hooks.pgbackrest import PgBackRestHook

log = logging.getLogger(__name__)

# Settings that make a server a standby of another; rewritten after a rewind or restore.
STANDBY_KEYS = ("primary_conninfo", "primary_slot_name", "recovery_target_timeline")


class NodeOps:
    """The server-level actions for one cluster, each through the runner of the node it acts on.

    :param runner: one runner for every node instead (tests, or a caller that knows better)
    """

    def __init__(self, cluster: Cluster, runner: Runner | None = None) -> None:
        self.cluster = cluster
        self._runner = runner
        self._runners: dict[str, Runner] = {}

    def runner(self, node: Node) -> Runner:
        """Where ``node``'s commands run: its own runner, else the cluster's (one per node, reused)."""
        if self._runner is not None:
            return self._runner
        if node.name not in self._runners:
            self._runners[node.name] = runner_for(self.cluster.runner_of(node))
        return self._runners[node.name]

    def _bin(self, name: str) -> str:
        return str(self.cluster.postgres.bin_dir / name)

    @staticmethod
    def _data(node: Node) -> Path:
        if not node.data_dir:
            raise DrillError(f"node {node.name} has no data_dir in the estate; it is needed to stop, start or "
                             f"rebuild the server")
        return node.data_dir

    # ------------------------------------------------------------ state
    def running_pid(self, node: Node) -> int | None:
        """The postmaster PID when the server runs, else None (a zombie is not running)."""
        return pgctl.running_pid(self.runner(node), self.cluster.postgres.bin_dir, self._data(node))

    def is_ready(self, node: Node) -> tuple[bool, str]:
        return pg.is_ready(self.cluster, node.host, node.port, "postgres")

    # ------------------------------------------------------------ faults and stop/start
    def stop(self, node: Node, mode: str = "fast", timeout: int = 120) -> dict[str, Any]:
        """Stop the server, escalating (fast, immediate, SIGKILL) until it is really down."""
        t0 = time.time()
        rec = pgctl.stop(self.runner(node), self.cluster.postgres.bin_dir, self._data(node), mode=mode, timeout=timeout,
                         name=node.name)
        return {"node": node.name, "action": f"stop -m {mode}", "at": t0, "done_at": time.time(),
                "escalated": rec["escalated"], "steps": rec["steps"]}

    def kill(self, node: Node) -> dict[str, Any]:
        """kill -9 of the postmaster, as a crashed host would do to it."""
        pid = self.running_pid(node)
        if not pid:
            raise DrillError(f"{node.name} is not running: nothing to kill")
        t0 = time.time()
        self.runner(node).run([self._bin("pg_ctl"), "kill", "KILL", str(pid)], timeout=30)
        done = time.time()
        log.info("%s postmaster (pid %s) killed with SIGKILL", node.name, pid)
        wait_until(lambda: self.running_pid(node) is None, timeout=30, interval=0.1,
                      what=f"{node.name}'s postmaster (pid {pid}) to die")
        return {"node": node.name, "action": "kill -9", "pid": pid, "at": t0, "done_at": done}

    def start(self, node: Node, timeout: int = 300, *, reaped_within: float = 60) -> dict[str, Any]:
        """pg_ctl start; again (for up to ``reaped_within`` seconds) while a killed postmaster's PID still exists:
        a zombie until its parent reaps it, which the new postmaster reads as "another server might be running"."""
        data = self._data(node)
        logfile = node.log_file or data / "pg_ctl.log"
        t0 = time.time()
        while True:
            try:
                self.runner(node).run([self._bin("pg_ctl"), "-D", str(data), "-l", str(logfile), "-w", "-t",
                                       str(timeout), "start"], timeout=timeout + 30)
                break
            except CommandError as e:
                if "another server might be running" not in str(e) or time.time() - t0 > reaped_within:
                    raise
                log.info("%s: the killed postmaster is not reaped yet; starting again in 0.5 s", node.name)
                time.sleep(0.5)
        log.info("%s started in %.2fs", node.name, time.time() - t0)
        return {"node": node.name, "action": "start", "seconds": round(time.time() - t0, 3)}

    # ------------------------------------------------------------ promotion
    def promote(self, node: Node, wait_seconds: int = 60) -> dict[str, Any]:
        """``SELECT pg_promote(wait => true)`` on a standby (the runbook's promote step)."""
        rec = pg.hook(self.cluster, node.host, node.port, "postgres").promote(wait_seconds=wait_seconds)
        return {"node": node.name, "promoted_at": rec["promoted_at"], "seconds": rec["seconds"]}

    # ------------------------------------------------------------ standby provisioning
    def ensure_slot(self, primary: Node, slot: str) -> None:
        with pg.connect(self.cluster, primary.host, primary.port, "postgres") as c:
            exists = pg.query(c, "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            if not exists:
                pg.query(c, "SELECT pg_create_physical_replication_slot(%s, true)", (slot,))
                log.info("replication slot %s created on %s", slot, primary.name)

    def _conninfo(self, source: Node, app_name: str, saved: dict[str, str]) -> str:
        """The rebuilt standby's ``primary_conninfo``: the replication connection is the database host's
        own configuration (its user, ``passfile``, TLS options), so the node's existing one is kept, else
        the new primary's (a promoted standby still has its own), and only host, port and
        application_name change. Neither is ever logged: it may hold a password.
        """
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        current = (_setting(saved.get("postgresql.auto.conf", ""), "primary_conninfo") or self._source_conninfo(source)
                   or self._peer_conninfo(source, app_name))
        opts: dict[str, Any] = conninfo_to_dict(current) if current else {}
        if not opts:
            log.warning("neither %s nor %s has a primary_conninfo: %s streams as %s with libpq's defaults (its "
                        "~/.pgpass); set primary_conninfo on the database host to choose the replication user",
                        source.name, app_name, app_name, self.cluster.postgres.user)
            opts = {"user": self.cluster.postgres.user}
        for k in ("host", "hostaddr", "port", "application_name", "dbname", "replication"):
            opts.pop(k, None)
        return make_conninfo(**opts, host=source.host, port=source.port, application_name=app_name)

    def _peer_conninfo(self, source: Node, app_name: str) -> str:
        """Another node's primary_conninfo from its postgresql.auto.conf (a region failover's DR node, restored
        from the archive, streams from nobody: the lost region's standby knows the replication login)."""
        for n in self.cluster.nodes:
            if n.name in (source.name, app_name) or not n.data_dir:
                continue
            try:
                text = self.runner(n).read_text(n.data_dir / "postgresql.auto.conf") or ""
            except Exception:  # noqa: BLE001 - the next node may do
                continue
            if value := _setting(text, "primary_conninfo"):
                log.info("%s streams with the replication login %s uses", app_name, n.name)
                return value
        return ""

    def _source_conninfo(self, source: Node) -> str:
        try:
            with pg.connect(self.cluster, source.host, source.port, "postgres") as c:
                return str(pg.query_one(c, "SELECT current_setting('primary_conninfo', true)")[0] or "")
        except Exception as e:  # noqa: BLE001 - the fallback below says what happens then
            log.warning("could not read primary_conninfo of %s (%s)", source.name, type(e).__name__)
            return ""

    def _save_config(self, node: Node) -> dict[str, str]:
        """The node's own configuration files: pg_rewind and a restore overwrite them with the source's."""
        data = self._data(node)
        run = self.runner(node).run  # the files are on the node's host
        names = run(["find", str(data), "-maxdepth", "1", "-type", "f", "-name", "*.conf", "-printf", "%f\\n"],
                    timeout=30).stdout.split()
        return {name: run(["cat", str(data / name)], timeout=30).stdout for name in sorted(names)}

    def _write(self, node: Node, path: Path, text: str) -> None:
        self.runner(node).run(["tee", str(path)], timeout=30, input=text)

    def _restore_config(self, node: Node, saved: dict[str, str], source: Node, timeline: int) -> None:
        data = self._data(node)
        conninfo = _quote(self._conninfo(source, node.name, saved))
        for name, text in saved.items():
            if name == "postgresql.auto.conf":
                kept = [ln for ln in text.splitlines() if ln.split("=", 1)[0].strip() not in STANDBY_KEYS]
                # Follow the source's timeline, not 'latest': after a rollback the archive holds
                # the abandoned timeline of the failed promotion, and 'latest' would chase it.
                text = "\n".join([*kept, f"primary_conninfo = {conninfo}",
                                  f"primary_slot_name = '{node.name}'", f"recovery_target_timeline = '{timeline}'",
                                  ""])
            self._write(node, data / name, text)
        self._write(node, data / "standby.signal", "")

    def rebuild_standby(self, node: Node, source: Node, *, method: str = "rewind",
                        timeout: float = 600) -> dict[str, Any]:
        """Make ``node`` (an old primary, stopped or crashed) a streaming standby of ``source``.

        ``rewind``: pg_rewind against the new primary (seconds; needs wal_log_hints or data
        checksums); if it fails, fall back to a pgBackRest ``--type=standby`` delta restore.
        The node keeps its own configuration files (port, archive command): both methods
        would otherwise copy the source's.
        """
        t0 = time.time()
        if self.running_pid(node):
            self.stop(node, "fast")
        saved = self._save_config(node)
        self.ensure_slot(source, node.name)
        timeline = self.checkpoint_timeline(source)
        used = method
        if method == "rewind":
            try:
                self._rewind(node, source)
            except CommandError as e:
                log.warning("pg_rewind of %s failed (%s); falling back to a pgBackRest standby restore",
                            node.name, str(e).splitlines()[0])
                used = "restore (after pg_rewind failed)"
                self._restore(node, timeline)
        else:
            self._restore(node, timeline)
        self._restore_config(node, saved, source, timeline)
        self.start(node)
        self.wait_streaming(source, node, timeout=timeout)
        self.drop_stale_slots(node)
        return {"node": node.name, "source": source.name, "method": used, "seconds": round(time.time() - t0, 3)}

    def checkpoint_timeline(self, source: Node) -> int:
        """CHECKPOINT the source and return its timeline.

        Right after a promotion the new primary's control file still shows the old timeline
        until its first checkpoint, and pg_rewind would wrongly report "no rewind required".
        """
        with pg.connect(self.cluster, source.host, source.port, "postgres") as c:
            pg.query(c, "CHECKPOINT")
            return int(pg.query_one(c, "SELECT timeline_id FROM pg_control_checkpoint()")[0])

    def _rewind(self, node: Node, source: Node) -> None:
        """pg_rewind with the new primary as source, through the cluster's connection: its login (a
        non-superuser with the function grants of `drdrill.core.privileges`) and TLS options in the
        conninfo, its password in a temporary PGPASSFILE on the node's host (never in argv: ``ps``
        shows argv)."""
        h = pg.hook(self.cluster, source.host, source.port, "postgres")
        runner = self.runner(node)
        with h.passfile_env(runner) as env:
            runner.run([self._bin("pg_rewind"), "-D", str(self._data(node)), "--source-server",
                        h.conninfo("postgres"), "--restore-target-wal", "--progress"], timeout=3600,
                       stream=True, env=env)

    def _restore(self, node: Node, timeline: int) -> None:
        data = self._data(node)
        # A crashed server leaves postmaster.pid behind; pgBackRest refuses to restore over it.
        self.runner(node).run(["rm", "-f", str(data / "postmaster.pid")], timeout=30)
        # On the node's own host: the restore writes into its data directory.
        PgBackRestHook.for_cluster(self.cluster, self.runner(node)).run(
            "restore", f"--pg1-path={data}", "--delta", "--type=standby", f"--target-timeline={timeline}",
            timeout=7200, progress=True)

    def wait_streaming(self, primary: Node, standby: Node, *, timeout: float) -> dict[str, Any]:
        def streaming() -> Any:
            try:
                with pg.connect(self.cluster, primary.host, primary.port, "postgres") as c:
                    rows = pg.query(c, "SELECT state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint "
                                       "FROM pg_stat_replication WHERE application_name = %s", (standby.name,))
            except Exception:  # noqa: BLE001 - the primary may be busy restarting connections
                return None
            return rows[0] if rows and rows[0][0] == "streaming" else None

        state, lag = wait_until(streaming, timeout=timeout, interval=0.5,
                                   what=f"{standby.name} to stream from {primary.name}")
        log.info("%s streams from %s (lag %s bytes)", standby.name, primary.name, lag)
        return {"standby": standby.name, "state": state, "lag_bytes": lag}

    def drop_stale_slots(self, standby: Node) -> list[str]:
        """Slots a former primary kept for its standbys hold WAL forever once it is a standby.

        Only what the drills create is touched: inactive physical slots named after a node of the
        cluster (`ensure_slot`). Logical slots (CDC, logical replication) and anybody else's
        physical slots are left alone.
        """
        names = [n.name for n in self.cluster.nodes]
        try:
            with pg.connect(self.cluster, standby.host, standby.port, "postgres") as c:
                rows = pg.query(c, "SELECT slot_name FROM pg_replication_slots WHERE NOT active "
                                   "AND slot_type = 'physical' AND slot_name = ANY(%s)", (names,))
                for (slot,) in rows:
                    pg.query(c, "SELECT pg_drop_replication_slot(%s)", (slot,))
            return [r[0] for r in rows]
        except Exception as e:  # noqa: BLE001 - worth a warning, not a failed failover
            log.warning("could not drop inactive slots on %s: %s", standby.name, e)
            return []

    def switchover_stop(self, primary: Node, standby: Node, timeout: float = 60) -> dict[str, Any]:
        """Stop the primary cleanly and wait until the standby has replayed its shutdown checkpoint."""
        with pg.connect(self.cluster, primary.host, primary.port, "postgres") as c:
            pg.query(c, "CHECKPOINT")
        self.stop(primary, "fast")
        out = self.runner(primary).run([self._bin("pg_controldata"), "-D", str(self._data(primary))],
                                       timeout=30).stdout
        lsn = next((ln.split(":", 1)[1].strip() for ln in out.splitlines()
                    if ln.startswith("Latest checkpoint location")), None)
        if not lsn:
            raise DrillError(f"pg_controldata of {primary.name} shows no checkpoint location")

        def replayed() -> bool:
            with pg.connect(self.cluster, standby.host, standby.port, "postgres") as c:
                return pg.query_one(c, "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), %s) >= 0", (lsn,))[0]

        wait_until(replayed, timeout=timeout, interval=0.1,
                      what=f"{standby.name} to replay {primary.name}'s shutdown checkpoint {lsn}")
        return {"node": primary.name, "shutdown_checkpoint": lsn}


def _setting(conf_text: str, key: str) -> str | None:
    """The last value of ``key`` in a postgresql.conf-style text (quotes undone), or None."""
    import re

    value = None
    for ln in conf_text.splitlines():
        m = re.match(rf"^\s*{key}\s*=\s*'((?:[^'\\]|''|\\.)*)'", ln)
        if m:
            value = m.group(1).replace("''", "'").replace("\\\\", "\\")
    return value


def _quote(value: str) -> str:
    """A string as a postgresql.conf value."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
