"""moto's server over HTTP on loopback, with an Airflow AWS connection pointing at it (the tests' AWS)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


@contextmanager
def moto_server(conn_id: str, region: str = "us-east-1") -> Iterator[str]:
    """A ThreadedMotoServer on a free loopback port, and ``AIRFLOW_CONN_<CONN_ID>`` (an ``aws`` connection with
    its ``endpoint_url`` and ``region_name``) set while it runs; yields its URL. Stopped and unset on exit."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    mp = pytest.MonkeyPatch()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        mp.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
            "conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": url, "region_name": region}}))
        yield url
    finally:
        mp.undo()
        server.stop()
