"""Where pgBackRest and PostgreSQL commands run: one interface, one implementation per place.

Drill code hands a runner an argv list (never a shell string) and gets a `CommandResult`.
`LocalRunner` runs on the worker (the sandbox, or a worker that is the database host);
`SSHRunner` runs on another host through an Airflow SSH connection (the ssh provider's
`SSHHook`); `KubernetesRunner` is the seam for a pod, refused in this version.
Arguments that look like secrets are redacted before anything is logged.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from drdrill.core.errors import CommandError, EstateError, RunnerConnectionError
from drdrill.core.estate import RunnerSpec

log = logging.getLogger(__name__)

_SECRET = re.compile(r"(?i)(pass|secret|key|token|password)")


def redact(argv: list[str]) -> str:
    """The command as a log line, with the value of any secret-looking option hidden."""
    out = []
    for a in argv:
        name = a.split("=", 1)[0]
        out.append(f"{name}=***" if "=" in a and _SECRET.search(name) else a)
    return shlex.join(out)


@dataclass(frozen=True)
class CommandResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


class Runner(Protocol):
    """Runs one command on the place a cluster's commands must run, and handles small files there.

    The file methods act on the host the commands run on (a scratch directory's tag file, the
    scratch server's settings), owned by the runner's user, so the same code serves this
    worker and a host reached over SSH.
    """

    @property
    def user(self) -> str | None:
        """The OS user commands run as there (owner of what they create)."""
        ...

    def read_text(self, path: Path) -> str | None: ...

    def write_text(self, path: Path, text: str) -> None: ...

    def exists(self, path: Path) -> bool: ...

    def listdir(self, path: Path) -> list[str]: ...

    def mkdir(self, path: Path, mode: int = 0o755, *, parents: bool = False) -> None: ...

    def rmtree(self, path: Path) -> None: ...

    def run(self, argv: list[str], *, timeout: float = 600, check: bool = True,
            env: dict[str, str] | None = None, stream: bool = False, input: str | None = None) -> CommandResult: ...


class _CommandFiles:
    """The `Runner` file methods through the runner's own commands (for a host that is not this one)."""

    run: Any

    def read_text(self, path: Path) -> str | None:
        """The file's text, or None when it does not exist or cannot be read."""
        res = self.run(["cat", "--", str(path)], timeout=30, check=False)
        return res.stdout if res.returncode == 0 else None

    def write_text(self, path: Path, text: str) -> None:
        """Replace the file whole (temp file + rename): a reader never sees half of it."""
        tmp = Path(path).with_name(f".{Path(path).name}.tmp")
        self.run(["dd", f"of={tmp}", "status=none"], timeout=30, input=text)
        self.run(["mv", "-f", "--", str(tmp), str(path)], timeout=30)

    def exists(self, path: Path) -> bool:
        return self.run(["test", "-e", str(path)], timeout=30, check=False).returncode == 0

    def listdir(self, path: Path) -> list[str]:
        """Names in a directory, sorted; empty when it does not exist."""
        res = self.run(["ls", "-A1", "--", str(path)], timeout=30, check=False)
        return sorted(res.stdout.splitlines()) if res.returncode == 0 else []

    def mkdir(self, path: Path, mode: int = 0o755, *, parents: bool = False) -> None:
        """Create a directory (an error when it exists, unless ``parents``)."""
        self.run(["mkdir", *(["-p"] if parents else []), "-m", f"{mode:o}", "--", str(path)], timeout=30)

    def rmtree(self, path: Path) -> None:
        self.run(["rm", "-rf", "--", str(path)], timeout=600)


class LocalRunner:
    """Runs commands on this machine, as ``run_as`` when we are root (PostgreSQL refuses root).

    Each command gets its own session so a timeout kills the whole process group, and a
    server started through ``pg_ctl`` does not die with the Airflow task that started it.
    """

    def __init__(self, run_as: str | None = None) -> None:
        self.run_as = run_as

    @property
    def user(self) -> str:
        return self.run_as or getpass.getuser()

    # ------------------------------------------------------------ files on this machine
    # Done in-process (no command per file), owned by ``run_as`` like what its commands create.
    def _own(self, path: Path) -> None:
        if self.run_as and self.run_as != "root" and os.geteuid() == 0:
            shutil.chown(path, self.run_as, self.run_as)

    def read_text(self, path: Path) -> str | None:
        try:
            return Path(path).read_text()
        except OSError:
            return None

    def write_text(self, path: Path, text: str) -> None:
        p = Path(path)
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_text(text)
        self._own(tmp)
        tmp.replace(p)

    def exists(self, path: Path) -> bool:
        return Path(path).exists()

    def listdir(self, path: Path) -> list[str]:
        p = Path(path)
        return sorted(c.name for c in p.iterdir()) if p.is_dir() else []

    def mkdir(self, path: Path, mode: int = 0o755, *, parents: bool = False) -> None:
        p = Path(path)
        if parents and p.is_dir():
            return  # like mkdir -p: an existing directory is left as it is
        p.mkdir(mode=mode, parents=parents)
        p.chmod(mode)  # whatever the umask
        self._own(p)

    def rmtree(self, path: Path) -> None:
        shutil.rmtree(path)

    def _wrap(self, argv: list[str]) -> list[str]:
        if self.run_as and os.geteuid() == 0 and self.run_as != "root":
            return ["runuser", "-u", self.run_as, "--", *argv]
        if self.run_as and self.run_as != getpass.getuser():
            raise EstateError(f"commands must run as {self.run_as!r} but this worker runs as "
                              f"{getpass.getuser()!r} and is not root; run the worker as {self.run_as!r}")
        return argv

    def run(self, argv: list[str], *, timeout: float = 600, check: bool = True,
            env: dict[str, str] | None = None, stream: bool = False, input: str | None = None) -> CommandResult:
        """Run ``argv``; with ``stream`` every output line is logged as it arrives (long restores).

        ``input`` is written to the command's stdin (e.g. a config file through ``tee``).
        """
        full = self._wrap(list(argv))
        shown = redact(list(argv))
        log.info("run: %s", shown)
        t0 = time.monotonic()
        proc = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True, env={**os.environ, **(env or {})},
                                stdin=subprocess.DEVNULL if input is None else subprocess.PIPE)
        try:
            out, err = (self._stream(proc, timeout) if stream and input is None
                        else proc.communicate(input=input, timeout=timeout))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise CommandError(f"timed out after {timeout:.0f}s: {shown}", argv=list(argv),
                               output=(err or "")[-2000:], timed_out_after=timeout) from None
        except BaseException:
            # The task was killed or interrupted: do not leave e.g. a restore writing into a
            # scratch directory that teardown is about to remove.
            log.warning("interrupted: killing %s", shown)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        res = CommandResult(list(argv), proc.returncode, out, err, time.monotonic() - t0)
        log.info("exit code %s after %.1fs", proc.returncode, res.seconds)
        if check and proc.returncode != 0:
            tail = (err or out or "").strip()[-2000:]
            raise CommandError(f"exit code {proc.returncode} from: {shown}\n{tail}", argv=list(argv),
                               returncode=proc.returncode, output=tail)
        return res


    @staticmethod
    def _stream(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
        """Log each line of both pipes as it comes; return everything read, like communicate()."""
        chunks: dict[str, list[str]] = {"out": [], "err": []}

        def pump(pipe, key: str) -> None:
            for line in pipe:
                chunks[key].append(line)
                log.info("  %s", line.rstrip())

        threads = [threading.Thread(target=pump, args=(proc.stdout, "out"), daemon=True),
                   threading.Thread(target=pump, args=(proc.stderr, "err"), daemon=True)]
        for t in threads:
            t.start()
        proc.wait(timeout=timeout)
        for t in threads:
            t.join()
        return "".join(chunks["out"]), "".join(chunks["err"])


class _NotYetRunner(_CommandFiles):
    """A place commands will run in a later version: refuses with the alternative."""

    where = ""

    def __init__(self, spec: RunnerSpec) -> None:
        self.spec = spec
        self.user = spec.run_as

    def run(self, argv: list[str], *, timeout: float = 600, check: bool = True,
            env: dict[str, str] | None = None, stream: bool = False, input: str | None = None) -> CommandResult:
        raise EstateError(f"runner kind {self.spec.kind!r} ({self.where}) is not available in this version; use "
                          f"kind 'ssh' (an Airflow SSH connection to the database host), or kind 'local' on a "
                          f"worker that is the database host")


# The remote side of every SSH command: print our PID (the process group `timeout` leads once it
# execs), then exec the rest. The PID lets the runner kill the whole group if the task is interrupted.
_PID_MARK = "drdrill-remote-pid "
_REMOTE_WRAPPER = f'echo "{_PID_MARK}$$" >&2; exec "$@"'


def _secret_env(name: str) -> bool:
    """An environment variable whose value is a secret (PGPASSWORD), not where one is (PGPASSFILE)."""
    upper = name.upper()
    return bool(_SECRET.search(name)) and not upper.endswith(("FILE", "PATH", "DIR")) and upper != "PGSSLKEY"


# How long past its own timeout the runner waits for a remote command that `timeout` has killed
# (network latency); after that the channel is closed and the group killed from a new session.
_GRACE_SECONDS = 10


class SSHRunner(_CommandFiles):
    """Runs commands on another host over SSH, through the ssh provider's `SSHHook`.

    :param ssh_conn_id: the Airflow SSH connection of the host (host, port, login, ``key_file`` or
        ``private_key`` in the extra, ``host_key`` to pin the server's key)
    :param run_as: OS user the commands run as; when it differs from the connection's login the
        command goes through ``sudo -n -u <run_as>`` (the login needs a NOPASSWD sudo rule for it)

    Every command is an argv list quoted with `shlex.join`; no drill code builds a shell string.
    On the host it runs under ``timeout -s KILL``, so a command that outlives ``timeout`` is killed
    there with its whole process group, not only abandoned by the worker (``pg_ctl start``'s
    server has its own session and survives, as with `LocalRunner`). ``input`` goes to its stdin,
    ``stream`` logs each output line as it arrives. ``env`` is passed through ``env NAME=VALUE``
    in the command line, which the host's process list shows: pass file paths (``PGPASSFILE``),
    never a secret; names that look like secrets are refused.

    One SSH connection per connection id and process is opened on first use and reused by every
    runner of that connection (the failover's critical path runs several commands in a row).
    When SSH itself fails (authentication, host key, unreachable) `RunnerConnectionError` names
    the connection and what to fix; a command that ran and failed raises `CommandError`.
    """

    _clients: dict[tuple[int, str], Any] = {}
    _lock = threading.Lock()

    def __init__(self, ssh_conn_id: str, run_as: str | None = None, *, conn_timeout: float = 10) -> None:
        self.ssh_conn_id = ssh_conn_id
        self.run_as = run_as
        self.conn_timeout = conn_timeout
        self._hook: Any = None

    # ------------------------------------------------------------ the connection
    @property
    def hook(self) -> Any:
        """The ssh provider's `SSHHook` for the connection (built once)."""
        if self._hook is None:
            from airflow.providers.ssh.hooks.ssh import SSHHook

            try:
                self._hook = SSHHook(ssh_conn_id=self.ssh_conn_id, conn_timeout=int(self.conn_timeout),
                                     conn_retry_attempts=1)
            except Exception as e:
                if type(e).__name__ in ("AirflowNotFoundException", "ConnectionNotFound"):
                    raise EstateError(f"the runner's ssh_conn_id {self.ssh_conn_id!r} is not an Airflow connection; "
                                      f"create it (e.g. airflow connections add {self.ssh_conn_id} --conn-type ssh "
                                      f"--conn-host DB_HOST --conn-login postgres --conn-extra "
                                      f"'{{\"key_file\": \"/path/key\", \"host_key\": \"ssh-ed25519 AAAA...\"}}')"
                                      ) from None
                raise EstateError(f"SSH connection {self.ssh_conn_id!r} is not usable: {e}") from None
        return self._hook

    @property
    def login(self) -> str:
        return str(self.hook.username)

    @property
    def user(self) -> str:
        return self.run_as or self.login

    @property
    def where(self) -> str:
        h = self.hook
        return f"{h.username}@{h.remote_host}:{h.port} (connection {self.ssh_conn_id})"

    def _connect(self, attempts: int = 3) -> Any:
        """Connect, or raise `RunnerConnectionError` saying what to fix. A handshake the server cut short
        (sshd's MaxStartups throttling many tasks at once) is tried again; a refusal is not."""
        import paramiko

        h = self.hook
        for attempt in range(1, attempts + 1):
            try:
                return h.get_conn()
            except (paramiko.BadHostKeyException, paramiko.AuthenticationException, OSError, EOFError) as e:
                raise self._refused(h, e) from None
            except paramiko.SSHException as e:
                if "known_hosts" in str(e) or attempt == attempts:
                    raise self._refused(h, e) from None
                log.warning("SSH handshake with %s:%s failed (%s); trying again", h.remote_host, h.port, e)
                time.sleep(attempt)
        raise AssertionError("unreachable")

    def _refused(self, h: Any, e: BaseException) -> RunnerConnectionError:
        """The error for a connection that failed with ``e``, naming the connection and the fix."""
        import paramiko

        if isinstance(e, paramiko.BadHostKeyException):
            why = (f"the host key of {h.remote_host}:{h.port} is {e.key.get_name()} "
                   f"{e.key.get_base64()[:16]}..., not the one pinned in the connection ({e.expected_key.get_name()} "
                   f"{e.expected_key.get_base64()[:16]}...): the host was rebuilt or someone is in between. Check "
                   f"the host's key (ssh-keyscan -p {h.port} {h.remote_host}) and update host_key in the connection's "
                   f"extra")
        elif isinstance(e, paramiko.AuthenticationException):
            key = h.key_file or ("private_key in the extra" if h.pkey else "no key configured")
            why = (f"authentication as {h.username!r} failed ({e}); the server refused the key ({key}). Add that "
                   f"key's public half to {h.username}'s authorized_keys on {h.remote_host}, or fix key_file / "
                   f"private_key and login in the connection")
        elif isinstance(e, paramiko.SSHException) and "known_hosts" in str(e):
            why = (f"the host key of {h.remote_host}:{h.port} is unknown ({e}). Pin it: put the output of "
                   f"`ssh-keyscan -p {h.port} {h.remote_host}` (\"ssh-ed25519 AAAA...\") into host_key in the "
                   f"connection's extra, or add it to the worker's known_hosts")
        elif isinstance(e, paramiko.SSHException):
            why = f"the SSH handshake with {h.remote_host}:{h.port} failed: {e}"
        else:
            why = (f"cannot reach {h.remote_host}:{h.port} ({type(e).__name__}: {e}); check the host and port of "
                   f"the connection, that sshd runs there and that this worker may connect to it")
        return RunnerConnectionError(f"SSH connection {self.ssh_conn_id!r} ({h.username}@{h.remote_host}:{h.port}): "
                                     f"{why}. No command ran.", conn_id=self.ssh_conn_id)

    def _client(self, *, fresh: bool = False) -> Any:
        key = (os.getpid(), self.ssh_conn_id)
        with self._lock:
            c = self._clients.get(key)
            t = c.get_transport() if c else None
            if c is None or fresh or t is None or not t.is_active():
                if c is not None:
                    with contextlib.suppress(Exception):
                        c.close()
                self.hook.client = None
                c = self._clients[key] = self._connect()
            return c

    def _session(self) -> Any:
        """A new channel on the shared connection; one reconnect if the connection has dropped."""
        import paramiko

        for fresh in (False, True):
            try:
                return self._client(fresh=fresh).get_transport().open_session(timeout=self.conn_timeout)
            except (paramiko.SSHException, OSError, EOFError, AttributeError) as e:
                if fresh:
                    raise RunnerConnectionError(f"SSH connection {self.ssh_conn_id!r}: could not open a session "
                                                f"on {self.where} ({type(e).__name__}: {e}). No command ran.",
                                                conn_id=self.ssh_conn_id) from None
        raise AssertionError("unreachable")

    @classmethod
    def close_all(cls) -> None:
        """Close every cached SSH connection of this process."""
        with cls._lock:
            for c in cls._clients.values():
                with contextlib.suppress(Exception):
                    c.close()
            cls._clients.clear()

    # ------------------------------------------------------------ commands
    def remote_argv(self, argv: list[str], *, timeout: float, env: dict[str, str] | None = None) -> list[str]:
        """The argv the host runs: [sudo -n -u run_as --] sh -c <pid wrapper> timeout -s KILL T [env ...] argv."""
        core = list(argv)
        if env:
            secret = sorted(k for k in env if _secret_env(k))
            if secret:
                raise EstateError(f"env {secret} would travel in the SSH command line, which the host's process "
                                  f"list shows; pass a file on the host instead (e.g. PGPASSFILE) for "
                                  f"{shlex.join(argv[:1])}")
            core = ["env", *(f"{k}={v}" for k, v in env.items()), *core]
        out = ["sh", "-c", _REMOTE_WRAPPER, "drdrill", "timeout", "-s", "KILL", f"{max(float(timeout), 0.1):.3f}",
               *core]
        if self.run_as and self.run_as != self.login:
            out = ["sudo", "-n", "-u", self.run_as, "--", *out]
        return out

    def run(self, argv: list[str], *, timeout: float = 600, check: bool = True,
            env: dict[str, str] | None = None, stream: bool = False, input: str | None = None) -> CommandResult:
        """Run ``argv`` on the host; same contract as `LocalRunner.run`."""
        shown = redact(list(argv))
        command = shlex.join(self.remote_argv(list(argv), timeout=timeout, env=env))
        log.info("run on %s: %s", self.ssh_conn_id, shown)
        t0 = time.monotonic()
        chan = self._session()
        pid: list[int] = []
        try:
            chan.exec_command(command)
            if input is not None:
                chan.sendall(input.encode())
            chan.shutdown_write()
            out, err, rc, late = self._collect(chan, timeout, stream, pid)
        except BaseException:
            # The task was killed or interrupted: do not leave e.g. a restore writing into a
            # scratch directory that teardown is about to remove.
            log.warning("interrupted: killing %s on %s", shown, self.ssh_conn_id)
            self._await_pid(chan, pid)
            self._kill_group(pid)
            raise
        finally:
            chan.close()
        seconds = time.monotonic() - t0
        if late or (rc in (-1, 124, 137) and seconds >= float(timeout) - 0.05):
            if late:
                self._kill_group(pid)
            raise CommandError(f"timed out after {timeout:.0f}s and was killed on {self.ssh_conn_id}: {shown}",
                               argv=list(argv), output=(err or "")[-2000:], timed_out_after=timeout)
        res = CommandResult(list(argv), rc, out, err, seconds)
        log.info("exit code %s after %.1fs", rc, seconds)
        if rc != 0 and not (pid and pid[0]) and self.run_as and self.run_as != self.login and "sudo" in err:
            # sudo refused before the command's wrapper ran (no PID marker): nothing ran as run_as
            raise RunnerConnectionError(f"SSH connection {self.ssh_conn_id!r}: {self.login} could not run commands as "
                                        f"{self.run_as!r} through sudo ({err.strip()[-300:]}); install sudo and add a "
                                        f"NOPASSWD rule for {self.login} to run commands as {self.run_as} on the host, "
                                        f"or log in as {self.run_as!r}. No command ran.", conn_id=self.ssh_conn_id)
        if check and rc != 0:
            tail = (err or out or "").strip()[-2000:]
            raise CommandError(f"exit code {rc} from: {shown} (on {self.ssh_conn_id})\n{tail}", argv=list(argv),
                               returncode=rc, output=tail)
        return res

    def _collect(self, chan: Any, timeout: float, stream: bool, pid: list[int]) -> tuple[str, str, int, bool]:
        """Read both streams until the command exits; ``late`` when it outlived timeout + grace."""
        deadline = time.monotonic() + float(timeout) + _GRACE_SECONDS
        raw = {"out": bytearray(), "err": bytearray()}
        pending = {"out": b"", "err": b""}
        nap = 0.001

        def take(key: str, data: bytes) -> None:
            if key == "err" and not pid:
                data = pending["err"] + data
                if b"\n" not in data:
                    pending["err"] = data
                    return
                first, data = data.split(b"\n", 1)
                pending["err"] = b""
                text = first.decode(errors="replace")
                if text.startswith(_PID_MARK):
                    pid.append(int(text[len(_PID_MARK):]))
                else:
                    data = first + b"\n" + data
                    pid.append(0)
            raw[key] += data
            if stream:
                lines = (pending[key] + data).split(b"\n")
                pending[key] = lines.pop()
                for line in lines:
                    log.info("  %s", line.decode(errors="replace").rstrip())

        while True:
            got = False
            if chan.recv_stderr_ready():  # first: the PID marker comes there before any output
                take("err", chan.recv_stderr(65536))
                got = True
            if chan.recv_ready():
                take("out", chan.recv(65536))
                got = True
            if not got:
                if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                if chan.closed and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                if time.monotonic() > deadline:
                    return raw["out"].decode(errors="replace"), raw["err"].decode(errors="replace"), -1, True
                time.sleep(nap)
                nap = min(nap * 2, 0.02)
            else:
                nap = 0.001
        if stream:
            for key in ("out", "err"):
                if pending[key] and (key == "out" or pid):
                    log.info("  %s", pending[key].decode(errors="replace").rstrip())
        if not pid and pending["err"]:
            raw["err"] += pending["err"]
        rc = chan.recv_exit_status()
        return raw["out"].decode(errors="replace"), raw["err"].decode(errors="replace"), rc, False

    @staticmethod
    def _await_pid(chan: Any, pid: list[int], wait: float = 2) -> None:
        """Interrupted before the PID marker was read: read stderr (at most ``wait`` s) until it comes."""
        buf = b""
        end = time.monotonic() + wait
        while not pid and time.monotonic() < end and b"\n" not in buf:
            if chan.recv_stderr_ready():
                buf += chan.recv_stderr(65536)
            elif chan.exit_status_ready():
                break
            else:
                time.sleep(0.005)
        line = buf.split(b"\n", 1)[0].decode(errors="replace")
        if not pid and line.startswith(_PID_MARK):
            pid.append(int(line[len(_PID_MARK):]))

    def _kill_group(self, pid: list[int]) -> None:
        """SIGKILL the remote command's process group from a new session (best effort)."""
        if not pid or not pid[0]:
            return
        # kill(1) through env, not the login shell's builtin: dash's refuses "--" before a process group.
        argv = ["env", "kill", "-s", "KILL", "--", f"-{pid[0]}"]
        if self.run_as and self.run_as != self.login:
            argv = ["sudo", "-n", "-u", self.run_as, "--", *argv]
        try:
            chan = self._session()
            try:
                chan.exec_command(shlex.join(argv))
                chan.shutdown_write()
                end = time.monotonic() + 10
                while not chan.exit_status_ready() and time.monotonic() < end:
                    time.sleep(0.01)
                rc = chan.recv_exit_status() if chan.exit_status_ready() else None
                if rc not in (0, 1):  # 1: the group had already exited
                    log.warning("kill of process group %s on %s exited %s; its remote timeout ends it", pid[0],
                                self.ssh_conn_id, rc)
            finally:
                chan.close()
        except Exception as e:  # noqa: BLE001 - `timeout -s KILL` on the host still ends it
            log.warning("could not kill process group %s on %s (%s); its remote timeout ends it", pid[0],
                        self.ssh_conn_id, e)


class KubernetesRunner(_NotYetRunner):
    """Runs commands in a pod through the Kubernetes exec API. Seam: not built yet."""

    @property
    def where(self) -> str:  # type: ignore[override]
        return f"pod {self.spec.namespace}/{self.spec.pod}"


def runner_for(spec: RunnerSpec) -> Runner:
    """The runner an estate's ``runner:`` block asks for (a node's, a cluster's, or ``pgbackrest.runner``)."""
    if spec.kind == "local":
        return LocalRunner(spec.run_as)
    if spec.kind == "ssh":
        assert spec.ssh_conn_id  # the estate refuses kind ssh without it
        return SSHRunner(spec.ssh_conn_id, spec.run_as)
    return KubernetesRunner(spec)
