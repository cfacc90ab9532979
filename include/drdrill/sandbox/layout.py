"""Where the sandbox keeps its files, and how it tells whether a server it recorded is alive.

Owns no server: every server module takes its paths from `Layout` (one root, git-ignored),
writes its PID to ``Layout.pidfile(name)`` and checks it with the helpers here, which never
find a process by name.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from secrets import token_urlsafe

log = logging.getLogger("drdrill.sandbox")

PG_USER = "postgres"
# The database roles the sandbox creates (passwords generated into `Layout.secrets`):
DRILL_ROLE = "drdrill"  # the drills' least-privilege login (drdrill.core.privileges), in the Airflow connection
REPLICATION_ROLE = "replicator"  # the standbys' streaming login (primary_conninfo, through a passfile)


@dataclass(frozen=True)
class Layout:
    """Every path of the sandbox, derived from one root."""

    root: Path

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def logs(self) -> Path:
        return self.root / "log"

    @property
    def tls(self) -> Path:
        return self.root / "tls"

    @property
    def ca(self) -> Path:
        return self.tls / "localhost.pem"

    @property
    def key(self) -> Path:
        return self.tls / "localhost.key"

    @property
    def backrest(self) -> Path:
        return self.root / "pgbackrest"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def pgpass(self) -> Path:
        """Password files the servers' OS user reads (the standbys' replication login), mode 0600."""
        return self.root / "pgpass"

    @property
    def journal(self) -> Path:
        return self.root / "journal"

    @property
    def scratch(self) -> Path:
        return self.root / "scratch"

    @property
    def service(self) -> Path:
        return self.root / "service"

    @property
    def supervisor_conf(self) -> Path:
        return self.service / "supervisord.conf"

    @property
    def supervisor_sock(self) -> Path:
        return self.run / "supervisor.sock"

    def pidfile(self, name: str) -> Path:
        return self.pids / f"{name}.pid"

    def secret(self, name: str) -> str:
        """A generated secret kept in the sandbox's secrets dir (mode 0600), never printed."""
        p = self.secrets / name
        if not p.exists():
            p.write_text(token_urlsafe(32))
            p.chmod(0o600)
        return p.read_text().strip()

    def create(self) -> None:
        """The directories, owned by whoever writes into them."""
        for d in (self.root, self.run, self.pids, self.logs, self.tls, self.backrest, self.backrest / "repo1",
                  self.backrest / "log", self.backrest / "lock", self.backrest / "spool", self.secrets,
                  self.journal, self.scratch):
            d.mkdir(parents=True, exist_ok=True)
        for d in (self.run, self.logs, self.backrest, self.backrest / "repo1", self.backrest / "log",
                  self.backrest / "lock", self.backrest / "spool", self.scratch):
            shutil.chown(d, PG_USER, PG_USER)
        self.secrets.chmod(0o700)
        self.logs.chmod(0o777)  # the moto log (root) and server logs (postgres) live side by side
        make_traversable(self.root)


def make_traversable(path: Path) -> None:
    """The postgres user must reach the sandbox (a clone under ``mktemp -d`` is mode 0700)."""
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        if not mode & stat.S_IXOTH:
            log.info("granting o+x on %s so the postgres user can reach the sandbox", p)
            p.chmod(mode | stat.S_IXOTH)


def write_as_postgres(path: Path, text: str, mode: int = 0o640) -> None:
    """Write a file the servers read as the postgres user (configs, some holding secrets)."""
    path.write_text(text)
    shutil.chown(path, PG_USER, PG_USER)
    path.chmod(mode)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not reaped) is not alive.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def recorded_pid(path: Path) -> int | None:
    """The PID in ``path`` if that process is alive, else None."""
    pid = read_pid(path)
    return pid if pid_alive(pid) else None


def is_ours(pid: int | None, *needles: str) -> bool:
    """The process's command line names every one of ``needles`` (guards against recycled PIDs)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return all(n in cmd for n in needles)


def wait_for_exit(pid: int, tries: int) -> bool:
    """Poll every 0.1 s, at most ``tries`` times, until ``pid`` has exited; False if it has not."""
    for _ in range(tries):
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return False


def postmaster_pid(data_dir: Path) -> int | None:
    """The running server's PID from ``postmaster.pid``, if that process is alive."""
    return recorded_pid(data_dir / "postmaster.pid")
