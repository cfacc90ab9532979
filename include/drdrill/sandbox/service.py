"""The sandbox's demo service: "the application" in front of the database.

A tiny HTTP service (stdlib ``ThreadingHTTPServer``, psycopg 3, boto3) that finds its database
the way an application does in production, through the DNS service record, so a failover that
switches the record is seen from the customer's side:

- ``GET /health``: 200 when the database the record points at answers and is not in recovery,
  503 ("degraded") otherwise; also the error rate over the last 60 s.
- ``POST /write`` ``{"run_id": str, "seq": int}``: inserts a row into ``drdrill.canary_writes``
  (autocommit: a 200 means the write is committed) and returns its ``committed_at``. Idempotent by
  its key ``(run_id, seq)``: the same write again (a load balancer retrying a request whose
  replica died after committing it) commits nothing new and returns the first commit's
  ``committed_at`` with ``"replayed": true``.
- ``GET /read?run_id=X``: how many rows of that run, and the highest seq.

The sandbox has no DNS server, so resolving the record means reading it through Route53's API
(moto): CNAME -> node name -> host:port from the ``--node`` map (an A record value is matched to
the one ``--node`` with that host). The answer is cached for the record's TTL and re-read at once
after a connection error, as a resolver with that TTL would behave.

It deliberately knows nothing of drdrill's estate or of Airflow: every setting is a command-line
argument (the sandbox's supervisord passes them), and it runs as a plain script:
``python service.py --name service-1 --port 55610 --route53-endpoint https://localhost:55443
--ca ca.pem --zone sandbox.drdrill.internal --record db.sandbox.drdrill.internal
--node pg1.sandbox.drdrill.internal=127.0.0.1:55432 --node ... --database app --user drdrill
--passfile pgpass``. The password is read by libpq from the passfile (never on the command line).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import psycopg.errors

log = logging.getLogger("service")

WINDOW_SECONDS = 60
MAX_CNAME_HOPS = 8


@dataclass(frozen=True)
class Endpoint:
    name: str  # the node's DNS name the record leads to
    host: str
    port: int

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"


def _norm(name: str) -> str:
    return name.rstrip(".").lower()


class Resolver:
    """The service record resolved through Route53's API, cached for the record's TTL."""

    def __init__(self, client: Any, zone: str, record: str, nodes: dict[str, tuple[str, int]]) -> None:
        self.client = client
        self.zone = _norm(zone)
        self.record = _norm(record)
        self.nodes = {_norm(k): v for k, v in nodes.items()}
        self._zone_id: str | None = None
        self._cached: Endpoint | None = None
        self._expires = 0.0
        self._last: Endpoint | None = None
        self._lock = threading.Lock()

    def _zone_id_(self) -> str:
        if self._zone_id is None:
            zones = self.client.list_hosted_zones_by_name(DNSName=self.zone)["HostedZones"]
            ids = [z["Id"].split("/")[-1] for z in zones if _norm(z["Name"]) == self.zone]
            if not ids:
                raise LookupError(f"no hosted zone {self.zone}")
            self._zone_id = ids[0]
        return self._zone_id

    def _lookup(self, name: str) -> tuple[str, list[str], int]:
        """(type, values, ttl) of the CNAME or A record called ``name``."""
        sets = self.client.list_resource_record_sets(HostedZoneId=self._zone_id_(), StartRecordName=name,
                                                     MaxItems="10")["ResourceRecordSets"]
        for rtype in ("CNAME", "A"):
            for rs in sets:
                if _norm(rs["Name"]) == name and rs["Type"] == rtype:
                    values = [r["Value"] for r in rs.get("ResourceRecords", [])]
                    if values:
                        return rtype, values, int(rs.get("TTL", 0))
        raise LookupError(f"no CNAME or A record {name} in zone {self.zone}")

    def _resolve(self) -> tuple[Endpoint, int]:
        name, ttl = self.record, None
        for _ in range(MAX_CNAME_HOPS):
            if name in self.nodes:
                host, port = self.nodes[name]
                return Endpoint(name, host, port), ttl or 0
            rtype, values, rttl = self._lookup(name)
            ttl = rttl if ttl is None else min(ttl, rttl)
            if rtype == "CNAME":
                name = _norm(values[0])
                continue
            matches = [(n, p) for n, (h, p) in self.nodes.items() if h == values[0]]
            if len(matches) != 1:
                raise LookupError(f"A record {name} -> {values[0]} matches {len(matches)} --node entries "
                                  f"(needs exactly one to know the port)")
            return Endpoint(matches[0][0], values[0], matches[0][1]), ttl
        raise LookupError(f"more than {MAX_CNAME_HOPS} CNAME hops from {self.record}")

    def get(self) -> Endpoint:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now >= self._expires:
                ep, ttl = self._resolve()
                self._cached, self._expires = ep, now + ttl
                if ep != self._last:
                    was = f" (was {self._last.name} {self._last.addr})" if self._last else ""
                    log.info("db endpoint now %s %s%s", ep.name, ep.addr, was)
                    self._last = ep
            return self._cached

    def invalidate(self) -> None:
        with self._lock:
            self._cached = None


class Window:
    """Requests and errors of the last ``seconds`` (DB outcomes of /write, /read and /health)."""

    def __init__(self, seconds: float = WINDOW_SECONDS) -> None:
        self.seconds = seconds
        self._events: deque[tuple[float, bool]] = deque()
        self._lock = threading.Lock()

    def add(self, ok: bool) -> None:
        with self._lock:
            self._events.append((time.monotonic(), ok))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            cutoff = time.monotonic() - self.seconds
            while self._events and self._events[0][0] < cutoff:
                self._events.popleft()
            n = len(self._events)
            errors = sum(1 for _, ok in self._events if not ok)
        return {"error_rate": round(errors / n, 4) if n else 0.0, "requests": n, "errors": errors,
                "window_seconds": int(self.seconds)}


class App:
    def __init__(self, args: argparse.Namespace, resolver: Resolver) -> None:
        self.name = args.name
        self.database = args.database
        self.user = args.user
        self.passfile = args.passfile
        self.resolver = resolver
        self.window = Window()

    def _connect(self, ep: Endpoint):
        return psycopg.connect(host=ep.host, port=ep.port, dbname=self.database, user=self.user,
                               passfile=self.passfile, connect_timeout=1, application_name=self.name)

    def db(self, work) -> tuple[Endpoint, Any]:
        """Run ``work(cursor)`` on a fresh autocommit connection to the resolved database.

        A fresh connection per request survives a failover with no state to repair. A connection
        error drops the cached answer; when the record now leads elsewhere, the request is tried
        once there (nothing was sent to the first database).
        """
        ep = self.resolver.get()
        try:
            conn = self._connect(ep)
        except psycopg.OperationalError:
            self.resolver.invalidate()
            again = self.resolver.get()
            if again == ep:
                raise
            ep, conn = again, self._connect(again)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                return ep, work(cur)
        except (psycopg.OperationalError, psycopg.errors.ReadOnlySqlTransaction):
            self.resolver.invalidate()  # the record may have moved: read it again on the next request
            raise
        finally:
            conn.close()


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


class Handler(BaseHTTPRequestHandler):
    server_version = "drdrill-demo-service/1"
    timeout = 10  # a stuck client never holds a thread for long
    app: App  # set on the subclass made in main()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # one line per request at 10 requests/s is noise; DB switches and errors are logged

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        url = urlsplit(self.path)
        if url.path == "/health":
            self._health()
        elif url.path == "/read":
            run_id = (parse_qs(url.query).get("run_id") or [None])[0]
            if not run_id:
                self._send(400, {"ok": False, "error": "run_id query parameter required"})
            else:
                self._read(run_id)
        else:
            self._send(404, {"ok": False, "error": f"no route {url.path}"})

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        if urlsplit(self.path).path != "/write":
            self._send(404, {"ok": False, "error": f"no route {self.path}"})
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            run_id, seq = body["run_id"], body["seq"]
            if not isinstance(run_id, str) or not run_id or not isinstance(seq, int) or isinstance(seq, bool):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            self._send(400, {"ok": False, "error": 'body must be JSON {"run_id": str, "seq": int}'})
            return
        self._write(run_id, seq)

    def _health(self) -> None:
        app = self.app
        base = {"service": app.name, "pid": os.getpid()}

        def check(cur):
            cur.execute("SELECT pg_is_in_recovery()")
            return cur.fetchone()[0]

        try:
            ep, in_recovery = app.db(check)
        except Exception as e:  # noqa: BLE001 - any failure is a degraded service
            app.window.add(False)
            self._send(503, {"status": "degraded", **base, "error": _first_line(e), **app.window.stats()})
            return
        if in_recovery:
            app.resolver.invalidate()
            app.window.add(False)
            self._send(503, {"status": "degraded", **base, "db": ep.name, "db_addr": ep.addr, "in_recovery": True,
                             "error": f"database {ep.name} is in recovery (read-only)", **app.window.stats()})
            return
        app.window.add(True)
        self._send(200, {"status": "ok", **base, "db": ep.name, "db_addr": ep.addr, "in_recovery": False,
                         **app.window.stats()})

    def _write(self, run_id: str, seq: int) -> None:
        app = self.app

        def insert(cur):
            # The no-op update makes a replay return the existing row; xmax is 0 only on a fresh insert.
            cur.execute("INSERT INTO drdrill.canary_writes (run_id, seq) VALUES (%s, %s) "
                        "ON CONFLICT (run_id, seq) DO UPDATE SET seq = EXCLUDED.seq "
                        "RETURNING committed_at, xmax <> 0", (run_id, seq))
            return cur.fetchone()

        try:
            ep, (committed_at, replayed) = app.db(insert)  # autocommit: committed when execute returns
        except Exception as e:  # noqa: BLE001 - any DB failure is an unacknowledged write
            app.window.add(False)
            log.warning("write %s/%s failed: %s", run_id, seq, _first_line(e))
            self._send(503, {"ok": False, "error": _first_line(e)})
            return
        app.window.add(True)
        if replayed:
            log.info("write %s/%s replayed: already committed at %s", run_id, seq, committed_at.isoformat())
        self._send(200, {"ok": True, "run_id": run_id, "seq": seq, "committed_at": committed_at.isoformat(),
                         "db": ep.name, "replayed": replayed})

    def _read(self, run_id: str) -> None:
        app = self.app

        def count(cur):
            cur.execute("SELECT count(*), max(seq) FROM drdrill.canary_writes WHERE run_id = %s", (run_id,))
            return cur.fetchone()

        try:
            ep, (n, max_seq) = app.db(count)
        except Exception as e:  # noqa: BLE001
            app.window.add(False)
            self._send(503, {"ok": False, "error": _first_line(e)})
            return
        app.window.add(True)
        self._send(200, {"ok": True, "run_id": run_id, "count": n, "max_seq": max_seq, "db": ep.name})


def _node(spec: str) -> tuple[str, tuple[str, int]]:
    try:
        name, addr = spec.split("=", 1)
        host, port = addr.rsplit(":", 1)
        return _norm(name), (host, int(port))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--node wants NAME=HOST:PORT, got {spec!r}") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--name", required=True, help="this replica's name (in responses and logs)")
    ap.add_argument("--host", default="127.0.0.1", help="listen address")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--route53-endpoint", required=True, help="e.g. https://localhost:55443 (moto)")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--ca", help="CA bundle that signs the Route53 endpoint's certificate")
    ap.add_argument("--zone", required=True, help="hosted zone name")
    ap.add_argument("--record", required=True, help="the database's service record")
    ap.add_argument("--node", type=_node, action="append", required=True, metavar="NAME=HOST:PORT",
                    help="where a DNS name leads (repeat per database node)")
    ap.add_argument("--database", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--passfile", help="libpq password file (mode 0600) holding the user's password")
    ap.add_argument("--pidfile", type=Path, help="write this process's PID here")
    return ap.parse_args(argv)


def route53_client(endpoint: str, region: str, ca: str | None):
    import boto3
    from botocore.config import Config

    # moto accepts any credentials; short timeouts and no retries keep a request's latency bounded.
    return boto3.client("route53", endpoint_url=endpoint, region_name=region, aws_access_key_id="testing",
                        aws_secret_access_key="testing", verify=ca if ca else True,
                        config=Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1}))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {args.name} %(levelname)s %(message)s")
    resolver = Resolver(route53_client(args.route53_endpoint, args.region, args.ca), args.zone, args.record,
                        dict(args.node))
    app = App(args, resolver)
    handler = type("BoundHandler", (Handler,), {"app": app})
    server = Server((args.host, args.port), handler)
    # On SIGTERM the requests in progress finish before the process exits (server_close joins them;
    # the handler's timeout bounds a stuck client, supervisord's stopwaitsecs the whole stop).
    server.daemon_threads = False
    if args.pidfile:
        args.pidfile.write_text(f"{os.getpid()}\n")

    def on_term(*_: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    log.info("listening on http://%s:%s (pid %s); database record %s in zone %s via %s", args.host, args.port,
             os.getpid(), args.record, args.zone, args.route53_endpoint)
    try:
        server.serve_forever(poll_interval=0.5)
        drained = drain_backlog(server)
        if drained:
            log.info("stopping: %d connection(s) waiting in the backlog served", drained)
    finally:
        server.server_close()
        log.info("stopped")


class Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: a burst behind a load balancer (a replica's share of
    # 200 requests/s while another replica restarts) overflows it, and dropped SYNs cost connect timeouts.
    request_queue_size = 128


def drain_backlog(server: Server) -> int:
    """Serve the connections already waiting in the listen backlog; returns how many.

    Closing a listening socket resets every connection still in its backlog, and a load balancer that
    already sent its request on one gets a reset it cannot safely retry (HAProxy retries a refused
    connection or a clean close with no answer, not a reset). Accepted here first, the stop leaves the
    load balancer only refused connections, which it retries on another replica.
    """
    server.socket.setblocking(False)
    n = 0
    while True:
        try:
            request, addr = server.socket.accept()
        except (BlockingIOError, InterruptedError):
            return n
        request.settimeout(None)
        server.process_request(request, addr)
        n += 1


if __name__ == "__main__":
    main()
