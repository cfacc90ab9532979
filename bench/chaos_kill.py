"""How long until a killed replica is replaced, and what does a kill cost customers through the front door?

Prints figures; it never asserts a timing or a count. On a running sandbox (`make sandbox-up`; the
estate the environment selects must be a sandbox estate with a ``services:`` entry whose replicas the
sandbox runs behind HAProxy): every part kills replicas with kill -9.

1. BARE recovery, in this process with no Airflow: kill -9 of one replica (its PID from supervisord),
   then the replica's own ``/health`` polled every 10 ms until a new PID answers 200 (supervisord
   restarted it and it reached its database). Timed from the kill: ``healthy`` (the new PID answers
   200) and ``lb_up`` (HAProxy sees the replica UP again, from its stats socket, once it is healthy).
2. DRILL recovery: ``dr_weekly_pod_kill`` under ``airflow dags test``, the kill -> healed time from its
   journal (the trigger's poll, every 0.25 s: each victim replaced by a new process answering /health
   and every replica healthy) beside the bare figure, as a ratio and the seconds the drill adds.
3. ERRORS per kill through the front door, at each ``--rates`` (default 20 and 200 requests/s): the
   customer probe (`drdrill.core.probe.CustomerProbe`, writes and reads alternating) runs through
   HAProxy while replicas are killed one after the other (each healed and RUNNING in supervisord
   before the next); customer-visible errors per kill, latency p50/p99 before and during, and each
   error as HAProxy logged it (status and termination state, e.g. ``SH--``: the replica reset the
   connection before answering).

Each measurement is one function (`bare_recovery`, `drill_recovery`, `errors_per_kill`) returning a dict.

Usage: python bench/chaos_kill.py [--kills N] [--rates 20 200] [--only bare|drill|errors ...] [--service NAME] [--json]
See bench/README.md.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
import uuid
from typing import Any

import common

PARTS = ("bare", "drill", "errors")
POLL_SECONDS = 0.01  # the bare sequence's health poll
HEAL_TIMEOUT = 60.0
SETTLE_SECONDS = 1.0  # after a replica is back: supervisord counts it RUNNING after startsecs (1 s)
BASELINE_SECONDS = 2.0



# --------------------------------------------------------------------------- the sandbox
def sandbox_and_service(service: str | None) -> tuple[Any, Any]:
    """The running sandbox and the service to hit (``service`` or the first the sandbox serves)."""
    from drdrill.core.errors import DrillError
    from drdrill.sandbox import Sandbox

    sb = Sandbox()
    problems = sb.problems()
    if problems:
        raise SystemExit(f"the sandbox is not healthy ({'; '.join(problems)}): run `make sandbox-up` first")
    try:
        url = sb.front_door(service)
    except DrillError as e:
        raise SystemExit(str(e)) from None
    name = service or next(iter(sb.haproxy.urls()))
    target = next(s for s in sb.estate.services if s.name == name)
    return sb, (target, url)


def _replica_urls(target: Any) -> dict[str, str]:
    return {r.program: r.url for r in target.process.replicas}


def _running_pid(sb: Any, program: str) -> int | None:
    prog = sb.supervised().get(program, {})
    return prog.get("pid") if prog.get("state") == "RUNNING" else None


def _wait_running(sb: Any, program: str, not_pid: int | None = None, timeout: float = HEAL_TIMEOUT) -> int:
    """Until supervisord counts ``program`` RUNNING (with a PID other than ``not_pid``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = _running_pid(sb, program)
        if pid and pid != not_pid:
            return pid
        time.sleep(0.05)
    raise SystemExit(f"{program} not RUNNING in supervisord after {timeout:g}s: {sb.supervised().get(program)}")


def kill_and_heal(sb: Any, target: Any, program: str) -> dict[str, Any]:
    """kill -9 of ``program``; poll its /health until a new PID answers 200, then HAProxy's view until it
    is UP. Seconds from the kill; then (untimed) until supervisord counts it RUNNING again."""
    from drdrill.core.httpjson import call

    url = _replica_urls(target)[program] + target.process.health_path
    backend = f"{target.name}_replicas"
    old = _wait_running(sb, program)
    t0 = time.monotonic()
    os.kill(old, signal.SIGKILL)
    at = time.time()
    healthy = lb_up = None
    new_pid = None
    deadline = t0 + HEAL_TIMEOUT
    while time.monotonic() < deadline:
        code, body = call(url, timeout=1)
        if code == 200 and body.get("pid") not in (None, old):
            healthy, new_pid = time.monotonic() - t0, body["pid"]
            break
        time.sleep(POLL_SECONDS)
    if healthy is None:
        raise SystemExit(f"{program} not healthy again {HEAL_TIMEOUT:g}s after kill -9 (pid {old})")
    while time.monotonic() < deadline:
        if sb.haproxy.servers().get(backend, {}).get(program) == "UP":
            lb_up = time.monotonic() - t0
            break
        time.sleep(POLL_SECONDS)
    _wait_running(sb, program, not_pid=old)
    return {"program": program, "old_pid": old, "new_pid": new_pid, "killed_at": at, "healthy": healthy,
            "lb_up": lb_up}


# --------------------------------------------------------------------------- 1. bare recovery
def bare_recovery(sb: Any, target: Any, kills: int, rng: random.Random) -> dict[str, Any]:
    """``kills`` times: kill -9 of a random replica -> a new PID answers /health 200 (and HAProxy sees it UP)."""
    samples = []
    programs = list(_replica_urls(target))
    for n in range(1, kills + 1):
        program = rng.choice(programs)
        s = kill_and_heal(sb, target, program)
        common.progress(f"  bare {n}/{kills}: {program} pid {s['old_pid']} -> {s['new_pid']}: healthy "
                        f"{s['healthy']:.3f} s, HAProxy UP {s['lb_up']:.3f} s")
        samples.append(s)
        time.sleep(SETTLE_SECONDS)
    return {"samples": samples, "healthy": common.stat(common.col(samples, "healthy")),
            "lb_up": common.stat(common.col(samples, "lb_up"))}


# --------------------------------------------------------------------------- the drill
def drill_recovery(target: Any, kills: int) -> dict[str, Any]:
    """``kills`` runs of dr_weekly_pod_kill under ``airflow dags test``: the kill -> healed time the drill
    measured (its trigger's poll sees every victim replaced by a new process answering /health, and every
    replica healthy), and what its customer probe saw while the replica was down."""
    from drdrill.core.estate import load_estate

    env = common.airflow_env()
    logdir = common.log_dir(env)
    common.ensure_airflow_db(env, logdir)
    estate = load_estate()
    samples = []
    for n in range(1, kills + 1):
        run = common.run_drill("dr_weekly_pod_kill", {"service": target.name}, estate, env,
                               logdir / f"chaos-kill-{n}.log")
        c = run.doc.get("chaos") or {}
        during = (c.get("probe") or {}).get("during") or {}
        s = {**run.figures(), "victims": c.get("victims"), "healed": c.get("recover_seconds"),
             "detected": c.get("detect_seconds"), "errors": during.get("errors"),
             "requests": during.get("requests"), "p99_ms": during.get("latency_p99_ms")}
        if run.doc["status"] != "passed":
            common.drill_failed(s)
        common.progress(f"  drill {n}/{kills}: {s['victims']} healed {s['healed']} s, {s['errors']} error(s) in "
                        f"{s['requests']} requests")
        samples.append(s)
        time.sleep(SETTLE_SECONDS)
    return {"samples": samples, "healed": common.stat(common.col(samples, "healed")),
            "errors": sum(s["errors"] or 0 for s in samples)}


# --------------------------------------------------------------------------- 2. errors per kill
def haproxy_errors(sb: Any, since: float, until: float) -> list[dict[str, Any]]:
    """HAProxy's log lines between two epoch times whose answer was an error (customers saw them)."""
    return [{**vars(r), "reset_before_answer": r.reset_before_answer} for r in sb.haproxy.logged(since, until)]


def errors_per_kill(sb: Any, target: Any, url: str, rate: float, kills: int, rng: random.Random) -> dict[str, Any]:
    """The probe at ``rate`` through the front door while ``kills`` replicas are killed one after the other."""
    from drdrill.core.probe import CustomerProbe

    programs = list(_replica_urls(target))
    heals = []
    t_start = time.time()
    probe = CustomerProbe(url, run_id=f"bench-chaos-{uuid.uuid4().hex[:12]}", rate=rate,
                          timeout=target.probe.timeout_seconds)
    with probe:
        time.sleep(BASELINE_SECONDS)
        for n in range(1, kills + 1):
            probe.mark(f"kill {n}")
            heals.append(kill_and_heal(sb, target, rng.choice(programs)))
            time.sleep(SETTLE_SECONDS)
        probe.mark("after")
        time.sleep(BASELINE_SECONDS)
        sending = time.time() - t_start  # the probe stops sending here, then waits for what is in flight
    rep = probe.report()
    per_kill = [rep[f"kill {n}"]["errors"] for n in range(1, kills + 1)]
    during = [rep[f"kill {n}"] for n in range(1, kills + 1)]
    lat99 = [d["latency_p99_ms"] for d in during if d["latency_p99_ms"] is not None]
    return {
        "rate": rate, "kills": kills, "errors_per_kill": per_kill, "errors": sum(per_kill),
        "requests": rep["total"]["requests"], "sent_rate": rep["total"]["requests"] / sending,
        "before": rep["before"], "after": rep["after"],
        "during_p50_ms": common.stat([d["latency_p50_ms"] for d in during if d["latency_p50_ms"] is not None]),
        "during_p99_ms": common.stat(lat99),
        "victims": [h["program"] for h in heals], "healthy": common.stat(common.col(heals, "healthy")),
        "error_examples": [e for d in during for e in d["error_examples"]][:10],
        "haproxy_errors": (errs := haproxy_errors(sb, t_start, time.time() + 1)),
        "resets_before_answer": sum(e["reset_before_answer"] for e in errs),
    }


# --------------------------------------------------------------------------- report
def report(r: dict[str, Any]) -> None:
    print(f"chaos kill benchmark: service {r['service']} behind {r['front_door']} ({r['replicas']} replicas), "
          f"{r['kills']} kill(s) per part, seed {r['seed']}, load {r['load'][0]:.2f} -> {r['load'][1]:.2f}")
    b = r.get("bare")
    if b:
        print("\nbare: kill -9 -> replacement healthy (no Airflow)")
        print(f"  new PID answers /health 200   {common.fmt(common.col(b['samples'], 'healthy'), digits=3)}")
        print(f"  HAProxy sees it UP            {common.fmt(common.col(b['samples'], 'lb_up'), digits=3)}")
    d = r.get("drill")
    if d:
        drill = common.col(d["samples"], "healed")
        print("\ndrill: dr_weekly_pod_kill under airflow dags test (kill -> every victim replaced and healthy)")
        print(f"  healed, as the drill measured {common.fmt(drill, digits=3)}")
        print(f"  customer-visible errors       {[s['errors'] for s in d['samples']]} (goal 0)")
        if b and drill:
            import statistics

            bare = statistics.median(common.col(b["samples"], "healthy"))
            med = statistics.median(drill)
            print(f"  drill / bare                  {med / bare:.2f} (+{med - bare:.3f} s; goal: at most +1 s)")
    for e in r.get("errors", []):
        print(f"\nerrors per kill at {e['rate']:g} requests/s through the front door "
              f"(sent {e['sent_rate']:.0f}/s, {e['requests']} requests)")
        print(f"  errors per kill               {e['errors_per_kill']} (total {e['errors']}; goal 0)")
        print(f"  baseline before / after       {e['before']['errors']} / {e['after']['errors']} errors, p99 "
              f"{e['before']['latency_p99_ms']} / {e['after']['latency_p99_ms']} ms")
        p99 = e["during_p99_ms"]
        print(f"  latency during kills          p99 median {p99['median'] if p99 else '-'} ms, max "
              f"{p99['max'] if p99 else '-'} ms")
        print(f"  of which resets before answer {e['resets_before_answer']} (a request the killed replica had not "
              f"read: HAProxy 2.6 does not retry a reset)")
        for h in e["haproxy_errors"][:5]:
            print(f"  haproxy: {h['status']} {h['term']} {h['server']} timers {h['timers']} {h['request']}")
    print(f"\ntotal {r['total_seconds']:.0f} s")


def main(argv: list[str] | None = None) -> int:
    ap = common.parser(__doc__)
    ap.add_argument("--kills", type=int, default=5, help="kills per part and rate (default 5)")
    ap.add_argument("--rates", type=float, nargs="+", default=[20.0, 200.0], help="probe rates (requests/s)")
    ap.add_argument("--only", choices=PARTS, action="append", help="run only this part (repeatable)")
    ap.add_argument("--service", default=None, help="service of the estate (default: the first the sandbox serves)")
    ap.add_argument("--seed", type=int, default=None, help="seed of the random victims (default: random, printed)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON document")
    args = ap.parse_args(argv)
    if args.kills < 1:
        ap.error("--kills must be at least 1")
    if any(not r > 0 for r in args.rates):
        ap.error("--rates must be > 0")
    parts = tuple(args.only or PARTS)
    common.use_checkout_package()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    import logging

    logging.basicConfig(level=logging.WARNING)
    t0 = time.monotonic()
    load_start = os.getloadavg()[0]
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    sb, (target, url) = sandbox_and_service(args.service)
    r: dict[str, Any] = {"service": target.name, "front_door": url, "replicas": len(target.process.replicas),
                         "kills": args.kills, "seed": seed}
    if "bare" in parts:
        common.progress(f"bare recovery: {args.kills} kill(s) ...")
        r["bare"] = bare_recovery(sb, target, args.kills, rng)
    if "drill" in parts:
        common.progress(f"drill: {args.kills} run(s) of dr_weekly_pod_kill ...")
        r["drill"] = drill_recovery(target, args.kills)
    if "errors" in parts:
        r["errors"] = []
        for rate in args.rates:
            common.progress(f"errors per kill at {rate:g} requests/s: {args.kills} kill(s) ...")
            e = errors_per_kill(sb, target, url, rate, args.kills, rng)
            common.progress(f"  {e['errors']} error(s) over {args.kills} kill(s): {e['errors_per_kill']}")
            r["errors"].append(e)
    r.update(load=(load_start, os.getloadavg()[0]), total_seconds=time.monotonic() - t0)
    if args.json:
        print(json.dumps(r, indent=2, default=str))
    else:
        report(r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
