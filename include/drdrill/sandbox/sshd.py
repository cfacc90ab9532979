"""A real OpenSSH server on loopback in front of the sandbox's nodes: what the SSH runner talks to.

The sandbox's databases live on this machine, so the `local` runner reaches them; production
databases are elsewhere, reached through the SSH runner. This sshd (Debian ``openssh-server``)
lets the same drills run through SSH here: it listens on 127.0.0.1 only, on its own port, with
its own config, host key and authorized_keys under ``<sandbox>/sshd/``; only the ``postgres``
account may log in, with a generated ed25519 key and no password. Started in the background in
its own session, recorded by PID, stopped by PID.

Each Airflow SSH connection it serves (`SandboxSSHD.connection`: ``sandbox_ssh``, or
``sandbox_ssh_<name>`` for one per "host", e.g. pg1, pg2 and the backup host) has its own key,
whose ``authorized_keys`` line forces a recorder: it appends ``<name> <command>`` to
``<sandbox>/log/sshd-commands.log``, then runs the command. The tests read it to prove that a
drill's commands really went through SSH, and through the connection of the node they act on.
``LogLevel VERBOSE`` logs each login to ``sshd.log``. `ssh_estate` writes the sandbox estate
with SSH runners (one connection per node, one for the backup host).

Two facts of this machine it handles: sshd needs ``/run/sshd`` (privilege separation), and the
``postgres`` account is locked (``!`` in /etc/shadow), which makes sshd refuse even key logins;
``usermod -p '*' postgres`` unlocks it for keys while no password can ever match.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from drdrill.core.errors import DrillError
from drdrill.sandbox.layout import PG_USER, Layout, is_ours, recorded_pid, wait_for_exit
from drdrill.sandbox.ports import in_use

log = logging.getLogger("drdrill.sandbox")

SSHD = "/usr/sbin/sshd"
CONN_ID = "sandbox_ssh"
DEFAULT_PORT = 55622

_RECORDER = """#!/bin/sh
# drdrill sandbox: record which connection ($1) asked for which command, then run it
# (forced by the connection key's line in authorized_keys).
printf '%s %s\\n' "$1" "$SSH_ORIGINAL_COMMAND" >> {log}
exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
"""


class SandboxSSHD:
    """sshd on 127.0.0.1:``port`` for the ``postgres`` account, keys generated on first start."""

    def __init__(self, layout: Layout, port: int = DEFAULT_PORT) -> None:
        self.layout = layout
        self.port = port
        self.dir = layout.root / "sshd"

    # ------------------------------------------------------------ paths
    @property
    def config(self) -> Path:
        return self.dir / "sshd_config"

    @property
    def host_key(self) -> Path:
        return self.dir / "ssh_host_ed25519_key"

    @property
    def keys(self) -> Path:
        """One private key per connection name (mode 0600, never printed)."""
        return self.dir / "keys"

    @property
    def recorder(self) -> Path:
        return self.dir / "record-command"

    @property
    def authorized_keys(self) -> Path:
        return self.dir / "authorized_keys"

    @property
    def pidfile(self) -> Path:
        return self.layout.pidfile("sshd")

    @property
    def logfile(self) -> Path:
        return self.layout.logs / "sshd.log"

    @property
    def commands_log(self) -> Path:
        """One line per command sshd ran (what the SSH runner sent)."""
        return self.layout.logs / "sshd-commands.log"

    # ------------------------------------------------------------ lifecycle
    def pid(self) -> int | None:
        pid = recorded_pid(self.pidfile)
        return pid if pid and is_ours(pid, "sshd", str(self.config)) else None

    def start(self) -> int:
        """Start sshd (idempotent); returns its PID."""
        pid = self.pid()
        if pid:
            return pid
        self._preflight()
        self._files()
        res = subprocess.run([SSHD, "-t", "-f", str(self.config)], capture_output=True, text=True, timeout=30)
        if res.returncode != 0:
            raise DrillError(f"sshd refuses its config {self.config}: {res.stderr.strip()}")
        # sshd forks into the background itself and writes PidFile once it listens.
        res = subprocess.run(["setsid", SSHD, "-f", str(self.config), "-E", str(self.logfile)],
                             capture_output=True, text=True, timeout=30)
        if res.returncode != 0:
            raise DrillError(f"sshd did not start (exit {res.returncode}): {res.stderr.strip()}; see {self.logfile}")
        for _ in range(100):
            pid = self.pid()
            if pid and in_use(self.port):
                log.info("sshd listening on 127.0.0.1:%s (pid %s)", self.port, pid)
                return pid
            time.sleep(0.05)
        raise DrillError(f"sshd did not come up on 127.0.0.1:{self.port}; see {self.logfile}")

    def stop(self) -> None:
        """Stop sshd by its recorded PID (open sessions end with it)."""
        pid = self.pid()
        if not pid:
            return
        os.kill(pid, signal.SIGTERM)
        if not wait_for_exit(pid, 50):
            os.kill(pid, signal.SIGKILL)
            wait_for_exit(pid, 50)
        log.info("sshd stopped (pid %s)", pid)

    def problems(self) -> list[str]:
        return [] if self.pid() else [f"sshd is not running on 127.0.0.1:{self.port}"]

    def status(self) -> dict:
        return {"name": "sshd", "role": "SSH runner's host", "port": self.port, "pid": self.pid(),
                "state": "running" if self.pid() else "stopped"}

    # ------------------------------------------------------------ what the drills' Airflow needs
    def host_public_key(self) -> str:
        """``ssh-ed25519 AAAA...``: what the connection pins as ``host_key``."""
        return " ".join((self.host_key.with_suffix(".pub")).read_text().split()[:2])

    @staticmethod
    def conn_id(name: str = "sandbox") -> str:
        return CONN_ID if name == "sandbox" else f"{CONN_ID}_{name}"

    def connection(self, name: str = "sandbox") -> dict[str, str]:
        """The Airflow SSH connection ``conn_id(name)`` as an env var, with its own key (made on first
        use and authorized at once). The host key is pinned (``host_key``; no ``no_host_key_check``)."""
        key = self.keys / name
        if not key.exists():
            self.keys.mkdir(mode=0o700, parents=True, exist_ok=True)
            _keygen(key, f"drdrill-sandbox-{name}")
            self._authorize()
        conn = {"conn_type": "ssh", "host": "127.0.0.1", "port": self.port, "login": PG_USER,
                "extra": {"key_file": str(key), "host_key": self.host_public_key(),
                          "no_host_key_check": False, "look_for_keys": False}}
        return {f"AIRFLOW_CONN_{self.conn_id(name).upper()}": json.dumps(conn)}

    def connections(self) -> dict[str, str]:
        """Every connection made so far (env vars)."""
        names = sorted(p.name for p in self.keys.glob("*") if p.suffix != ".pub") if self.keys.exists() else []
        return {k: v for n in names for k, v in self.connection(n).items()}

    def recorded_commands(self, name: str | None = None) -> list[str]:
        """The commands sshd ran, in order (of connection ``name`` only, when given)."""
        try:
            lines = self.commands_log.read_text().splitlines()
        except FileNotFoundError:
            return []
        if name is None:
            return [ln.split(" ", 1)[1] for ln in lines if " " in ln]
        return [ln.split(" ", 1)[1] for ln in lines if ln.startswith(name + " ")]

    def _authorize(self) -> None:
        lines = [f'command="{self.recorder} {p.stem}",no-port-forwarding,no-agent-forwarding,no-X11-forwarding,'
                 f'no-pty {p.read_text().strip()}' for p in sorted(self.keys.glob("*.pub"))]
        self.authorized_keys.write_text("\n".join(lines) + "\n")
        self.authorized_keys.chmod(0o644)

    # ------------------------------------------------------------ setup
    def _preflight(self) -> None:
        if not Path(SSHD).exists():
            raise DrillError(f"{SSHD} is missing; run `make install` (apt-get install -y openssh-server)")
        if os.geteuid() != 0:
            raise DrillError("the sandbox's sshd runs as root on loopback (it logs users in): run as root")
        if in_use(self.port):
            raise DrillError(f"port {self.port} (the sandbox's sshd) is in use by another process")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        self._unlock_postgres()

    @staticmethod
    def _unlock_postgres() -> None:
        """A locked account (``!`` password) may not log in even with a key: make it ``*`` (no password
        can match, keys work)."""
        for line in Path("/etc/shadow").read_text().splitlines():
            name, pw = (line.split(":") + ["", ""])[:2]
            if name == PG_USER and pw.startswith("!"):
                log.info("unlocking the %s account for SSH key logins (usermod -p '*'): no password can match",
                         PG_USER)
                subprocess.run(["usermod", "-p", "*", PG_USER], check=True, capture_output=True, timeout=30)

    def _files(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)  # sshd reads authorized_keys as the postgres user
        if not self.host_key.exists():
            _keygen(self.host_key, "drdrill-sandbox-host")
        self._authorize()
        self.layout.logs.mkdir(parents=True, exist_ok=True)
        self.commands_log.touch()
        shutil.chown(self.commands_log, PG_USER, PG_USER)
        self.recorder.write_text(_RECORDER.format(log=self.commands_log))
        self.recorder.chmod(0o755)
        self.config.write_text("\n".join([
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key}",
            f"PidFile {self.pidfile}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            f"AllowUsers {PG_USER}",
            "PermitRootLogin no",
            "UsePAM no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            # The sandbox lives wherever the checkout is, e.g. under /tmp (mode 1777): sshd's strict
            # modes refuse an authorized_keys file below a world-writable directory. The file itself is
            # root's, mode 0644, and the sshd listens on loopback only.
            "StrictModes no",
            "AllowTcpForwarding no",
            "X11Forwarding no",
            "PrintMotd no",
            "LogLevel VERBOSE",
            # sshd itself ends at most this many unauthenticated connections at once
            "MaxStartups 50:30:100",
            "MaxSessions 50",
            "",
        ]))
        self.layout.pids.mkdir(parents=True, exist_ok=True)


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True,
                   capture_output=True, timeout=30)


def ssh_estate(source: Path, target: Path, nodes: list[str], sshd: SandboxSSHD) -> dict[str, str]:
    """Write the estate ``source`` with SSH runners to ``target``; return the connections' env vars.

    The cluster's runner is ``sandbox_ssh``; every node in ``nodes`` gets its own
    (``sandbox_ssh_<node>``) and pgBackRest's backup host too (``sandbox_ssh_backup``): the same
    sshd serves them all, and its command log tells them apart.
    """
    import yaml

    raw = yaml.safe_load(source.read_text())
    env = sshd.connection()
    for c in raw["clusters"]:
        if "sandbox" not in c:
            continue
        c["runner"] = {"kind": "ssh", "ssh_conn_id": sshd.conn_id()}
        for n in c["nodes"]:
            if n["name"] in nodes:
                n["runner"] = {"kind": "ssh", "ssh_conn_id": sshd.conn_id(n["name"])}
                env.update(sshd.connection(n["name"]))
        c["pgbackrest"]["runner"] = {"kind": "ssh", "ssh_conn_id": sshd.conn_id("backup")}
        env.update(sshd.connection("backup"))
    target.write_text("# generated from " + str(source) + " by drdrill.sandbox.sshd.ssh_estate: "
                      "every command through the sandbox's sshd\n" + yaml.safe_dump(raw, sort_keys=False))
    return env
