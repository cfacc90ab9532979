"""The ``postgres`` chaos target, the seed's "instance" case: SIGKILL of a standby's postmaster.

Candidates are the target's standbys that are standbys now (the topology the last failover
recorded) and streaming; never the primary. A kill that would block every commit (the victim is
the primary's only synchronous standby) is skipped, naming ``synchronous_standby_names``. Healed =
a new postmaster on the node and the primary's ``pg_stat_replication`` showing it ``streaming``.
With ``restart: drill`` the drill starts the node right after the kill, as systemd would; with
``auto`` it only watches (systemd, Patroni or the platform restarts it).
"""

from __future__ import annotations

import logging
from typing import Any

from drdrill.core.errors import DrillError
from drdrill.core.services import PostgresTarget

log = logging.getLogger("drdrill.drills.chaos")


class StandbyOps:
    def __init__(self, spec: PostgresTarget) -> None:
        from drdrill.core.estate import load_estate
        from drdrill.drills.failover.node_ops import NodeOps

        self.spec = spec
        self.cluster = load_estate().cluster(spec.cluster)  # roles as the last failover left them
        self.nodes = NodeOps(self.cluster)

    def _names(self) -> list[str]:
        return list(self.spec.nodes) or [n.name for n in self.cluster.standbys]

    def replication(self) -> dict[str, str]:
        """application_name -> state, as the primary sees its standbys ({} when the primary cannot be asked)."""
        from drdrill.hooks import postgres as pg

        p = self.cluster.primary
        try:
            with pg.connect(self.cluster, p.host, p.port, "postgres") as c:
                return dict(pg.query(c, "SELECT application_name, state FROM pg_stat_replication"))
        except Exception as e:  # noqa: BLE001 - reported as "no standby streaming"
            log.warning("could not read pg_stat_replication on %s: %s", p.name, e)
            return {}

    def _sync_names(self) -> str:
        from drdrill.hooks import postgres as pg

        p = self.cluster.primary
        with pg.connect(self.cluster, p.host, p.port, "postgres") as c:
            return str(pg.query(c, "SHOW synchronous_standby_names")[0][0] or "")

    def steady(self) -> tuple[bool, str, dict[str, Any]]:
        rep = self.replication()
        names = self._names()
        sick = [f"{n} {rep.get(n, 'not connected')}" for n in names if rep.get(n) != "streaming"]
        detail = (f"{len(names)} standby(s) streaming from {self.cluster.primary.name}" if not sick
                  else f"not streaming: {'; '.join(sick)}")
        return not sick, detail, {"replication": rep}

    def candidates(self) -> list[str]:
        rep = self.replication()
        standbys = {n.name for n in self.cluster.standbys}
        return [n for n in self._names() if n in standbys and rep.get(n) == "streaming"]

    def blocked(self, victims: list[str]) -> str | None:
        sync = self._sync_names()
        if sync and not (set(self.candidates()) - set(victims)):
            return (f"synchronous_standby_names is {sync!r} on {self.cluster.primary.name} and no other standby "
                    f"would stream: killing {', '.join(victims)} would block every commit")
        return None

    def kill_many(self, victims: list[str], grace_period_seconds: int | None = None) -> list[dict[str, Any]]:
        out = []
        for name in victims:
            node = self.cluster.node(name)
            if node.role != "standby":
                raise DrillError(f"{name} is not a standby of {self.cluster.name} now: never killed")
            rec = self.nodes.kill(node)
            if self.spec.restart == "drill":
                rec["restarted"] = self._start(node)
            out.append({"node": name, "pid": rec["pid"], "restarted_by": self.spec.restart})
        return out

    def _start(self, node: Any, timeout: float = 60) -> dict[str, Any]:
        """pg_ctl start, again while the killed postmaster is not reaped (`NodeOps.start`)."""
        return self.nodes.start(node, reaped_within=timeout)

    def heal_status(self, victims: list[dict[str, Any]], killed_at: float | None = None) -> dict[str, Any]:
        rep = self.replication()
        missing, detected = [], True
        for v in victims:
            pid = self.nodes.running_pid(self.cluster.node(v["node"]))
            if pid == v["pid"]:
                detected = False
                missing.append(f"{v['node']} still runs the killed postmaster {pid}")
            elif pid is None:
                missing.append(f"{v['node']} is not running")
            elif rep.get(v["node"]) != "streaming":
                missing.append(f"{v['node']} runs (pid {pid}) but is {rep.get(v['node'], 'not connected')}, not "
                               f"streaming from {self.cluster.primary.name}")
        names = self._names()
        ready = sum(1 for n in names if rep.get(n) == "streaming")
        return {"healed": not missing, "detected": detected, "ready": ready, "desired": len(names),
                "missing": "; ".join(missing), "replication": rep}

    def start_stopped(self) -> list[str]:
        """With ``restart: drill``: start a listed standby a killed run left down."""
        if self.spec.restart != "drill":
            return []
        started = []
        for name in self._names():
            node = self.cluster.node(name)
            if node.role == "standby" and self.nodes.running_pid(node) is None:
                self._start(node)
                started.append(name)
        return started
