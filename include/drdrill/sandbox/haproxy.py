"""The sandbox's front door: HAProxy (Debian ``haproxy``) in front of the demo service's replicas.

What customers use, and where the customer probe points: for each of the estate's ``services:``
whose replicas the sandbox runs (`drdrill.sandbox.services.sandbox_services`), a frontend on the
service's ``url`` port (127.0.0.1 only) and a backend with one server per
``process.replicas`` entry. The config is generated into ``<sandbox>/haproxy/haproxy.cfg``,
checked with ``haproxy -c -f`` before every start (a bad config fails with haproxy's own message),
and its log (one line per request, server state changes) goes to ``<sandbox>/log/haproxy.log``.

HAProxy runs as root in the foreground in its own session (``-db``), started in the background by
this process, recorded by PID in ``<sandbox>/pids/haproxy.pid`` and stopped by that PID (checked
against its command line), never by name. It runs in the foreground rather than with ``global
daemon`` because a daemonized HAProxy closes its stdout, and with no syslog on this machine the
log would be lost. `FrontDoor.reload` replaces it seamlessly: a new process is started with
``-x <stats socket>`` (it takes over the listening sockets) and ``-sf <old PID>`` (the old one
finishes the requests it holds, at most ``hard-stop-after``, then exits).

Why the config is what it is (the claim "losing a replica costs no request" is measured by
``tests/integration/test_front_door.py`` and ``bench/chaos_kill.py``, never assumed):

- Health check ``GET /health`` every 500 ms (250 ms while a server changes state or is down),
  down after 2 failures, up again after 1 success. A check passes on **200 or 503**: the demo
  service answers 503 when its *database* is degraded (the record leads to a standby, the
  primary is down). That state is shared by every replica, so a check failing on it would take
  all of them out during a database failover, turning every request into HAProxy's own 503 and
  delaying the recovery by the rise time once the database is back. The LB's check answers "is
  this process alive and serving HTTP"; the database's health is the failover drill's business.
- ``observe layer4 error-limit 1 on-error fastinter``: a connection error on real traffic brings the
  next check forward (250 ms) rather than marking the server down at once: under overload (connect
  timeouts on busy but healthy replicas) ``mark-down`` took every replica out and turned a slow
  front door into HAProxy's own 503 for everyone (measured with ``bench/chaos_kill.py`` at 200/s).
- ``retries 3`` with ``option redispatch 1`` (every retry goes to another server), ``option
  http-buffer-request`` and ``retry-on conn-failure empty-response junk-response``:
  * ``http-buffer-request``: HAProxy keeps the whole request (body included) before it connects,
    so it still holds a POST it can send again when the replica dies with it unread. Without it,
    a request the killed replica had accepted but not read yet came back as a 502 (``SH--``): 5
    errors in 3 kills at 200 requests/s; with it, 0 in 9 kills at 200/s and 0 in 5 at 20/s
    (``bench/chaos_kill.py``).
  * ``conn-failure``: the connection to the replica failed (killed, restarting, not listening
    yet). Nothing reached it: always safe, POST included.
  * ``empty-response`` (and ``junk-response``, a partial answer): the replica took the request and
    closed or reset without a whole answer (killed mid-request). It may have committed the write
    before dying, so for a non-idempotent request a retry may apply it twice. It is safe here
    because the demo service's ``POST /write`` is idempotent by its key ``(run_id, seq)``: a replayed
    write returns the first commit, nothing is written twice. An application without such a key
    should keep ``conn-failure`` alone for writes (``http-request disable-l7-retry if METH_POST``).
  * ``response-timeout`` is deliberately **not** retried: the replica may still be working on the
    request (and commit it after the retry did), and when the shared database is slow every
    replica is slow together, so retries would multiply the load exactly then.
- No per-server ``maxconn``: with ``maxconn 8`` the requests HAProxy queued for a replica that was
  then killed came back as 503 by the hundred at 200 requests/s (measured), where without it
  they wait in the replica's listen backlog and only those unread at the kill are lost.
- ``timeout connect 500ms``: a refused connection on loopback fails at once; a black-holed one
  moves on to another server within half a second.

`FrontDoor.render(retries=False)` renders the same config without retries and redispatch, the
configuration the issue's failure path needs ("HAProxy without retries makes the probe see
errors"); tests switch to it with `FrontDoor.reload(retries=False)` and back.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from drdrill.core import httpjson
from drdrill.core.errors import DrillError
from drdrill.core.services import ServiceTarget
from drdrill.sandbox.layout import Layout, is_ours, pid_alive, recorded_pid, wait_for_exit
from drdrill.sandbox.ports import in_use
from drdrill.sandbox.services import loopback_port

log = logging.getLogger("drdrill.sandbox")

HAPROXY = "/usr/sbin/haproxy"
HARD_STOP_AFTER_SECONDS = 5  # an old process left by a reload finishes its requests within this


# One request as HAProxy logs it (option httplog, log format iso): timestamp, client, [accept date],
# frontend, backend/server, timers Tq/Tw/Tc/Tr/Ta, status, bytes, cookies, termination state, ...
_HTTPLOG = re.compile(r"^(?P<ts>\S+) \S+ \[[^\]]+\] (?P<frontend>\S+) (?P<server>\S+) (?P<timers>\S+) "
                      r"(?P<status>-?\d+) \S+ \S+ \S+ (?P<term>\S{4}) .*\"(?P<request>[^\"]*)\"$")


@dataclass(frozen=True)
class LoggedRequest:
    """A request HAProxy answered, from its log: who served it, its status and how the session ended."""

    at: float  # epoch seconds HAProxy logged it (when the answer went out)
    frontend: str
    server: str  # backend/server, e.g. web_replicas/service-2 (or <NOSRV>)
    timers: str  # Tq/Tw/Tc/Tr/Ta in ms; Tr -1: no answer from the server
    status: int
    term: str  # termination state, e.g. "----" (normal), "SH--" (server aborted before its headers), "SC--"
    request: str

    @property
    def reset_before_answer(self) -> bool:
        """The replica took the request and aborted (reset) before answering: what a kill -9 does to a request
        it had not read yet. With ``option http-buffer-request`` HAProxy retries it on another replica; the
        log keeps such lines only when it could not (no retries, or every retry failed)."""
        return self.status == 502 and self.term.startswith("SH") and self.timers.split("/")[3:4] == ["-1"]


@dataclass(frozen=True)
class Backend:
    """One service's frontend (its front door's port) and the replicas behind it."""

    service: str
    port: int
    health_path: str
    servers: tuple[tuple[str, int], ...]  # (program name, port)

    @property
    def backend(self) -> str:
        return f"{self.service}_replicas"


class FrontDoor:
    """HAProxy on 127.0.0.1 in front of the replicas of ``services`` (the sandbox runs them)."""

    def __init__(self, services: list[ServiceTarget], layout: Layout, source: object = None) -> None:
        self.layout = layout
        self.source = source
        self.dir = layout.root / "haproxy"
        self.backends: list[Backend] = []
        for s in services:
            assert s.process is not None
            servers = tuple((r.program, loopback_port(r.url, f"services[{s.name}].process.replicas[{r.program}].url",
                                                      source)) for r in s.process.replicas)
            self.backends.append(Backend(s.name, loopback_port(s.url, f"services[{s.name}].url", source),
                                         s.process.health_path, servers))
        self._proc: subprocess.Popen | None = None  # when this process started it (reaped on stop/reload)

    # ------------------------------------------------------------ paths
    @property
    def config(self) -> Path:
        return self.dir / "haproxy.cfg"

    @property
    def pidfile(self) -> Path:
        return self.layout.pidfile("haproxy")

    @property
    def logfile(self) -> Path:
        return self.layout.logs / "haproxy.log"

    @property
    def stats_socket(self) -> Path:
        return self.layout.run / "haproxy.sock"

    def ports(self) -> list[int]:
        return [b.port for b in self.backends]

    def urls(self) -> dict[str, str]:
        """The front door of each service, by service name."""
        return {b.service: f"http://127.0.0.1:{b.port}" for b in self.backends}

    # ------------------------------------------------------------ config
    def render(self, *, retries: bool = True) -> str:
        """haproxy.cfg; ``retries=False``: no retries, no redispatch (the failure path the tests measure)."""
        lines = [
            "# Written by drdrill's sandbox (drdrill.sandbox.haproxy): the front door of the demo service.",
            "# Retries: " + ("on (conn-failure, empty-response, junk-response, the request buffered; see the "
                             "module docstring)" if retries else "OFF"),
            "global",
            "    log stdout format iso local0 info",
            f"    stats socket {self.stats_socket} mode 600 level admin expose-fd listeners",
            "    maxconn 1024",
            f"    hard-stop-after {HARD_STOP_AFTER_SECONDS}s",
            "",
            "defaults",
            "    mode http",
            "    log global",
            "    option httplog",
            "    option dontlognull",
            "    timeout connect 500ms",
            "    timeout client 10s",
            "    timeout server 10s",
            "    timeout http-request 5s",
            "    timeout queue 2s",
            "    timeout check 2s",
        ]
        for b in self.backends:
            lines += ["", f"frontend {b.service}", f"    bind 127.0.0.1:{b.port}", f"    default_backend {b.backend}",
                      "", f"backend {b.backend}", "    balance roundrobin",
                      f"    option httpchk GET {b.health_path}",
                      "    # 503 is the replica saying its database is degraded: alive, and shared by all replicas",
                      "    http-check expect rstatus ^(200|503)$",
                      "    default-server check inter 500ms fastinter 250ms downinter 250ms fall 2 rise 1 "
                      "observe layer4 error-limit 1 on-error fastinter"]
            if retries:
                lines += ["    retries 3", "    option redispatch 1", "    option http-buffer-request",
                          "    retry-on conn-failure empty-response junk-response"]
            else:
                lines += ["    retries 0", "    no option redispatch", "    retry-on none"]
            lines += [f"    server {name} 127.0.0.1:{port}" for name, port in b.servers]
        return "\n".join(lines) + "\n"

    def install_config(self, text: str) -> None:
        """Check ``text`` with ``haproxy -c`` and only then make it the config: a config haproxy refuses
        raises `DrillError` with haproxy's own message and changes nothing."""
        self.dir.mkdir(parents=True, exist_ok=True)
        candidate = self.config.with_suffix(".cfg.new")
        candidate.write_text(text)
        res = subprocess.run([HAPROXY, "-c", "-f", str(candidate)], capture_output=True, text=True,
                             timeout=30)
        if res.returncode != 0:
            out = (res.stdout + res.stderr).splitlines()
            alerts = [re.sub(r"^\[ALERT\]\s+\(\d+\) : ", "", ln) for ln in out if ln.startswith("[ALERT]")]
            raise DrillError(f"haproxy refuses the config it was given ({candidate}): "
                             f"{'; '.join(alerts or out).strip()}")
        candidate.replace(self.config)

    # ------------------------------------------------------------ lifecycle
    def pid(self) -> int | None:
        pid = recorded_pid(self.pidfile)
        return pid if pid and is_ours(pid, "haproxy", str(self.config)) else None

    def start(self, *, retries: bool = True, timeout: float = 15) -> int:
        """Start HAProxy (idempotent: a running one is kept) and wait until every replica is UP behind it."""
        pid = self.pid()
        if pid:
            return pid
        if not Path(HAPROXY).exists():
            raise DrillError(f"{HAPROXY} is missing; run `make install` (apt-get install -y haproxy)")
        busy = [p for p in self.ports() if in_use(p)]
        if busy:
            raise DrillError(f"port(s) {busy} (the front door in {self.source}) in use by another process")
        self.install_config(self.render(retries=retries))
        pid = self._spawn([])
        self.wait(timeout)
        log.info("haproxy up (pid %s): front door %s", pid, ", ".join(f"{s} {u}" for s, u in self.urls().items()))
        return pid

    def reload(self, *, retries: bool = True, timeout: float = 15) -> int:
        """Replace the running HAProxy by one with a freshly rendered config, with no request lost:
        the new process takes the listening sockets over (``-x``), the old one finishes what it holds
        (``-sf``). Returns the new PID. A config haproxy refuses leaves the running one untouched."""
        old = self.pid()
        if not old:
            return self.start(retries=retries, timeout=timeout)
        self.install_config(self.render(retries=retries))
        old_proc = self._proc
        pid = self._spawn(["-x", str(self.stats_socket), "-sf", str(old)])
        # The new process signals the old one once it is ready; if it dies first, the old one keeps serving.
        deadline = time.monotonic() + HARD_STOP_AFTER_SECONDS + timeout
        while pid_alive(old) and time.monotonic() < deadline:
            if not pid_alive(pid):
                self.pidfile.write_text(f"{old}\n")
                self._proc = old_proc
                raise DrillError(f"haproxy did not take over from pid {old} (which keeps serving): "
                                 f"{self._alerts()}; see {self.logfile}")
            time.sleep(0.05)
        if pid_alive(old):
            log.warning("old haproxy (pid %s) still running %ss after the reload: SIGKILL", old,
                        HARD_STOP_AFTER_SECONDS + timeout)
            os.kill(old, signal.SIGKILL)
        if old_proc is not None and old_proc.pid == old:
            old_proc.wait(timeout=5)  # our own child: reap it
        self.wait(timeout)
        log.info("haproxy reloaded (pid %s -> %s), retries %s", old, pid, "on" if retries else "OFF")
        return pid

    def _spawn(self, extra: list[str]) -> int:
        self.layout.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logfile, "ab") as logf:
            proc = subprocess.Popen([HAPROXY, "-db", "-f", str(self.config), *extra], stdout=logf, stderr=logf,
                                    stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.dir)
        self._proc = proc
        self.pidfile.write_text(f"{proc.pid}\n")
        return proc.pid

    def wait(self, timeout: float = 15) -> None:
        """Until HAProxy answers on its stats socket and sees every replica UP (its checks passed)."""
        deadline = time.monotonic() + timeout
        last: dict | str = "no answer on the stats socket"
        while time.monotonic() < deadline:
            if not pid_alive(read := self._recorded()):
                raise DrillError(f"haproxy (pid {read}) exited at start: {self._alerts()}; see {self.logfile}")
            try:
                last = self.servers()
            except OSError as e:
                last = f"stats socket: {e}"
            else:
                if all(last.get(b.backend, {}).get(n) == "UP" for b in self.backends for n, _p in b.servers):
                    return
            time.sleep(0.1)
        raise DrillError(f"haproxy does not see every replica UP after {timeout:g}s (last: {last}); see "
                         f"{self.logfile}")

    def _alerts(self, n: int = 3) -> str:
        """The last ALERT lines of HAProxy's log (its own words on why it stopped)."""
        try:
            lines = self.logfile.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "no log"
        alerts = [ln for ln in lines if "[ALERT]" in ln][-n:]
        return "; ".join(re.sub(r"^\[ALERT\]\s+\(\d+\) : ", "", ln) for ln in alerts) or "no alert logged"

    def _recorded(self) -> int | None:
        try:
            return int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Stop HAProxy by its recorded PID (SIGTERM: immediate stop; SIGKILL after 5 s)."""
        pid = self.pid()
        if pid:
            os.kill(pid, signal.SIGTERM)
            if not wait_for_exit(pid, 50):
                os.kill(pid, signal.SIGKILL)
                wait_for_exit(pid, 50)
            log.info("haproxy stopped (pid %s)", pid)
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self._proc = None

    # ------------------------------------------------------------ what HAProxy sees
    def command(self, cmd: str, timeout: float = 2) -> str:
        """One command on HAProxy's stats socket (e.g. ``show stat``), its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.stats_socket))
            s.sendall(cmd.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stats(self) -> list[dict[str, str]]:
        """``show stat`` as rows (pxname, svname, status, check_status, ...)."""
        text = self.command("show stat").lstrip("# ")
        return list(csv.DictReader(io.StringIO(text)))

    def servers(self) -> dict[str, dict[str, str]]:
        """Each backend's servers and their state as HAProxy sees it (UP, DOWN, MAINT...), by backend."""
        out: dict[str, dict[str, str]] = {}
        for row in self.stats():
            if row.get("svname") not in ("FRONTEND", "BACKEND", None):
                out.setdefault(row["pxname"], {})[row["svname"]] = row["status"].split()[0]
        return out

    def logged(self, since: float, until: float | None = None, *, errors_only: bool = True) -> list[LoggedRequest]:
        """Requests HAProxy logged between two epoch times (by default only those not answered 2xx or 3xx:
        what a customer saw as an error), oldest first."""
        try:
            lines = self.logfile.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            m = _HTTPLOG.match(line)
            if not m:
                continue
            try:
                at = datetime.fromisoformat(m["ts"]).timestamp()
            except ValueError:
                continue
            status = int(m["status"])
            if at < since or (until is not None and at > until) or (errors_only and 200 <= status < 400):
                continue
            out.append(LoggedRequest(at, m["frontend"], m["server"], m["timers"], status, m["term"], m["request"]))
        return out

    def problems(self) -> list[str]:
        if not self.backends:
            return []
        if not self.pid():
            return [f"haproxy (front door {', '.join(self.urls().values())}) not running"]
        out = []
        for service, url in self.urls().items():
            b = next(b for b in self.backends if b.service == service)
            code, _body = httpjson.call(url + b.health_path, timeout=2)
            if code == 0:
                out.append(f"front door of {service} not answering on {url}")
        return out

    def status(self) -> list[dict]:
        """One row per front door: HAProxy's PID and which replicas it sees UP."""
        pid = self.pid()
        try:
            seen = self.servers() if pid else {}
        except OSError:
            seen = {}
        rows = []
        for b in self.backends:
            states = seen.get(b.backend, {})
            if not pid:
                state = "down"
            else:
                up = [n for n, _p in b.servers if states.get(n) == "UP"]
                others = [f"{n} {states.get(n, '?')}" for n, _p in b.servers if states.get(n) != "UP"]
                state = f"{len(up)}/{len(b.servers)} replicas UP" + (f" ({', '.join(others)})" if others else "")
            rows.append({"name": "haproxy", "role": f"front door {b.service}", "port": b.port, "pid": pid,
                         "state": state, "url": f"http://127.0.0.1:{b.port}", "config": str(self.config),
                         "log": str(self.logfile)})
        return rows
