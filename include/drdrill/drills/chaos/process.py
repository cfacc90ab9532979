"""The ``process`` chaos target: replicas run by supervisord on one host, driven through a runner.

Everything goes through ``supervisorctl -c <conf>`` on the host's runner (local on the sandbox,
SSH in production), so the drill needs no agent: ``status`` reads each program's state and PID,
``signal KILL <program>`` is the pod kill (supervisord sees the unexpected exit and, with
``autorestart``, starts a new process: the "controller" being tested), ``stop`` / ``start`` are
the AZ failure's fault and its repair. A replica is healthy when supervisord runs it AND its own
``/health`` answers 200 from that very process (the PID in the answer), so a stale process or a
restart that never got to serve is never counted as recovered.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from drdrill.core import httpjson
from drdrill.core.errors import DrillError, PreflightError
from drdrill.core.services import ProcessTarget, Replica

log = logging.getLogger("drdrill.drills.chaos")

_STATUS = re.compile(r"^(?P<name>\S+)\s+(?P<state>[A-Z]+)\s*(?P<rest>.*)$")
_PID = re.compile(r"pid (\d+), uptime (\d+):(\d\d):(\d\d)")
_DAYS = re.compile(r"uptime (\d+) days?, (\d+):(\d\d):(\d\d)")


@dataclass(frozen=True)
class Program:
    name: str
    state: str  # RUNNING, STARTING, STOPPED, BACKOFF, EXITED, FATAL, ...
    pid: int | None
    uptime_seconds: float | None


def parse_status(text: str) -> dict[str, Program]:
    """``supervisorctl status`` output, by program name."""
    out: dict[str, Program] = {}
    for line in text.splitlines():
        m = _STATUS.match(line.strip())
        if not m:
            continue
        rest, pid, up = m.group("rest"), None, None
        if d := _DAYS.search(rest):
            pid_m = re.search(r"pid (\d+)", rest)
            pid = int(pid_m.group(1)) if pid_m else None
            up = int(d.group(1)) * 86400 + int(d.group(2)) * 3600 + int(d.group(3)) * 60 + int(d.group(4))
        elif p := _PID.search(rest):
            pid = int(p.group(1))
            up = int(p.group(2)) * 3600 + int(p.group(3)) * 60 + int(p.group(4))
        out[m.group("name")] = Program(m.group("name"), m.group("state"), pid, up)
    return out


class ProcessOps:
    """supervisorctl on the target's host, and the replicas' own health URLs."""

    def __init__(self, spec: ProcessTarget, *, runner: Any = None) -> None:
        self.spec = spec
        self._runner = runner

    @property
    def runner(self) -> Any:
        if self._runner is None:
            from drdrill.core.estate import RunnerSpec
            from drdrill.core.runner import runner_for

            self._runner = runner_for(RunnerSpec(kind=self.spec.runner, ssh_conn_id=self.spec.ssh_conn_id,
                                                 run_as=self.spec.run_as))
        return self._runner

    def replica(self, program: str) -> Replica:
        for r in self.spec.replicas:
            if r.program == program:
                return r
        raise PreflightError(f"no replica {program!r}: the target's replicas are "
                             f"{', '.join(r.program for r in self.spec.replicas)}")

    @property
    def supervisorctl(self) -> str:
        """supervisorctl from PATH on the host; on this machine also the one beside this Python (a venv)."""
        if self.spec.runner == "local":
            import shutil
            import sys
            from pathlib import Path

            beside = Path(sys.executable).parent / "supervisorctl"
            return shutil.which("supervisorctl") or (str(beside) if beside.exists() else "supervisorctl")
        return "supervisorctl"

    def _ctl(self, *args: str, check: bool = True, timeout: float = 30) -> str:
        res = self.runner.run([self.supervisorctl, "-c", self.spec.supervisor_conf, *args], timeout=timeout,
                              check=False)
        out = (res.stdout or "") + (res.stderr or "")
        # supervisorctl exits 3 from `status` when some program is not RUNNING: that is an answer.
        if check and res.returncode not in (0, 3) or "refused connection" in out or "no such file" in out.lower():
            raise DrillError(f"supervisorctl -c {self.spec.supervisor_conf} {' '.join(args)} failed "
                             f"(exit {res.returncode}): {out.strip()[:400]}; is supervisord running on the "
                             f"target's host, with that config?")
        return out

    def status(self) -> dict[str, Program]:
        got = parse_status(self._ctl("status"))
        missing = [r.program for r in self.spec.replicas if r.program not in got]
        if missing:
            raise PreflightError(f"supervisord at {self.spec.supervisor_conf} runs no program {missing}: the estate's "
                                 f"process.replicas must name its programs (it runs {', '.join(got) or 'none'})")
        return got

    def health(self, replica: Replica, timeout: float = 2) -> tuple[int, dict[str, Any]]:
        return httpjson.call(replica.url + self.spec.health_path, timeout=timeout)

    def replica_state(self, programs: dict[str, Program] | None = None) -> list[dict[str, Any]]:
        """Each replica: supervisord's state and PID, and whether that PID itself answers /health."""
        programs = programs or self.status()
        rows = []
        for r in self.spec.replicas:
            p = programs.get(r.program)
            code, body = self.health(r) if p and p.state == "RUNNING" else (0, {})
            serving = code == 200 and (body.get("pid") in (None, p.pid) if p else False)
            rows.append({"program": r.program, "zone": r.zone, "state": p.state if p else "MISSING",
                         "pid": p.pid if p else None, "uptime_seconds": p.uptime_seconds if p else None,
                         "health": code, "healthy": bool(p and p.state == "RUNNING" and serving)})
        return rows

    # ------------------------------------------------------------ actions
    def kill(self, program: str) -> dict[str, Any]:
        """SIGKILL one replica through supervisord (which is expected to start a new one)."""
        before = self.status().get(program)
        if not before or before.state != "RUNNING" or not before.pid:
            raise DrillError(f"{program} is not running (state {before.state if before else 'missing'}): "
                             f"nothing to kill")
        self._ctl("signal", "KILL", program)
        log.warning("chaos: SIGKILL sent to %s (pid %s)", program, before.pid)
        return {"program": program, "pid": before.pid, "zone": self.replica(program).zone}

    def stop(self, programs: list[str]) -> None:
        if programs:
            self._ctl("stop", *programs, timeout=60)
            log.warning("chaos: stopped %s", ", ".join(programs))

    def start_stopped(self) -> list[str]:
        """Start every replica supervisord does not run (idempotent): a teardown, and the next run's repair."""
        programs = self.status()
        down = [r.program for r in self.spec.replicas if programs[r.program].state not in ("RUNNING", "STARTING")]
        if down:
            self._ctl("start", *down, timeout=60)
            log.warning("started %s again", ", ".join(down))
        return down

    # ------------------------------------------------------------ observation
    def heal_status(self, victims: list[dict[str, Any]], killed_at: float | None = None) -> dict[str, Any]:
        """Whether every victim was replaced by a new process that itself serves /health, and all replicas serve."""
        rows = self.replica_state()
        by = {r["program"]: r for r in rows}
        detected, missing = True, []
        for v in victims:
            row = by[v["program"]]
            if row["pid"] == v.get("pid") and row["state"] == "RUNNING":
                detected = False  # supervisord still shows the killed process
                missing.append(f"{v['program']} still shows the killed pid {v.get('pid')}")
            elif not row["healthy"]:
                missing.append(f"{v['program']} {row['state']} (health {row['health'] or 'no answer'})")
        for row in rows:
            if not row["healthy"] and row["program"] not in {v["program"] for v in victims}:
                missing.append(f"{row['program']} {row['state']} (health {row['health'] or 'no answer'})")
        ready = sum(1 for r in rows if r["healthy"])
        return {"healed": not missing, "detected": detected, "ready": ready, "desired": len(rows),
                "missing": "; ".join(missing), "replicas": rows}

    def wait_healthy(self, timeout: float, poll: float = 0.25) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = self.heal_status([])
            if st["healed"] or time.monotonic() > deadline:
                return st
            time.sleep(poll)

    # ------------------------------------------------------------ the pod kill's target interface
    def steady(self) -> tuple[bool, str, dict[str, Any]]:
        """Every replica run by supervisord and serving /health from that process."""
        rows = self.replica_state()
        sick = [f"{r['program']} {r['state']} (health {r['health'] or 'no answer'})" for r in rows if not r["healthy"]]
        detail = (f"{len(rows)}/{len(rows)} replicas healthy" if not sick
                  else f"{len(rows) - len(sick)}/{len(rows)} replicas healthy; {'; '.join(sick)}")
        return not sick, detail, {"replicas": rows}

    def candidates(self) -> list[str]:
        return [r["program"] for r in self.replica_state() if r["healthy"]]

    def blocked(self, victims: list[str]) -> str | None:
        """Why killing ``victims`` now would take the service down (no healthy replica left), else None."""
        left = [p for p in self.candidates() if p not in victims]
        if not left:
            return f"killing {', '.join(victims)} would leave no healthy replica serving"
        return None

    def kill_many(self, victims: list[str], grace_period_seconds: int | None = None) -> list[dict[str, Any]]:
        return [self.kill(v) for v in victims]
