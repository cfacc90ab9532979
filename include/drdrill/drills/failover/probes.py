"""What several runbook phases share: the probes (databases, service, DNS) and the announcement.

Assess, Verify and Measure probe the same servers, service and record, and every phase sends its
message; these live here so that the phase modules import this one, not each other.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from typing import Any

from drdrill.core import httpjson
from drdrill.core.checks import CheckResult, Status
from drdrill.core.errors import DrillError, PreflightError
from drdrill.core.estate import Cluster, Node
from drdrill.drills.failover import comms
from drdrill.drills.failover.plan import Plan, _cluster
from drdrill.hooks import postgres as pg

# One logger for the whole runbook: the name its log lines had before it was split.
log = logging.getLogger("drdrill.drills.failover")


STANDBY_SQL = """
SELECT pg_is_in_recovery(), pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text,
       pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp()),
       (SELECT status FROM pg_stat_wal_receiver LIMIT 1)
"""


def service_health(cluster: Cluster) -> dict[str, Any]:
    """The customer-visible probe: every replica's /health (status, error rate, which DB)."""
    svc = cluster.failover.service if cluster.failover else None
    if svc is None:
        return {"configured": False}
    replicas = []
    for url in svc.urls:
        code, body = httpjson.call(url.rstrip("/") + svc.health_path, timeout=svc.timeout_seconds)
        replicas.append({"url": url, "http": code, "status": body.get("status"), "db": body.get("db"),
                         "error_rate": body.get("error_rate"), "error": body.get("error")})
    rates = [r["error_rate"] for r in replicas if isinstance(r["error_rate"], int | float)]
    return {"configured": True, "replicas": replicas, "healthy": sum(r["http"] == 200 for r in replicas),
            "error_rate": max(rates) if rates else None}


def probe(plan: Plan, cluster: Cluster | None = None) -> dict[str, Any]:
    """Runbook Assess: pg_isready of both, standby recovery/streaming, LSNs and lag, service, DNS."""
    cluster = cluster or _cluster(plan)
    primary, standby = cluster.node(plan.primary), cluster.node(plan.standby)
    out: dict[str, Any] = {"at": time.time()}
    ok, why = pg.is_ready(cluster, primary.host, primary.port, "postgres")
    p: dict[str, Any] = {"name": primary.name, "ready": ok, "why": why}
    lag_from_primary = None
    if ok:
        try:
            with pg.connect(cluster, primary.host, primary.port, "postgres") as c:
                p["in_recovery"], p["wal_lsn"] = pg.query_one(
                    c, "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN NULL "
                       "ELSE pg_current_wal_lsn()::text END")
                rows = pg.query(c, "SELECT state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint, "
                                   "extract(epoch FROM coalesce(replay_lag, interval '0')) FROM pg_stat_replication "
                                   "WHERE application_name = %s", (standby.name,))
            if rows:
                lag_from_primary = {"state": rows[0][0], "lag_bytes": int(rows[0][1] or 0),
                                    "lag_seconds": float(rows[0][2] or 0)}
        except Exception as e:  # noqa: BLE001 - a primary failing mid-probe is a finding
            p.update(ready=False, why=str(e).strip().splitlines()[0])
    out["primary"] = p
    ok, why = pg.is_ready(cluster, standby.host, standby.port, "postgres")
    s: dict[str, Any] = {"name": standby.name, "ready": ok, "why": why}
    if ok:
        with pg.connect(cluster, standby.host, standby.port, "postgres") as c:
            in_rec, recv, replay, pending, since_replay, receiver = pg.query_one(c, STANDBY_SQL)
        s.update(in_recovery=in_rec, receive_lsn=recv, replay_lsn=replay, receiver=receiver,
                 replay_pending_bytes=int(pending or 0),
                 last_replay_age_seconds=round(float(since_replay), 3) if since_replay is not None else None)
        if lag_from_primary:
            s.update(lag_bytes=lag_from_primary["lag_bytes"], lag_seconds=lag_from_primary["lag_seconds"],
                     lag_source="primary pg_stat_replication")
        else:
            # Primary unreachable: what the standby received but has not replayed yet is the lag
            # we can see; time only counts while something is waiting.
            s.update(lag_bytes=int(pending or 0),
                     lag_seconds=(float(since_replay or 0) if pending else 0.0), lag_source="standby only")
    out["standby"] = s
    out["service"] = service_health(cluster)
    out["dns"] = dns_state(cluster)
    return out


def dns_state(cluster: Cluster) -> dict[str, Any]:
    f = cluster.failover
    if not f or not f.dns:
        return {"configured": False}
    from drdrill.hooks import route53 as dns

    try:
        st = dns.current(f.dns)
    except PreflightError:
        raise
    except Exception as e:  # noqa: BLE001 - reported as a failed safeguard
        return {"configured": True, "error": f"{type(e).__name__}: {e}"}
    node = dns.node_for_value(cluster.members, f.dns, st.value)
    return {"configured": True, "record": f.dns.record, "value": st.value, "points_at": node.name if node else None,
            "ttl": st.ttl}


def resolve_endpoint(cluster: Cluster) -> Node:
    """The node the service record points at (what applications connect to)."""
    f = cluster.failover
    if not f or not f.dns:
        return cluster.primary
    from drdrill.hooks import route53 as dns

    st = dns.current(f.dns)
    node = dns.node_for_value(cluster.members, f.dns, st.value)
    if node is None:
        raise DrillError(f"{f.dns.record} points at {st.value!r}, which is no node of {cluster.name}")
    return node


def smoke_test(cluster: Cluster, run_id: str, *, retry_seconds: float = 10) -> list[CheckResult]:
    """Every service replica: /health names a writable DB; a write and a read back through it."""
    svc = cluster.failover.service if cluster.failover else None
    if svc is None:
        return [CheckResult("service_smoke_test", Status.SKIP, "no service configured", "service")]
    out = []
    for i, url in enumerate(svc.urls, 1):
        base = url.rstrip("/")
        smoke_id = f"{run_id}:smoke"

        def attempt(base=base, smoke_id=smoke_id) -> tuple[bool, str]:
            code, body = httpjson.call(base + svc.health_path, timeout=svc.timeout_seconds)
            if code != 200:
                return False, f"/health {code}: {body.get('error') or body.get('status')}"
            seq = int(time.time() * 1000)
            code, body = httpjson.call(base + svc.write_path, timeout=svc.timeout_seconds,
                               body={"run_id": smoke_id, "seq": seq})
            if code != 200:
                return False, f"write {code}: {body.get('error')}"
            code, body = httpjson.call(f"{base}/read?run_id={urllib.parse.quote(smoke_id)}",
                                       timeout=svc.timeout_seconds)
            if code != 200 or (body.get("max_seq") or 0) < seq:
                return False, f"read back {code}: {body}"
            return True, f"health ok (db {body.get('db')}), write + read back ok"

        ok, why = False, ""
        # After a DNS switch the service needs up to one TTL to re-resolve the record.
        deadline = time.monotonic() + retry_seconds
        while True:
            ok, why = attempt()
            if ok or time.monotonic() >= deadline:
                break
            time.sleep(0.3)
        out.append(CheckResult(f"service_smoke_test.{i}", Status.PASS if ok else Status.FAIL, why, base))
    return out


def announce(plan: Plan, phase: str, **kw: Any) -> dict[str, Any]:
    cluster = _cluster(plan)
    f = cluster.failover
    assert f is not None
    text = comms.render(phase, cluster=cluster.name, standby=kw.pop("standby", plan.standby),
                        started_at=plan.started_at, rto_target_minutes=cluster.targets.rto_minutes,
                        drill=plan.drill, **kw)
    subject = f"{'[DRILL] ' if plan.drill else ''}{cluster.name}: {phase} ({plan.run_id})"
    if plan.dry_run:
        log.info("[DRY RUN] would send:\n%s", text)
        return {"phase": phase, "at": time.time(), "subject": subject, "message": text, "sent": []}
    notifier = comms.RunbookNotifier(message=text, subject=subject, channels=[c.model_dump() for c in f.notify])
    notifier.notify({})
    return {"phase": phase, "at": time.time(), "subject": subject, "message": text, "sent": notifier.sent}
