"""Real servers on loopback for the notification tests: SMTP (aiosmtpd), and an HTTP(S) endpoint standing in
for a Slack incoming webhook and PagerDuty's Events API v2, with the Airflow connections pointing at them.

Nothing is mocked: the providers' notifiers send real SMTP and real HTTP requests; the endpoint records what
arrived and answers as the real services do (Slack: 200 ``ok``; PagerDuty: 202 with the dedup key), or with
the status a test sets (a webhook answering 500).
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

# Secrets that live only in the Airflow connections: no message, log or journal may show them.
SLACK_TOKEN = "T0DRILL/B0DRILL/s3cr3tW3bh00kT0ken"
ROUTING_KEY = "R0UT1NGk3yDr1llS3cr3t0000000000"
SMTP_PASSWORD = "smtp-pa55w0rd-s3cr3t"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Endpoint:
    """An HTTP(S) server on 127.0.0.1 recording every request."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int | None = None  # answer this instead of the service's success

    def bodies(self, path_part: str) -> list[Any]:
        return [r["body"] for r in self.requests if path_part in r["path"]]


def _serve(tls: tuple[Path, Path] | None):
    ep = Endpoint(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            ep.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            if ep.status:
                status, out, ctype = ep.status, b"internal error", "text/plain"
            elif self.path.endswith("/v2/enqueue"):  # PagerDuty Events API v2
                key = (body.get("dedup_key") if isinstance(body, dict) else None) or "generated-dedup-key"
                status, ctype = 202, "application/json"
                out = json.dumps({"status": "success", "message": "Event processed", "dedup_key": key}).encode()
            else:  # a Slack incoming webhook
                status, out, ctype = 200, b"ok", "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(tls[0]), str(tls[1]))
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    ep.url = f"{'https' if tls else 'http'}://localhost:{srv.server_address[1]}"
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, ep


def self_signed(d: Path) -> tuple[Path, Path]:
    """A certificate for localhost (the PagerDuty client speaks https only), made by openssl as the sandbox makes
    its own; trusted through SSL_CERT_FILE."""
    crt, key = d / "endpoint.crt", d / "endpoint.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True, timeout=60)
    return crt, key


@pytest.fixture(scope="session")
def notify_endpoints(tmp_path_factory):
    """(slack, pagerduty): plain HTTP for the webhook, HTTPS (a self-signed localhost certificate) for PagerDuty."""
    d = tmp_path_factory.mktemp("notify-tls")
    crt, key = self_signed(d)
    slack_srv, slack = _serve(None)
    pd_srv, pd = _serve((crt, key))
    pd.ca_file = str(crt)  # type: ignore[attr-defined]
    try:
        yield slack, pd
    finally:
        for srv in (slack_srv, pd_srv):
            srv.shutdown()
            srv.server_close()


@pytest.fixture
def endpoints(notify_endpoints, monkeypatch):
    """The session's endpoints, emptied and answering as the services do, for one test."""
    for ep in notify_endpoints:
        ep.requests.clear()
        ep.status = None
    monkeypatch.setenv("SSL_CERT_FILE", notify_endpoints[1].ca_file)
    return notify_endpoints


@pytest.fixture
def smtp_inbox():
    """A real SMTP server (aiosmtpd) on a free loopback port that requires the connection's login and password:
    (port, the messages received)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"drdrill" and \
            auth_data.password == SMTP_PASSWORD.encode()
        return AuthResult(success=ok)

    received: list[Any] = []

    class Keep(Message):
        def handle_message(self, message):
            received.append(message)

    port = free_port()
    ctl = Controller(Keep(), hostname="127.0.0.1", port=port, authenticator=authenticate, auth_required=True,
                     auth_require_tls=False)
    ctl.start()
    try:
        yield port, received
    finally:
        ctl.stop()


def connections(monkeypatch, *, smtp_port: int, slack_url: str, pagerduty_url: str) -> None:
    """The three channels' Airflow connections (environment variables, as a deployment's secrets backend would
    hold them): every secret is here, none in the estate."""
    monkeypatch.setenv("AIRFLOW_CONN_DRILL_SMTP", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": smtp_port, "login": "drdrill", "password": SMTP_PASSWORD,
        "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "drdrill@example.com", "retry_limit": 0,
                  "timeout": 5}}))
    monkeypatch.setenv("AIRFLOW_CONN_DRILL_SLACK", json.dumps({
        "conn_type": "slackwebhook", "host": f"{slack_url}/services", "password": SLACK_TOKEN,
        "extra": {"timeout": 5}}))
    monkeypatch.setenv("AIRFLOW_CONN_DRILL_PAGERDUTY", json.dumps({
        "conn_type": "pagerduty_events", "host": pagerduty_url, "password": ROUTING_KEY}))


NOTIFICATIONS_YAML = """
notifications:
  smtp: {conn_id: drill_smtp, to: [dba@example.com, sre@example.com], from_email: drills@example.com}
  slack: {conn_id: drill_slack}
  pagerduty: {conn_id: drill_pagerduty, severity: error}
"""


def estate_with_notifications(tmp_path: Path, monkeypatch, *, journal: Path | None = None,
                              notifications: str = NOTIFICATIONS_YAML) -> Path:
    """The sandbox estate plus a ``notifications:`` section (and, with ``journal``, its own journal location)."""
    from drdrill.core.paths import DEFAULT_ESTATE

    text = DEFAULT_ESTATE.read_text()
    if journal is not None:
        old = "location: file://${DRDRILL_SANDBOX_DIR}/journal"
        assert old in text
        text = text.replace(old, f"location: file://{journal}")
    f = tmp_path / "estate.yaml"
    f.write_text(text + notifications)
    monkeypatch.setenv("DRDRILL_ESTATE", str(f))
    return f


def assert_failure_notified(doc: dict, inbox: list, slack: Endpoint, pd: Endpoint, *, failed: list[str],
                            texts: list[str]) -> None:
    """A failed run's journal ``doc`` reached every channel once, each message naming the drill, the cluster, the
    ``failed`` checks and the run's link; no secret is in a message nor in ``texts`` (logs, the journal)."""
    drill, cluster = doc["drill"], doc["cluster"]
    link_part = f"/dags/{drill}/runs/"
    [mail] = inbox
    assert mail["Subject"].startswith(f"[drdrill sandbox] FAILED: {drill} on {cluster} (")
    body = "".join(p.get_payload(decode=True).decode() for p in mail.walk() if not p.is_multipart())
    assert all(line in body for line in failed) and link_part in body and f"Run: {doc['run_id']}" in body
    [hook] = slack.requests
    assert f"FAILED: {drill} on {cluster}" in hook["body"]["text"] and link_part in hook["body"]["text"]
    [event] = pd.requests
    ev = event["body"]
    assert ev["event_action"] == "trigger" and ev["dedup_key"] == f"drdrill/sandbox/{drill}/{cluster}"
    assert set(failed) <= set(ev["payload"]["custom_details"]["failed_checks"]) and link_part in ev["links"][0]["href"]
    for text in (mail.as_string(), json.dumps(hook["body"]), json.dumps(ev["payload"]), *texts):
        for secret in (SLACK_TOKEN, ROUTING_KEY, SMTP_PASSWORD):
            assert secret not in text
