"""The customer probe against real HTTP servers (stdlib, on loopback): every non-2xx answer and every
request that gets no answer in time counts as a customer-visible error, per period."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from drdrill.core.probe import CustomerProbe, percentile


class _App(BaseHTTPRequestHandler):
    """Writes fail (500) for every seq that is a multiple of 10; reads of run 'slow' hang for 1 s."""

    def log_message(self, *args):  # quiet
        pass

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append(body)
        if body["seq"] % 10 == 0:
            self._send(500, {"ok": False, "error": "database unavailable"})
        else:
            self._send(200, {"ok": True})

    def do_GET(self):  # noqa: N802
        run_id = parse_qs(urlsplit(self.path).query)["run_id"][0]
        if run_id == "slow":
            time.sleep(1.0)
        self._send(200, {"ok": True, "rows": 1})


@pytest.fixture
def app():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _App)
    server.seen = []
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_percentile_by_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([5.0], 99) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0 and percentile(values, 100) == 100.0


def test_every_error_answer_is_counted_in_the_period_it_happened(app):
    server, url = app
    with CustomerProbe(url, run_id="r1", rate=50, timeout=2) as probe:
        time.sleep(1.0)
        probe.mark("during")
        time.sleep(1.0)
    rep = probe.report()
    assert list(rep) == ["before", "during", "total"]
    writes = server.seen
    # writes have even seq; those with seq % 10 == 0 got a 500: exactly those are the errors
    failed_writes = [w for w in writes if w["seq"] % 10 == 0]
    assert rep["total"]["errors"] == len(failed_writes) > 0
    assert rep["before"]["errors"] + rep["during"]["errors"] == rep["total"]["errors"]
    assert rep["total"]["requests"] == rep["before"]["requests"] + rep["during"]["requests"]
    # the stream held its rate: about 50/s for 2 s
    assert 80 <= rep["total"]["requests"] <= 110, rep["total"]
    assert all(w["run_id"] == "r1" for w in writes)
    ex = rep["total"]["error_examples"][0]
    assert ex["request"] == "write" and ex["status"] == 500 and "database unavailable" in ex["error"]
    assert rep["total"]["latency_p50_ms"] is not None and rep["total"]["latency_p99_ms"] >= rep["total"][
        "latency_p50_ms"]


def test_an_answer_slower_than_the_timeout_is_an_error_and_does_not_slow_the_stream(app):
    _, url = app
    with CustomerProbe(url, run_id="slow", rate=20, timeout=0.3) as probe:
        time.sleep(1.0)
    rep = probe.report()["total"]
    # every read hangs 1 s > 0.3 s: half the requests (the reads) are errors, and the writes kept coming
    assert rep["requests"] >= 18, rep
    assert rep["errors"] >= rep["requests"] // 2 - 1, rep
    assert any(e["request"] == "read" and e["status"] == 0 and "no answer" in e["error"]
               for e in rep["error_examples"]), rep["error_examples"]


def test_nothing_listening_is_all_errors():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    with CustomerProbe(f"http://127.0.0.1:{port}", run_id="r", rate=20, timeout=0.5) as probe:
        time.sleep(0.5)
    rep = probe.report()["total"]
    assert rep["requests"] > 0 and rep["errors"] == rep["requests"] and rep["error_rate"] == 1.0


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="rate must be > 0"):
        CustomerProbe("http://x", run_id="r", rate=0)
    with pytest.raises(ValueError, match="timeout must be > 0"):
        CustomerProbe("http://x", run_id="r", timeout=0)
