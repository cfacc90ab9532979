"""The region failover (``scope: region``): the whole primary region is lost, and the cluster comes back
on the DR node in the DR region from the DR repo alone.

The same runbook and graph as the node failover; what differs is here:

- `DrSite`: the DR node and the DR repo, always through the DR host's pgBackRest configuration
  (``dr.pgbackrest_config``), which names only the DR repo: nothing from the lost region's repo can help.
- `figures` / `safeguards`: Assess. The DR repo holds a full backup within its age target, archiving to
  it is current (complete WAL segments it lacks, and for how long, against ``rpo_minutes``), the DR
  node's port and directory are free (cold) or its standby replays the DR repo (warm).
- `inject_fault`: every node of the primary region stopped hard, the standbys first, the primary last
  (the outage starts then); `recover`: cold, restore latest from the DR repo as an archive-recovery
  standby, start, replay everything the repo holds; warm, wait until the standby has replayed it.
  The promotion and the DNS switch are the node failover's.
- `abort` (rollback and cleanup before a promotion), `finish_failback` (the primary region's other
  nodes rebuilt, the DR node back to its mode, a backup to every repo), `heal` (what a killed run left,
  by the state record `Record` in the estate's state store).
"""

from __future__ import annotations

import json
import logging
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drdrill.core import statestore
from drdrill.core.checks import CheckResult, Status, at_most
from drdrill.core.errors import DrillError, PreflightError
from drdrill.core.estate import Cluster, Node, load_estate
from drdrill.core.polling import wait_until
from drdrill.drills.failover.node_ops import STANDBY_KEYS, NodeOps, _quote
from drdrill.drills.failover.plan import Plan, _cluster
from drdrill.hooks import postgres as pg
from drdrill.hooks.pgbackrest import PgBackRestHook

log = logging.getLogger("drdrill.drills.failover")

WAL_SEGMENT_BYTES = 16 * 1024 * 1024
# Written to the DR node's postgresql.auto.conf after a restore (besides dr.settings).
DR_KEYS = ("port", "listen_addresses", "unix_socket_directories", "archive_mode", "archive_command",
           "restore_command", "recovery_target_timeline", "wal_retrieve_retry_interval", "cluster_name")

PRIMARY_SQL = """
SELECT pg_current_wal_lsn()::text, pg_walfile_name(pg_current_wal_lsn()),
       pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint,
       (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'),
       extract(epoch FROM current_setting('archive_timeout')::interval),
       (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%%.ready')
"""


def wal_start(name: str, seg_bytes: int = WAL_SEGMENT_BYTES) -> int:
    """The LSN (as a number) where the WAL segment ``name`` (``TTTTTTTTXXXXXXXXYYYYYYYY``) begins."""
    per_log = 0x100000000 // seg_bytes
    return (int(name[8:16], 16) * per_log + int(name[16:24], 16)) * seg_bytes


def lsn_int(lsn: str) -> int:
    hi, lo = lsn.split("/")
    return (int(hi, 16) << 32) + int(lo, 16)


class DrSite:
    """The DR node and the DR repo of a cluster, seen from the DR region."""

    def __init__(self, cluster: Cluster) -> None:
        if cluster.dr is None or cluster.dr_node is None:
            raise PreflightError(f"cluster {cluster.name!r} has no dr: section: the region failover needs the DR "
                                 f"region, its repo and its recovery node (include/estate/README.md, 'dr'); run "
                                 f"scope 'node' instead")
        self.cluster = cluster
        self.dr = cluster.dr
        self.node: Node = cluster.dr_node
        self.repo: int = int(cluster.dr_repo or 0)
        self.ops = NodeOps(cluster)

    @property
    def runner(self) -> Any:
        return self.ops.runner(self.node)

    def hook(self) -> PgBackRestHook:
        """pgBackRest on the DR host with its own config (the DR repo only), pg1 = the DR node."""
        return PgBackRestHook.for_cluster(self.cluster.with_primary(self.node.name), self.runner)

    # ------------------------------------------------------------ the DR repo
    def repo_state(self, timeline: str | None = None) -> dict[str, Any]:
        """The DR repo as the DR host sees it: its newest full backup, the newest WAL segment and its time.

        ``timeline``: the newest segment of that timeline (the primary's): pgBackRest's archive max is the greatest
        name, which after an abandoned promotion is a segment of the abandoned, higher timeline."""
        br = self.hook()
        stanza = self.cluster.pgbackrest.stanza
        t0 = time.time()
        found = [s for s in br.info(repo=self.repo, timeout=self.cluster.pgbackrest.command_timeout_seconds)
                 if s.name == stanza]
        out: dict[str, Any] = {"repo": self.repo, "config": str(self.dr.pgbackrest_config), "full_backup": None,
                               "newest_wal": None, "newest_wal_time": None}
        if not found:
            out["error"] = f"stanza {stanza!r} not found in repo{self.repo}"
            return out
        st = found[0]
        full = st.newest("full", self.repo)
        if full is not None:
            out["full_backup"] = {"label": full.label, "stop": full.stop.isoformat(timespec="seconds"),
                                  "age_hours": round((datetime.now(UTC) - full.stop).total_seconds() / 3600, 2)}
        arch = sorted((a for a in st.archives if a.repo_key == self.repo and a.max), key=lambda a: a.db_id)
        if arch:
            out["archive_id"], out["newest_wal"] = arch[-1].id, arch[-1].max
            if timeline and not arch[-1].max.startswith(f"{int(timeline):08X}"):
                out["newest_wal"] = self._newest_on(br, arch[-1].id, f"{int(timeline):08X}")
                out["newest_wal_any_timeline"] = arch[-1].max
            if out["newest_wal"]:
                out["newest_wal_time"] = self._segment_time(br, arch[-1].id, out["newest_wal"])
        out["seconds"] = round(time.time() - t0, 3)
        return out

    def _ls(self, br: PgBackRestHook, path: str) -> dict[str, Any]:
        argv = [*br.argv("repo-ls", f"--repo={self.repo}", "--output=json"), path]
        res = br.runner.run(argv, timeout=self.cluster.pgbackrest.command_timeout_seconds, check=False)
        if res.returncode != 0:
            log.warning("repo-ls %s of repo%s failed: %s", path, self.repo, (res.stderr or res.stdout).strip()[-300:])
            return {}
        return json.loads(res.stdout or "{}")

    def _newest_on(self, br: PgBackRestHook, archive_id: str, tl8: str) -> str | None:
        """The newest segment of timeline ``tl8`` in the DR repo (None when it has none)."""
        base = f"archive/{self.cluster.pgbackrest.stanza}/{archive_id}"
        dirs = sorted(k for k, v in self._ls(br, base).items() if v.get("type") == "path" and k.startswith(tl8))
        for d in reversed(dirs):
            segs = sorted(k[:24] for k in self._ls(br, f"{base}/{d}") if len(k) > 24 and k[24] == "-")
            if segs:
                return segs[-1]
        return None

    def _segment_time(self, br: PgBackRestHook, archive_id: str, wal: str) -> float | None:
        """When the DR repo received segment ``wal`` (the object's time, from ``repo-ls``)."""
        items = self._ls(br, f"archive/{self.cluster.pgbackrest.stanza}/{archive_id}/{wal[:16]}")
        times = [v.get("time") for k, v in items.items() if k.startswith(wal) and v.get("time")]
        return float(max(times)) if times else None

    def _primary_timeline(self) -> str | None:
        """The current primary's timeline (None when it is the DR node or does not answer)."""
        p = self.cluster.primary
        if p.name == self.node.name:
            return None
        try:
            with pg.connect(self.cluster, p.host, p.port, "postgres") as c:
                return str(int(pg.query_one(c, "SELECT pg_walfile_name(pg_current_wal_lsn())")[0][:8], 16))
        except Exception:  # noqa: BLE001 - down: 'latest'
            return None

    # ------------------------------------------------------------ the DR node
    def port_open(self) -> bool:
        try:
            with socket.create_connection((self.node.host, self.node.port), timeout=2):
                return True
        except OSError:
            return False

    def dir_state(self) -> str:
        """``absent``, ``empty`` or ``in use`` (the DR node's data directory on its host)."""
        d = self.node.data_dir
        assert d is not None
        if not self.runner.exists(d):
            return "absent"
        return "in use" if self.runner.listdir(d) else "empty"

    def running(self) -> bool:
        return self.ops.running_pid(self.node) is not None

    def replay_state(self) -> dict[str, Any]:
        with pg.connect(self.cluster, self.node.host, self.node.port, "postgres") as c:
            in_rec, replay, seg = pg.query_one(
                c, "SELECT pg_is_in_recovery(), coalesce(pg_last_wal_replay_lsn(), '0/0')::text, "
                   "(SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')")
        return {"in_recovery": in_rec, "replay_lsn": replay, "wal_segment_size": int(seg)}

    def restore(self, timeline: str | None = None) -> dict[str, Any]:
        """Cold: restore the DR repo's latest backup into the DR node as an archive-recovery standby, following
        ``timeline`` (the primary's at the fault; default: the newest in the repo). An explicit timeline never
        chases a branch an aborted promotion left in the archive."""
        d = self.node.data_dir
        assert d is not None
        state = self.dir_state()
        if state == "in use":
            raise DrillError(f"{self.node.name}'s data directory {d} is not empty: a restore would overwrite it. "
                             f"If a killed drill left it, the next run's preflight removes it; otherwise free it or "
                             f"change clusters[{self.cluster.name}].dr.node.data_dir")
        self.runner.mkdir(d, 0o700, parents=True)
        t0 = time.time()
        res = self.hook().run("restore", f"--repo={self.repo}", f"--pg1-path={d}", "--type=standby",
                              f"--process-max={self.cluster.pgbackrest.process_max}", timeout=7200, progress=True,
                              check=False)
        if res.returncode != 0:
            raise DrillError(f"pgbackrest restore from repo{self.repo} into {d} failed (exit {res.returncode}): "
                             f"{(res.stderr or res.stdout).strip()[-800:]}")
        self.configure(timeline)
        return {"node": self.node.name, "repo": self.repo, "timeline": timeline or "latest",
                "seconds": round(time.time() - t0, 3)}

    def configure(self, timeline: str | None = None) -> dict[str, Any]:
        """The DR node's own settings in postgresql.auto.conf (a restore brings the primary's): its port and
        socket, archiving and recovery through the DR config only, no streaming from the lost region."""
        d = self.node.data_dir
        assert d is not None
        cfg = self.dr.pgbackrest_config
        stanza = self.cluster.pgbackrest.stanza
        base = f"pgbackrest --config={cfg} --stanza={stanza} --pg1-path={d}"
        settings: dict[str, Any] = {
            "port": self.node.port, "listen_addresses": self.node.host,
            **({"unix_socket_directories": str(self.node.socket_dir)} if self.node.socket_dir else {}),
            "archive_mode": "on", "archive_command": f"{base} archive-push %p",
            "restore_command": f'{base} archive-get %f "%p"', "recovery_target_timeline": timeline or "latest",
            # warm: a segment the DR repo receives is replayed within about a second
            "wal_retrieve_retry_interval": "1s", **self.dr.settings}
        auto = d / "postgresql.auto.conf"
        text = self.runner.read_text(auto) or ""
        drop = set(STANDBY_KEYS) | set(settings)
        kept = [ln for ln in text.splitlines() if ln.split("=", 1)[0].strip() not in drop]
        lines = [*kept, "# drdrill: the DR node's own settings (clusters[].dr)",
                 *(f"{k} = {_quote(str(v).lower() if isinstance(v, bool) else str(v))}" for k, v in settings.items())]
        self.runner.write_text(auto, "\n".join(lines) + "\n")
        self.runner.write_text(d / "standby.signal", "")
        self.runner.run(["rm", "-f", str(d / "recovery.signal"), str(d / "postmaster.pid")], timeout=30)
        return {"settings": sorted(settings)}

    def wait_replayed(self, newest_wal: str | None, *, timeout: float, poll: float = 0.1) -> dict[str, Any]:
        """Until the DR node has replayed the newest segment the DR repo holds (its replay position inside it,
        and no longer moving: nothing more can come from a lost region)."""
        t0 = time.time()
        last: dict[str, Any] = {}
        seen: list[int] = []

        def caught_up() -> bool:
            nonlocal last
            try:
                last = self.replay_state()
            except Exception as e:  # noqa: BLE001 - still starting up
                last = {"error": " ".join(str(e).split())[:200]}
                return False
            pos = lsn_int(last["replay_lsn"])
            seen.append(pos)
            if newest_wal and pos < wal_start(newest_wal, last["wal_segment_size"]):
                return False
            return len(seen) >= 3 and seen[-1] == seen[-2] == seen[-3]

        wait_until(caught_up, timeout=timeout, interval=poll,
                   what=f"{self.node.name} to replay repo{self.repo} up to {newest_wal} (last seen: {last})")
        return {"replay_lsn": last.get("replay_lsn"), "newest_wal": newest_wal, "seconds": round(time.time() - t0, 3)}

    def discard(self) -> dict[str, Any]:
        """Stop the DR node and remove its data directory (it does not exist in cold mode)."""
        d = self.node.data_dir
        assert d is not None
        out: dict[str, Any] = {"node": self.node.name}
        if self.ops.running_pid(self.node):
            out["stopped"] = self.ops.stop(self.node, "fast", timeout=60)["action"]
        if self.runner.exists(d):
            try:
                self.runner.rmtree(d)
            except Exception as e:  # noqa: BLE001 - said plainly below
                raise DrillError(f"could not remove {self.node.name}'s data directory {d} on {self.node.host} ({e}): "
                                 f"is a process still writing into it (a pgBackRest restore of a dead run)? Stop it "
                                 f"and run the drill again") from e
            out["removed"] = str(d)
        return out

    def build_warm(self, *, timeout: float | None = None) -> dict[str, Any]:
        """Warm mode: the DR node as a standby replaying the DR repo alone (restore, settings, start, replay)."""
        t0 = time.time()
        self.discard()
        # 'latest' follows the primary through its failovers; but when the repo's newest timeline is not the
        # primary's (an abandoned promotion's branch is on top), the standby is pinned to the primary's
        tli = self._primary_timeline()
        top = self.repo_state().get("newest_wal")
        pin = tli if tli and top and not top.startswith(f"{int(tli):08X}") else None
        restored = self.restore(pin)
        self.ops.start(self.node)
        newest = self.repo_state(tli).get("newest_wal")
        replayed = self.wait_replayed(newest, timeout=timeout or self.dr.replay_timeout_seconds)
        log.info("%s is a warm standby of repo%s (replayed %s) in %.1fs", self.node.name, self.repo,
                 replayed["replay_lsn"], time.time() - t0)
        return {"restore": restored, "replay": replayed, "seconds": round(time.time() - t0, 3)}


# ---------------------------------------------------------------- the run's record (what a killed run left)
def _record_path(estate: Any, cluster: str) -> Any:
    return statestore.path(estate.state_store, "region", f"{cluster}.json")


def read_record(estate: Any, cluster: str) -> dict[str, Any] | None:
    p = statestore.refresh(_record_path(estate, cluster))
    if not p.exists():
        return None
    with p.open("r") as f:
        return json.load(f)


def write_record(estate: Any, cluster: str, **rec: Any) -> None:
    statestore.write_atomically(_record_path(estate, cluster), json.dumps({**rec, "at": time.time()}))


def clear_record(estate: Any, cluster: str) -> None:
    p = _record_path(estate, cluster)
    if p.exists():
        p.unlink()


# ---------------------------------------------------------------- Assess
def region_nodes(cluster: Cluster, plan: Plan) -> list[Node]:
    """The nodes of the lost region: every node but the DR node, standbys first, the primary last."""
    nodes = [n for n in cluster.nodes if n.name != plan.standby]
    return sorted(nodes, key=lambda n: n.name == plan.primary)


def figures(plan: Plan, cluster: Cluster | None = None) -> dict[str, Any]:
    """The primary region, the DR repo and the DR node, read without touching anything."""
    from drdrill.drills.failover.probes import dns_state, service_health

    cluster = cluster or _cluster(plan)
    site = DrSite(cluster)
    now = time.time()
    out: dict[str, Any] = {"at": now, "scope": "region", "mode": site.dr.mode, "dr_region": site.dr.region,
                           "primary_region": cluster.primary_region}
    p = cluster.node(plan.primary)
    ok, why = pg.is_ready(cluster, p.host, p.port, "postgres")
    prim: dict[str, Any] = {"name": p.name, "ready": ok, "why": why}
    if ok:
        with pg.connect(cluster, p.host, p.port, "postgres") as c:
            lsn, walfile, lsn_n, seg, timeout, ready = pg.query_one(c, PRIMARY_SQL)
        prim.update(wal_lsn=lsn, walfile=walfile, timeline=str(int(walfile[:8], 16)), lsn_bytes=int(lsn_n),
                    wal_segment_size=int(seg),
                    archive_timeout=float(timeout or 0), ready_files=int(ready))
    out["primary"] = prim
    out["region_nodes"] = [{"name": n.name, "ready": pg.is_ready(cluster, n.host, n.port, "postgres")[0]}
                           for n in region_nodes(cluster, plan)]
    try:
        repo = site.repo_state(prim.get("timeline"))
    except DrillError as e:
        repo = {"repo": site.repo, "error": str(e).splitlines()[0][:500]}
    out["dr_repo"] = repo
    out["dr_repo_lag"] = repo_lag(prim, repo, now)
    node: dict[str, Any] = {"name": site.node.name, "port_open": site.port_open(), "dir": site.dir_state()}
    if site.dr.mode == "warm" and node["port_open"]:
        try:
            node.update(site.replay_state())
            newest = repo.get("newest_wal")
            behind = bool(newest) and lsn_int(node["replay_lsn"]) < wal_start(newest, node["wal_segment_size"])
            node["replay_lag_seconds"] = (round(now - repo["newest_wal_time"], 1)
                                          if behind and repo.get("newest_wal_time") else 0.0)
        except Exception as e:  # noqa: BLE001 - a safeguard says what it means
            node["error"] = " ".join(str(e).split())[:300]
    out["dr_node"] = node
    out["service"] = service_health(cluster)
    out["dns"] = dns_state(cluster)
    return out


def repo_lag(primary: dict[str, Any], repo: dict[str, Any], now: float) -> dict[str, Any]:
    """How far the DR repo is behind the primary: complete WAL segments it lacks, the bytes, and for how long it
    has received nothing while they wait (0 when it holds every complete segment: the open segment is bounded by
    archive_timeout)."""
    newest = repo.get("newest_wal")
    if not primary.get("walfile") or not newest:
        return {"known": False}
    seg = primary["wal_segment_size"]
    segments = max(0, (wal_start(primary["walfile"], seg) - wal_start(newest, seg)) // seg - 1)
    behind = max(0, primary["lsn_bytes"] - (wal_start(newest, seg) + seg))
    t = repo.get("newest_wal_time")
    seconds = round(now - t, 1) if segments and t else 0.0
    return {"known": True, "segments": int(segments), "bytes": int(behind), "seconds": seconds,
            "newest_wal": newest, "primary_walfile": primary["walfile"],
            "newest_wal_at": datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds") if t else None}


def safeguards(plan: Plan, figs: dict[str, Any], *, stage: str, cluster: Cluster | None = None) -> list[CheckResult]:
    """What must hold before the primary region is stopped; raise with every reason if not."""
    cluster = cluster or _cluster(plan)
    site = DrSite(cluster)
    t = cluster.targets
    repo_name = f"repo{site.repo}"
    where = f"{cluster.name}/{repo_name}"
    field = f"clusters[{cluster.name}]"
    out = [CheckResult("cluster_allows", Status.PASS if cluster.allows(plan.dag_id) else Status.FAIL,
                       f"{plan.dag_id} {'is' if cluster.allows(plan.dag_id) else 'is NOT'} in allowed_drills",
                       cluster.name)]
    p = figs["primary"]
    out.append(CheckResult("primary_ready", Status.PASS if p["ready"] else Status.FAIL,
                           "primary accepts connections (steady state before the drill)" if p["ready"] else
                           f"primary {plan.primary} is not reachable ({p['why']}): not in steady state", cluster.name))
    down = [n["name"] for n in figs.get("region_nodes", []) if not n["ready"]]
    out.append(CheckResult("region_nodes_ready", Status.FAIL if down else Status.PASS,
                           f"node(s) {down} of region {figs.get('primary_region')} do not answer: not in steady "
                           f"state" if down else f"every node of region {figs.get('primary_region')} answers",
                           cluster.name))
    repo = figs["dr_repo"]
    full = repo.get("full_backup")
    max_full = (cluster.pgbackrest.repo(site.repo).max_backup_age_hours or t.max_backup_age_hours).get("full")
    if repo.get("error") or not full:
        out.append(CheckResult("dr_repo_full_backup", Status.FAIL,
                               f"{repo_name} (the DR region's repo, read with {site.dr.pgbackrest_config}) holds no "
                               f"full backup{': ' + repo['error'] if repo.get('error') else ''}; the region cannot "
                               f"be recovered from it. Fix: pgbackrest --stanza={cluster.pgbackrest.stanza} "
                               f"--repo={site.repo} backup --type=full", where))
    else:
        out.append(at_most("dr_repo_full_backup_age", full["age_hours"], max_full, unit=" h", target=where,
                           what=f"age of {repo_name}'s newest full backup {full['label']}",
                           fix=f"take a full backup to {repo_name}"))
    lag = figs.get("dr_repo_lag") or {}
    if p["ready"] and lag.get("known"):
        out.append(at_most("dr_repo_archive_lag", lag["seconds"], t.rpo_minutes * 60, unit="s", target=where,
                           what=f"{repo_name} archive lag ({lag['segments']} complete segment(s), {lag['bytes']} B "
                                f"not in {repo_name}; its newest segment {lag['newest_wal']} arrived "
                                f"{lag['newest_wal_at']})",
                           fix=f"archiving to {repo_name} is broken or slow: read archive_command errors in the "
                               f"primary's log; losing the region now would lose more than rpo_minutes"))
        out.append(at_most("archive_timeout_within_rpo", p.get("archive_timeout") or None, t.rpo_minutes * 60,
                           unit="s", target=f"{cluster.name}/{plan.primary}",
                           what="archive_timeout (the open segment reaches the DR repo at the latest after it)",
                           fix="set archive_timeout below the RPO target"))
    elif p["ready"]:
        out.append(CheckResult("dr_repo_archive_lag", Status.FAIL, f"{repo_name} holds no archived WAL: the DR "
                               f"region would have nothing to replay; check archive_command", where))
    node = figs["dr_node"]
    target = f"{cluster.name}/{site.node.name}"
    if site.dr.mode == "cold":
        out.append(CheckResult("dr_node_port_free", Status.FAIL if node["port_open"] else Status.PASS,
                               f"something answers on {site.node.host}:{site.node.port}: the DR node cannot start "
                               f"there; stop it or change {field}.dr.node.port" if node["port_open"] else
                               f"port {site.node.port} on {site.node.host} is free", target))
        out.append(CheckResult("dr_node_dir_free", Status.FAIL if node["dir"] == "in use" else Status.PASS,
                               f"{site.node.data_dir} on {site.node.host} is not empty: the restore would overwrite "
                               f"it; remove it or change {field}.dr.node.data_dir" if node["dir"] == "in use" else
                               f"{site.node.data_dir} is {node['dir']}", target))
    else:
        # A standby that chased an abandoned branch (recovery_target_timeline 'latest' after an aborted promotion)
        # stops replaying: its replay lag below grows past the bound.
        ok = node["port_open"] and node.get("in_recovery") is True
        out.append(CheckResult("dr_standby_ready", Status.PASS if ok else Status.FAIL,
                               f"{site.node.name} replays {repo_name} (in recovery)" if ok else
                               f"the warm DR standby {site.node.name} is not running in recovery "
                               f"({node.get('error') or ('down' if not node['port_open'] else 'NOT in recovery')}); "
                               f"rebuild it (make sandbox-up, or the drill's failback) before the drill", target))
        if ok:
            out.append(at_most("dr_standby_replay_lag", node.get("replay_lag_seconds"),
                               site.dr.max_replay_lag_seconds or t.rpo_minutes * 60, unit="s", target=target,
                               what=f"{site.node.name}'s replay behind {repo_name}'s newest segment"))
    svc = figs.get("service") or {}
    if svc.get("configured"):
        from drdrill.drills.failover.probes import smoke_test

        out += smoke_test(cluster, plan.run_id, retry_seconds=0)
    d = figs.get("dns") or {}
    if d.get("configured"):
        ok = d.get("points_at") == plan.primary
        out.append(CheckResult("dns_record", Status.PASS if ok else Status.FAIL,
                               f"{d.get('record')} -> {d.get('value')} ({d.get('points_at') or 'no estate node'})"
                               + ("" if ok else f"; expected the primary {plan.primary}"), "dns"))
    from drdrill.drills.failover.assessment import refuse_if_failed

    return refuse_if_failed(out, f"safeguards ({stage}) refuse the region failover; nothing was stopped")


# ---------------------------------------------------------------- the fault and the recovery
def inject_fault(plan: Plan, before: dict[str, Any]) -> dict[str, Any]:
    """The primary region is lost: its standbys, then its primary, stopped hard (``kill``: SIGKILL; ``stop``:
    pg_ctl stop -m immediate). The outage starts when the primary is down."""
    cluster = _cluster(plan)
    figs = before.get("figures") or {}
    lag = figs.get("dr_repo_lag")
    nodes = region_nodes(cluster, plan)
    if plan.dry_run:
        log.info("[DRY RUN] would %s %s (region %s)", plan.fault, [n.name for n in nodes], cluster.primary_region)
        return {"fault": plan.fault, "fault_at": time.time(), "dry_run": True, "dr_repo_lag": lag}
    estate = load_estate()
    write_record(estate, cluster.name, run_id=plan.run_id, dag_id=plan.dag_id, phase="fault",
                 primary=plan.primary, dr_node=plan.standby, stopped=[n.name for n in nodes])
    ops = NodeOps(cluster)
    last_lsn = None
    p = cluster.node(plan.primary)
    try:  # how far the primary had written, as close to the fault as can be read
        with pg.connect(cluster, p.host, p.port, "postgres") as c:
            last_lsn = pg.query_one(c, "SELECT pg_current_wal_lsn()::text")[0]
    except Exception as e:  # noqa: BLE001 - recorded, not needed
        log.warning("could not read %s's WAL position before the fault: %s", p.name, e)
    actions = []
    for n in nodes:
        rec = ops.kill(n) if plan.fault == "kill" else ops.stop(n, "immediate")
        actions.append(rec)
    done = actions[-1]["done_at"]
    log.warning("FAULT INJECTED: region %s lost (%s) at %s", cluster.primary_region,
                ", ".join(f"{a['action']} of {a['node']}" for a in actions),
                datetime.fromtimestamp(done, UTC).isoformat(timespec="milliseconds"))
    return {"fault": plan.fault, "fault_at": done, "fault_command_started_at": actions[0]["at"],
            "timeline": (figs.get("primary") or {}).get("timeline"),
            "action": f"{plan.fault} of region {cluster.primary_region} ({', '.join(a['node'] for a in actions)})",
            "nodes": actions, "primary_lsn_at_fault": last_lsn, "dr_repo_lag": lag}


def restore(plan: Plan, timeline: str | None = None) -> dict[str, Any]:
    """Cold: the DR node restored from the DR repo (a warm standby is there already)."""
    site = DrSite(_cluster(plan))
    if plan.dry_run or site.dr.mode == "warm":
        return {"skipped": "dry run" if plan.dry_run else "warm: the DR standby is running", "seconds": 0.0}
    return site.restore(timeline)


def replay(plan: Plan, timeline: str | None = None) -> dict[str, Any]:
    """Start the DR node (cold) and wait until it has replayed everything the DR repo holds."""
    site = DrSite(_cluster(plan))
    if plan.dry_run:
        return {"skipped": "dry run"}
    t0 = time.time()
    started = None
    if site.dr.mode == "cold" or not site.running():
        started = site.ops.start(site.node)
    repo = site.repo_state(timeline)  # after the fault nothing more reaches it
    out = site.wait_replayed(repo.get("newest_wal"), timeout=site.dr.replay_timeout_seconds)
    return {**out, "started": started, "dr_repo": repo, "seconds": round(time.time() - t0, 3)}


def mark_promoted(plan: Plan) -> None:
    """The DR node is primary now: the record says so, with the timeline it opened (its WAL exists only in the
    DR repo until the failback copies it to the others)."""
    if plan.dry_run:
        return
    estate = load_estate()
    cluster = _cluster(plan, estate)
    node = cluster.node(plan.standby)
    tli = None
    try:
        with pg.connect(cluster, node.host, node.port, "postgres") as c:
            tli = str(int(pg.query_one(c, "SELECT pg_walfile_name(pg_current_wal_lsn())")[0][:8], 16))
    except Exception as e:  # noqa: BLE001 - the failback then copies every timeline the other repos lack
        log.warning("could not read %s's timeline after its promotion: %s", node.name, e)
    rec = read_record(estate, plan.cluster) or {}
    write_record(estate, plan.cluster, **{**rec, "phase": "promoted", "dr_timeline": tli})


def backfill_archive(cluster: Cluster, timeline: str | None) -> dict[str, Any]:
    """Copy the WAL the DR node archived while it was primary (its timeline's segments and history file, only in
    the DR repo) into every other repo, through the primary region's config (it knows every repo): without it, a
    point-in-time recovery from the lost region's repo stops at the fault, and its archive has a hole the daily
    verification reports. ``archive-get --repo=<dr>`` then ``archive-push`` (identical files in a repo are
    skipped), on the current primary's host."""
    import posixpath

    br = PgBackRestHook.for_cluster(cluster)
    site = DrSite(cluster)
    runner = br.runner

    def names(repo: int) -> set[str]:
        out = set()
        for f in br.archive_files(repo):
            base = posixpath.basename(f)
            if base.endswith(".history"):
                out.add(base)
            elif len(base) > 24 and base[24] == "-" and not base[:24].endswith(".partial"):
                out.add(base[:24])
        return out

    have = names(site.repo)
    if timeline:
        tl8 = f"{int(timeline):08X}"
        have = {n for n in have if n.startswith(tl8)}
    copied: dict[int, list[str]] = {}
    tmp = Path(f"/tmp/drdrill-wal-backfill-{int(time.time() * 1000)}")
    runner.mkdir(tmp, 0o700, parents=True)
    try:
        for r in cluster.pgbackrest.repos:
            if r.index == site.repo:
                continue
            missing = sorted(have - names(r.index), key=lambda n: (not n.endswith(".history"), n))
            for name in missing:
                # the WAL file names are the commands' parameters: after the command, not among its options
                runner.run([*br.argv("archive-get", f"--repo={site.repo}"), name, str(tmp / name)], timeout=600)
                runner.run([*br.argv("archive-push", *[o for o in br.primary_options() if o.startswith("--pg1-path")]),
                            str(tmp / name)], timeout=600)  # archive-push takes pg1-path only
                runner.run(["rm", "-f", str(tmp / name)], timeout=30)
            copied[r.index] = missing
            if missing:
                log.info("repo%s: %d WAL file(s) of the DR timeline copied from repo%s", r.index, len(missing),
                         site.repo)
    finally:
        runner.rmtree(tmp)
    return {"timeline": timeline, "from_repo": site.repo, "copied": {str(k): v for k, v in copied.items()}}


# ---------------------------------------------------------------- back to the primary region
def abort(plan: Plan, reason: str) -> dict[str, Any]:
    """The DR node fenced (cold: removed; warm: rebuilt as standby if it was promoted), the primary region
    started again and the record pointed back at it: never two writable primaries."""
    from drdrill.core import topology
    from drdrill.drills.failover.failover_steps import switch_dns

    estate = load_estate()
    cluster = _cluster(plan, estate)
    site = DrSite(cluster)
    out: dict[str, Any] = {"reason": reason, "actions": []}
    promoted = False
    if site.running():
        try:
            promoted = site.replay_state()["in_recovery"] is False
        except Exception:  # noqa: BLE001 - a server that does not answer is fenced all the same
            promoted = True
    if site.dr.mode == "cold" or promoted:
        out["dr_node"] = site.discard()
        out["actions"].append(f"{site.node.name} stopped and removed")
    orig = cluster.node(plan.primary)
    ops = NodeOps(cluster)
    for n in sorted(region_nodes(cluster, plan), key=lambda n: n.name != plan.primary):  # the primary first
        if n.name != orig.name and promoted:
            # The DR node's promotion put a newer timeline into the repos: a standby restarted as it was (its
            # recovery_target_timeline 'latest') would follow that abandoned branch; rebuilt onto the primary's.
            f = cluster.failover
            out.setdefault("standbys", []).append(ops.rebuild_standby(
                n, orig, method=f.new_standby if f else "rewind", timeout=f.standby_streaming_timeout_seconds
                if f else 600))
            out["actions"].append(f"{n.name} rebuilt as standby of {orig.name}")
        elif not ops.running_pid(n):
            ops.start(n)
            out["actions"].append(f"started {n.name}")
        if n.name == orig.name and promoted:
            # the abandoned promotion archived a .partial of this segment name: switch before anyone promotes again
            with pg.connect(cluster, orig.host, orig.port, "postgres") as c:
                out["wal_switched_at"] = pg.query_one(c, "SELECT pg_switch_wal()::text")[0]
    if cluster.failover and cluster.failover.dns:
        out["dns"] = switch_dns(plan, orig.name)
        out["actions"].append(f"DNS back to {orig.name}")
    topology.record(estate, cluster.name, orig.name, run_id=plan.run_id, drill=plan.dag_id, reason="region abort")
    if site.dr.mode == "warm" and promoted:
        out["warm"] = site.build_warm()
        out["actions"].append(f"{site.node.name} rebuilt as warm standby")
    clear_record(estate, cluster.name)
    log.warning("region drill aborted (%s): %s", reason, "; ".join(out["actions"]) or "nothing to do")
    return out


def finish_failback(plan: Plan) -> dict[str, Any]:
    """After the switchover back: the primary region's other nodes stream again, the DR node back to its mode,
    and a backup to every repo (the lost region's repo never received the DR timeline's WAL)."""
    estate = load_estate()
    cluster = _cluster(plan, estate)
    site = DrSite(cluster)
    f = cluster.failover
    ops = NodeOps(cluster)
    primary = cluster.node(plan.primary)
    out: dict[str, Any] = {"standbys": [], "backups": []}
    if plan.dry_run:
        return {"dry_run": True}
    for n in region_nodes(cluster, plan):
        if n.name != plan.primary:
            out["standbys"].append(ops.rebuild_standby(n, primary, method=f.new_standby if f else "rewind",
                                                       timeout=f.standby_streaming_timeout_seconds if f else 600))
    rec = read_record(estate, cluster.name) or {}
    out["archive_backfill"] = backfill_archive(cluster.with_primary(primary.name), rec.get("dr_timeline"))
    if site.dr.failback_backup != "none":  # before a warm rebuild: it restores the newest backup, on this timeline
        br = PgBackRestHook.for_cluster(cluster.with_primary(primary.name))
        for r in cluster.pgbackrest.repos:
            t0 = time.time()
            br.backup(repo=r.index, type=site.dr.failback_backup)
            out["backups"].append({"repo": r.index, "type": site.dr.failback_backup,
                                   "seconds": round(time.time() - t0, 3)})
    out["dr_node"] = site.discard() if site.dr.mode == "cold" else site.build_warm()
    clear_record(estate, cluster.name)
    return out


def heal(estate: Any, cluster: Cluster, run_id: str, is_active: Any, *, dry_run: bool = False
         ) -> dict[str, Any] | None:
    """What a killed region drill left (its record names the run): before the fault's recovery was promoted,
    the primary region is started again and the DR node fenced; after it, the failback is completed.
    A dry run acts on nothing: it refuses, saying what the next real run will do."""
    rec = read_record(estate, cluster.name)
    if not rec or rec.get("run_id") == run_id:
        return None
    if is_active and is_active(rec.get("run_id")):
        raise PreflightError(f"region drill {rec.get('run_id')} is still running on cluster {cluster.name}; let it "
                             f"finish")
    if dry_run:
        what = ("fence the DR node and start the primary region again" if rec.get("phase") != "promoted" else
                f"fail back from the DR node {rec.get('dr_node')} to {rec.get('primary')}")
        raise PreflightError(f"region drill {rec.get('run_id')} left cluster {cluster.name} mid-drill (phase "
                             f"{rec.get('phase')}): a real run heals it first ({what}); a dry run acts on nothing")
    from drdrill.drills.failover import failover_steps

    old = Plan.from_dict({"dag_id": rec.get("dag_id"), "run_id": rec["run_id"], "cluster": cluster.name,
                          "primary": rec["primary"], "standby": rec["dr_node"], "fault": None, "failback": True,
                          "dry_run": False, "workdir": "", "started_at": rec.get("at", time.time()),
                          "approval_required": False, "skip_health_wait": False, "health_check_failed_seconds": 0,
                          "health_check_interval_seconds": 1, "primary_addr": {}, "conn_id": None,
                          "scope": "region"})
    log.warning("healing what region drill %s left on %s (phase %s)", rec["run_id"], cluster.name, rec.get("phase"))
    if rec.get("phase") != "promoted":
        return {"run_id": rec["run_id"], "phase": rec.get("phase"), "abort": abort(old, "left by a killed run")}
    # The DR node is primary: bring the primary region back from it, as the failback does.
    from drdrill.drills.failover.stabilize import new_standby

    out: dict[str, Any] = {"run_id": rec["run_id"], "phase": "promoted"}
    c = load_estate().cluster(cluster.name)
    if c.primary.name == old.standby:
        out["new_standby"] = new_standby(old, old.primary, old.standby)
        out["switchover"] = failover_steps.failback_switchover(old, None)
        out["dns"] = failover_steps.switch_dns(old, old.primary)
    out["failback"] = finish_failback(old)
    return out
