"""Scratch directories of drill runs: restore tests' servers, failover runs' canary writers.

A scratch directory is ``<scratch root>/<run tag>/`` and holds a tag file naming the run that
made it. Only directories with a tag file are ever removed, so a mistyped root can never
delete someone's data. A worker that died mid-run leaves a tagged directory behind; the next
run's setup finds it and removes it (server stopped first).

Every file operation goes through the runner of the host the scratch lives on (the restore
test's backup host, `Cluster.backup_runner`, possibly over SSH; a failover run's canary
directory is on the worker): the runner's `read_text` / `write_text` / `mkdir` / `rmtree`.
Without a runner, this worker's files.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drdrill.core.errors import PreflightError
from drdrill.core.estate import Estate
from drdrill.core.runner import LocalRunner, Runner

log = logging.getLogger(__name__)

TAG_FILE = "drdrill-scratch.json"


@dataclass(frozen=True)
class Scratch:
    """One allocated scratch server: where its data lives and which port it listens on."""

    run_id: str
    dir: str
    port: int
    host: str
    dag_id: str = ""

    @property
    def data_dir(self) -> Path:
        return Path(self.dir) / "data"

    @property
    def socket_dir(self) -> Path:
        return Path(self.dir) / "run"

    @property
    def logfile(self) -> Path:
        return Path(self.dir) / "postgres.log"

    def to_dict(self) -> dict:
        return asdict(self)


def run_tag(run_id: str) -> str:
    """A directory-safe, unique tag for a run id."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)[:120]


def port_free(host: str, port: int) -> bool:
    """Whether a scratch server could listen on ``host:port``.

    On this machine: the port can be bound. On another host (the backup host, reached through
    the SSH runner): nothing answers there, the connection is refused. A host that does not
    answer at all counts as not free (the worker must reach the scratch server for its checks).
    """
    from drdrill.core.hosts import is_this_machine

    if not is_this_machine(host):
        try:
            with socket.create_connection((host, port), timeout=1):
                return False  # something listens
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def production_paths(estate: Estate) -> list[Path]:
    return [n.data_dir.resolve() for c in estate.clusters for n in c.members if n.data_dir]


def production_ports(estate: Estate) -> set[int]:
    return {n.port for c in estate.clusters for n in c.members}


def refuse_production(estate: Estate, scratch_dir: Path, port: int | None) -> None:
    """Raise `PreflightError` when a scratch target is, contains or sits inside a server's data."""
    target = scratch_dir.resolve()
    for p in production_paths(estate):
        if target == p or p.is_relative_to(target) or target.is_relative_to(p):
            raise PreflightError(f"scratch directory {target} overlaps the data directory {p} of a server in "
                                 f"the estate; a restore there would overwrite it. Use the estate's scratch.root "
                                 f"({estate.scratch.root}) or another empty directory.")
    if port is not None and port in production_ports(estate):
        raise PreflightError(f"scratch port {port} is the port of a server in the estate; a scratch server "
                             f"must listen on its own port (estate scratch.port_range "
                             f"{list(estate.scratch.port_range)}).")


def allocate(estate: Estate, run_id: str, *, scratch_dir: str | None = None, port: int | None = None,
             dag_id: str = "") -> Scratch:
    """Choose the scratch directory and a free port for this run (nothing is created)."""
    root = Path(scratch_dir) if scratch_dir else estate.scratch.root
    refuse_production(estate, root / run_tag(run_id), port)
    return allocate_in(root, run_id, host=estate.scratch.host, port=port, port_range=estate.scratch.port_range,
                       taken=production_ports(estate), dag_id=dag_id)


def allocate_in(root: Path, run_id: str, *, host: str, port: int | None, port_range: tuple[int, int],
                taken: set[int] | frozenset[int] = frozenset(), dag_id: str = "") -> Scratch:
    """Choose ``<root>/<run tag>`` and ``port`` (or the first free one of ``port_range`` not ``taken``)."""
    d = Path(root) / run_tag(run_id)
    if port is None:
        lo, hi = port_range
        port = next((p for p in range(lo, hi + 1) if p not in taken and port_free(host, p)), None)
        if port is None:
            raise PreflightError(f"no free port in scratch.port_range {lo}-{hi}; leftover scratch servers? "
                                 f"run `make sandbox-status` or widen the range")
    elif not port_free(host, port):
        raise PreflightError(f"scratch port {port} is already in use on {host}")
    return Scratch(run_id=run_id, dir=str(d), port=port, host=host, dag_id=dag_id)


LEASE_ENV = "DRDRILL_SCRATCH_LEASE_MINUTES"


def lease_seconds(default_minutes: float) -> float:
    """How long a scratch may live without renewal: ``$DRDRILL_SCRATCH_LEASE_MINUTES``, else the default."""
    return float(os.environ.get(LEASE_ENV) or default_minutes) * 60


def create(scratch: Scratch, runner: Runner, owner: str | None = None, *, lease: float = 24 * 3600) -> None:
    """Create the tagged scratch directory on the runner's host, owned by the runner's user (the
    server's OS user). ``owner`` is only checked: it must be that user when given.

    The tag carries a lease: past ``lease_until`` the scratch is a leftover for any run's cleanup,
    whatever Airflow says about the run that made it (a killed run can read as running for ever).
    The run renews it (`renew`) as it goes.
    """
    if owner and owner != runner.user and runner.user != "root":
        raise PreflightError(f"the scratch server would run as {runner.user!r}, not {owner!r}")
    d = Path(scratch.dir)
    if runner.exists(d):
        raise PreflightError(f"scratch directory {d} already exists; a previous run did not clean up and its "
                             f"setup could not remove it")
    runner.mkdir(d.parent, parents=True)
    runner.mkdir(d)
    write_tag(d, scratch.to_dict(), lease=lease, runner=runner)
    runner.mkdir(scratch.socket_dir)
    runner.mkdir(scratch.data_dir, 0o700)


def stop_server(data_dir: Path, runner: Runner, bin_dir: Path) -> bool:
    """Stop a scratch server if one runs in ``data_dir`` (immediate: its data is thrown away).

    Raises when it cannot be stopped, so nothing is removed under a running server.
    """
    from drdrill.core import pgctl

    if not runner.exists(data_dir / "postmaster.pid"):
        return False
    return pgctl.stop(runner, bin_dir, data_dir, mode="immediate", name=f"scratch server in {data_dir}")[
        "was_running"]


def remove(scratch_dir: Path, runner: Runner, bin_dir: Path) -> None:
    """Stop the server and delete a tagged scratch directory on the runner's host. Untagged
    directories are refused."""
    if not runner.exists(scratch_dir):
        return
    if not runner.exists(scratch_dir / TAG_FILE):
        raise PreflightError(f"refusing to remove {scratch_dir}: it has no {TAG_FILE}, so drdrill did not create it")
    if stop_server(scratch_dir / "data", runner, bin_dir):
        log.info("stopped scratch server in %s", scratch_dir)
    from drdrill.core import canary

    if canary.stop(scratch_dir):  # a failover run's canary writer lives in its scratch directory (this worker)
        log.info("stopped the canary writer of %s", scratch_dir)
    runner.rmtree(scratch_dir)
    log.info("removed scratch directory %s", scratch_dir)


def write_tag(d: Path, fields: dict, *, lease: float, runner: Runner | None = None) -> float:
    """Write the tag file that makes ``d`` a scratch directory, its lease running from now.

    Replaced whole (temp file + rename): a reader never sees half a tag. Returns ``lease_until``.
    """
    until = time.time() + lease
    (runner or LocalRunner()).write_text(d / TAG_FILE, json.dumps({**fields, "lease_seconds": lease,
                                                                    "lease_until": until}))
    return until


def renew(d: Path | str, runner: Runner | None = None) -> float | None:
    """Extend a scratch's lease by its own length from now (a step of its run is still working)."""
    d = Path(d)
    tag = read_tag(d, runner)
    if not tag or "lease_seconds" not in tag:
        return None
    return write_tag(d, tag, lease=float(tag["lease_seconds"]), runner=runner)


def read_tag(d: Path, runner: Runner | None = None) -> dict:
    try:
        return json.loads((runner or LocalRunner()).read_text(Path(d) / TAG_FILE) or "")
    except ValueError:
        return {}


def leftovers(root: Path, keep_run_id: str | None = None,
              is_active: Callable[[dict], bool] | None = None, runner: Runner | None = None,
              dag_ids: tuple[str, ...] | None = None) -> list[Path]:
    """Tagged scratch directories under ``root`` (on ``runner``'s host) left by other runs that are no
    longer active; only those of ``dag_ids`` when given.

    ``is_active(tag)`` says whether the run that made a directory is still running (asked of
    Airflow by the caller): a concurrent run's scratch is never taken for a leftover, unless its
    lease has run out (its run was killed, or is stuck far past any target).
    """
    runner = runner or LocalRunner()
    out = []
    for name in runner.listdir(root):
        d = Path(root) / name
        tag = read_tag(d, runner)
        if not tag:  # no tag (or not a directory): drdrill did not make it
            continue
        if dag_ids is not None and tag.get("dag_id") not in dag_ids:
            continue
        if tag.get("run_id") == keep_run_id:
            continue
        until = tag.get("lease_until")
        if until and until < time.time():
            log.warning("scratch %s of run %s: its lease ran out at %s; removing it whatever Airflow says about "
                        "that run", d, tag.get("run_id"), datetime.fromtimestamp(until, UTC).isoformat())
            out.append(d)
            continue
        if is_active and tag and is_active(tag):
            log.info("scratch %s belongs to run %s, which is still active: left alone", d, tag.get("run_id"))
            continue
        out.append(d)
    return out


def active_in_airflow(ti: Any, default_dag_id: str) -> Callable[[dict], bool]:
    """``is_active(tag)`` for `leftovers`: is the run that made a scratch directory queued or running?

    Asked of Airflow (the task's own API, so it works on any executor). A run Airflow does not
    know counts 0: not active. An error asking is not an answer: the directory is kept and the
    log says so, because removing a live run's scratch would kill its server mid-restore.
    """

    def is_active(tag: dict) -> bool:
        dag_id, run_id = tag.get("dag_id") or default_dag_id, tag.get("run_id")
        try:
            return ti.get_dr_count(dag_id=dag_id, run_ids=[run_id], states=["queued", "running"]) > 0
        except Exception as e:  # noqa: BLE001 - any failure to ask means "unknown", never "not active"
            log.warning("could not ask Airflow whether run %s of %s is still active (%s: %s); keeping its scratch "
                        "%s. The next run retries; remove it by hand only once that run has ended.", run_id,
                        dag_id, type(e).__name__, e, tag.get("dir"))
            return True

    return is_active


def remove_all_scratch(root: Path, runner: Runner, bin_dir: Path, keep_run_id: str | None = None,
                       is_active: Callable[[dict], bool] | None = None,
                       dag_ids: tuple[str, ...] | None = None) -> list[Path]:
    """Remove every leftover scratch of other runs (a worker died mid-run) on ``runner``'s host, only
    those of ``dag_ids`` when given; returns what was removed."""
    removed = leftovers(root, keep_run_id, is_active, runner, dag_ids)
    for d in removed:
        log.warning("removing leftover scratch %s (from a run that did not clean up)", d)
        remove(d, runner, bin_dir)
    return removed
