"""The runbook's messages really leave through SMTP when a channel is configured.

A real SMTP server (aiosmtpd) on a free loopback port receives what the Airflow SMTP provider
sends through an Airflow connection; nothing is mocked.
"""

from __future__ import annotations

import json
import socket

import pytest


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    received = []

    class Keep(Message):
        def handle_message(self, message):
            received.append(message)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctl = Controller(Keep(), hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield port, received
    finally:
        ctl.stop()


def test_a_runbook_message_is_delivered_through_the_smtp_channel(smtp_server, monkeypatch):
    from drdrill.drills.failover import comms

    port, received = smtp_server
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DRILL", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port,
        "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "drdrill@example.com"}}))
    text = comms.render("failover", cluster="main", standby="pg2", impact="writes failing", drill=True)
    out = comms.send("[DRILL] main: failover", text,
                     [{"kind": "log"}, {"kind": "smtp", "conn_id": "smtp_drill", "to": ["dba@example.com"]}])
    assert out == [{"kind": "log", "sent": True}, {"kind": "smtp", "sent": True}], out
    assert len(received) == 1
    msg = received[0]
    assert msg["To"] == "dba@example.com" and msg["Subject"] == "[DRILL] main: failover"
    body = "".join(part.get_payload(decode=True).decode() for part in msg.walk() if not part.is_multipart())
    assert "We are promoting our standby database (pg2)" in body and "ETA to resolution" in body


def test_an_unreachable_smtp_server_is_reported_not_raised(smtp_server, monkeypatch):
    from drdrill.drills.failover import comms

    port, received = smtp_server
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEAD", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": dead,
        "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "drdrill@example.com",
                  "retry_limit": 0, "timeout": 2}}))
    out = comms.send("s", "m", [{"kind": "smtp", "conn_id": "smtp_dead", "to": ["dba@example.com"]}])
    assert out[0]["sent"] is False and out[0]["error"]
    assert received == []
