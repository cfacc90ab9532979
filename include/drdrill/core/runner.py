"""Where pgBackRest and PostgreSQL commands run: one interface, one implementation per place.

Drill code hands a runner an argv list (never a shell string) and gets a `CommandResult`.
`LocalRunner` runs on the worker (the sandbox, or a worker with pgBackRest installed);
`SSHRunner` and `KubernetesRunner` are the seams for the database host and for a pod.
Arguments that look like secrets are redacted before anything is logged.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from drdrill.core.errors import CommandError, EstateError
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
    """Runs one command on the place a cluster's commands must run."""

    def run(self, argv: list[str], *, timeout: float = 600, check: bool = True,
            env: dict[str, str] | None = None, stream: bool = False, input: str | None = None) -> CommandResult: ...


class LocalRunner:
    """Runs commands on this machine, as ``run_as`` when we are root (PostgreSQL refuses root).

    Each command gets its own session so a timeout kills the whole process group, and a
    server started through ``pg_ctl`` does not die with the Airflow task that started it.
    """

    def __init__(self, run_as: str | None = None) -> None:
        self.run_as = run_as

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


class _NotYetRunner:
    """A place commands will run in a later version: refuses with the alternative."""

    where = ""

    def __init__(self, spec: RunnerSpec) -> None:
        self.spec = spec

    def run(self, argv: list[str], *, timeout: float = 600, check: bool = True,
            env: dict[str, str] | None = None, stream: bool = False, input: str | None = None) -> CommandResult:
        raise EstateError(f"runner kind {self.spec.kind!r} ({self.where}) is not available in this version; use "
                          f"kind 'local' on a worker that has pgBackRest and reaches the database")


class SSHRunner(_NotYetRunner):
    """Runs commands on the database host over SSH (Airflow SSH connection). Seam: not built yet."""

    @property
    def where(self) -> str:  # type: ignore[override]
        return f"connection {self.spec.ssh_conn_id}"


class KubernetesRunner(_NotYetRunner):
    """Runs commands in a pod through the Kubernetes exec API. Seam: not built yet."""

    @property
    def where(self) -> str:  # type: ignore[override]
        return f"pod {self.spec.namespace}/{self.spec.pod}"


def runner_for(spec: RunnerSpec) -> Runner:
    """The runner an estate's ``runner:`` block asks for."""
    if spec.kind == "local":
        return LocalRunner(spec.run_as)
    if spec.kind == "ssh":
        return SSHRunner(spec)
    return KubernetesRunner(spec)
