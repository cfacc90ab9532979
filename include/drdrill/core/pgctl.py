"""Stopping a PostgreSQL server so that it is really stopped, through a runner.

``pg_ctl stop`` can fail: a fast shutdown waits for the archiver, which a dead S3 endpoint
stalls for minutes. A stop that did not stop escalates (fast, then immediate, then SIGKILL of
the postmaster) and reports every step; if the server still runs after that, the caller gets an
error and must not remove anything. The postmaster's state comes from ``ps``: a postmaster
killed with -9 stays a zombie until reaped, and ``pg_ctl status`` counts a zombie as running.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from drdrill.core.errors import DrillError
from drdrill.core.polling import wait_until
from drdrill.core.runner import Runner

log = logging.getLogger(__name__)

MODES = ("smart", "fast", "immediate")


def running_pid(runner: Runner, bin_dir: Path, data_dir: Path) -> int | None:
    """The postmaster PID when a server runs in ``data_dir``, else None (a zombie is not running)."""
    res = runner.run([str(Path(bin_dir) / "pg_ctl"), "-D", str(data_dir), "status"], timeout=30, check=False)
    if res.returncode != 0:
        return None
    pid = next((int(w) for w in res.stdout.replace(")", " ").split() if w.isdigit()), None)
    if pid is None:
        return None
    st = runner.run(["ps", "-o", "stat=", "-p", str(pid)], timeout=30, check=False).stdout.strip()
    return pid if st and not st.startswith("Z") else None


def stop(runner: Runner, bin_dir: Path, data_dir: Path, *, mode: str = "fast", timeout: int = 60,
         name: str | None = None) -> dict[str, Any]:
    """Stop the server in ``data_dir``, escalating until it is down; raise `DrillError` if it is not.

    Returns ``{"was_running", "steps": [{"how", "exit", "seconds"}...], "escalated", "seconds"}``.
    """
    who = name or str(data_dir)
    t0 = time.time()
    steps: list[dict[str, Any]] = []
    was = running_pid(runner, bin_dir, data_dir)
    for m in MODES[MODES.index(mode):] if was else ():
        if running_pid(runner, bin_dir, data_dir) is None:
            break
        s = time.time()
        res = runner.run([str(Path(bin_dir) / "pg_ctl"), "-D", str(data_dir), "-m", m, "-w", "-t", str(timeout),
                          "stop"], timeout=timeout + 30, check=False)
        steps.append({"how": f"pg_ctl stop -m {m}", "exit": res.returncode, "seconds": round(time.time() - s, 3)})
        if res.returncode != 0:
            why = (res.stderr or res.stdout).strip().splitlines()[-1:] or [""]
            log.warning("%s: pg_ctl stop -m %s did not stop it within %ss (exit %s: %s); escalating", who, m,
                        timeout, res.returncode, why[0])
    pid = running_pid(runner, bin_dir, data_dir) if was else None
    if pid:
        log.warning("%s: still running (postmaster %s) after %s: SIGKILL", who, pid, [x["how"] for x in steps])
        s = time.time()
        runner.run([str(Path(bin_dir) / "pg_ctl"), "kill", "KILL", str(pid)], timeout=30, check=False)
        try:
            wait_until(lambda: running_pid(runner, bin_dir, data_dir) is None, timeout=30, interval=0.2,
                       what=f"{who}'s postmaster {pid} to exit after SIGKILL")
        except DrillError:
            pass
        steps.append({"how": f"SIGKILL postmaster {pid}", "exit": 0, "seconds": round(time.time() - s, 3)})
    left = running_pid(runner, bin_dir, data_dir) if was else None
    if left:
        raise DrillError(f"{who} is still running (postmaster {left}) after {', '.join(x['how'] for x in steps)}: "
                         f"nothing in {data_dir} was removed. Stop it by hand (kill {left}) and run the step again.")
    if was:
        log.info("%s stopped (%s) in %.2fs", who, ", then ".join(x["how"] for x in steps), time.time() - t0)
    return {"was_running": bool(was), "steps": steps, "escalated": len(steps) > 1,
            "seconds": round(time.time() - t0, 3)}
