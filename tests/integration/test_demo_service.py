"""The sandbox's demo service ("the application"): three replicas under supervisord (one per zone) that find the
database through the Route53 record, commit writes before acknowledging them, degrade when the
record leads to a read-only standby, and come back when supervisord restarts a killed replica.
Real servers throughout: moto's Route53 over TLS, PostgreSQL, supervisord."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime

import psycopg
import pytest

from drdrill.sandbox import SERVICE_SCRIPT

pytestmark = pytest.mark.sandbox


def _call(url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except OSError as e:
        return 0, {"error": str(e)}


def _until(what: str, probe, timeout: float = 30, interval: float = 0.2):
    """Poll ``probe`` until it returns something truthy; fail with its last answer."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last and (not isinstance(last, tuple) or last[0]):
            return last
        time.sleep(interval)
    pytest.fail(f"{what}: still not the case after {timeout}s; last: {last}")


def _point_record_at(sandbox, node) -> None:
    r53 = sandbox.route53_client()
    r53.change_resource_record_sets(HostedZoneId=sandbox._zone_id(r53), ChangeBatch={"Changes": [{
        "Action": "UPSERT", "ResourceRecordSet": {
            "Name": sandbox.dns.record, "Type": "CNAME", "TTL": sandbox.dns.ttl,
            "ResourceRecords": [{"Value": node.dns_name}]}}]})


def _supervisorctl_pid(sandbox, name: str) -> int | None:
    out = subprocess.run([sandbox._bin("supervisorctl"), "-c", str(sandbox.layout.supervisor_conf), "status", name],
                         capture_output=True, text=True, timeout=30).stdout
    m = re.search(rf"^{name}\s+RUNNING\s+pid (\d+)", out, re.M)
    return int(m.group(1)) if m else None


def test_health_is_ok_and_names_the_primary(sandbox):
    primary = sandbox.cluster.primary
    for name, url, _port in sandbox.replicas():
        code, body = _call(url + "/health")
        assert code == 200, body
        assert body["status"] == "ok" and body["service"] == name and body["in_recovery"] is False
        assert body["db"] == primary.dns_name and body["db_addr"] == f"{primary.host}:{primary.port}"
        assert body["window_seconds"] == 60 and 0 <= body["error_rate"] <= 1


def test_acknowledged_writes_are_committed_on_the_primary_and_readable(sandbox):
    primary = sandbox.cluster.primary
    run_id = f"test-{uuid.uuid4().hex}"
    acks = {}
    for seq, (_name, url, _port) in enumerate(sandbox.replicas(), 1):
        code, body = _call(url + "/write", {"run_id": run_id, "seq": seq})
        assert code == 200 and body["ok"] is True, body
        assert (body["run_id"], body["seq"], body["db"]) == (run_id, seq, primary.dns_name)
        acks[seq] = datetime.fromisoformat(body["committed_at"])
        assert acks[seq].tzinfo is not None
    # Straight from the primary, not through the service: the acknowledged rows are there.
    with psycopg.connect(host=primary.host, port=primary.port, dbname=sandbox.cluster.postgres.database,
                         user=sandbox.cluster.postgres.user, passfile=str(sandbox.services.passfile)
                         ) as conn, conn.cursor() as cur:
        cur.execute("SELECT seq, committed_at FROM drdrill.canary_writes WHERE run_id = %s ORDER BY seq", (run_id,))
        assert dict(cur.fetchall()) == acks
    conn.close()
    for _name, url, _port in sandbox.replicas():
        code, body = _call(f"{url}/read?run_id={run_id}")
        assert code == 200 and (body["count"], body["max_seq"]) == (len(acks), max(acks)), body
    code, body = _call(sandbox.replicas()[0][1] + "/write", {"run_id": run_id, "seq": "one"})
    assert code == 400 and body["ok"] is False


def test_service_follows_the_dns_record_to_a_read_only_standby_and_back(sandbox):
    primary, standby = sandbox.cluster.primary, sandbox.cluster.standbys[0]
    run_id = f"test-{uuid.uuid4().hex}"
    seq = iter(range(1, 10**6))
    try:
        _point_record_at(sandbox, standby)
        for name, url, _port in sandbox.replicas():
            def degraded(url=url):
                wcode, wbody = _call(url + "/write", {"run_id": run_id, "seq": next(seq)})
                hcode, health = _call(url + "/health")
                ok = (wcode == 503 and wbody["ok"] is False and hcode == 503 and health["status"] == "degraded"
                      and health.get("db") == standby.dns_name and health["error_rate"] > 0)
                return ok, wbody, health

            _ok, wbody, health = _until(f"{name} degraded behind the standby", degraded)
            assert "read-only" in wbody["error"] and health["in_recovery"] is True and health["errors"] > 0
    finally:
        _point_record_at(sandbox, primary)
    for name, url, _port in sandbox.replicas():
        def healthy(url=url):
            code, body = _call(url + "/write", {"run_id": run_id, "seq": next(seq)})
            return code == 200 and body["db"] == primary.dns_name, body

        _until(f"{name} writing to the primary again", healthy)
        assert _call(url + "/health")[0] == 200
    # The log tells when the service switched databases, both ways.
    log = (sandbox.layout.logs / "service-1.err.log").read_text()
    assert f"db endpoint now {standby.dns_name}" in log and f"(was {primary.dns_name}" in log


def test_supervisord_restarts_a_killed_replica(sandbox):
    name, url, _port = sandbox.replicas()[0]
    pid = _supervisorctl_pid(sandbox, name)
    code, body = _call(url + "/health")
    assert pid and code == 200 and body["pid"] == pid
    os.kill(pid, signal.SIGKILL)

    def replaced():
        code, body = _call(url + "/health")
        return code == 200 and body["pid"] != pid, body

    _ok, body = _until(f"{name} restarted by supervisord", replaced)
    # RUNNING once it stayed up startsecs; it may answer before that.
    _until(f"supervisorctl shows {name} RUNNING as pid {body['pid']}",
           lambda: _supervisorctl_pid(sandbox, name) == body["pid"])
    assert sandbox.problems() == []


def test_airflow_connection_from_the_sandbox_reaches_route53(sandbox):
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    # The CLI prints what the session fixture put into the environment.
    out = subprocess.run([sys.executable, "-m", "drdrill.sandbox", "env"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    printed = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in out.splitlines())
    assert printed == sandbox.airflow_env() and os.environ["AIRFLOW_CONN_AWS_SANDBOX"] == printed[
        "AIRFLOW_CONN_AWS_SANDBOX"]
    r53 = AwsBaseHook(aws_conn_id="aws_sandbox", client_type="route53").get_conn()
    zones = r53.list_hosted_zones_by_name(DNSName=sandbox.dns.zone)["HostedZones"]
    assert sandbox.dns.zone + "." in [z["Name"] for z in zones]


def test_the_service_knows_nothing_of_drdrill_or_airflow():
    tree = ast.parse(SERVICE_SCRIPT.read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m for m in imported if m.split(".")[0] in ("drdrill", "airflow")}, imported
