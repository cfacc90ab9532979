"""The customer probe: what customers see through the service's front door, before, during and after a fault.

A steady stream of requests at a fixed rate (default 20/s), alternating a write (``POST
<write_path>`` ``{"run_id", "seq"}``) and a read (``GET <read_path>?run_id=``), through one URL:
the load balancer in production, HAProxy in the sandbox. Every answer that is not 2xx, and every
request that gets no answer within the timeout, is a **customer-visible error**. Requests are sent
on a schedule (request *i* at ``start + i / rate``) by a small pool of threads, so a slow answer
does not slow the stream down: the rate customers send is the rate the probe sends.

The drill marks the periods (``probe.mark("during")``) and reads the verdict per period (a request
counts in the period its answer, or its timeout, arrived in): requests,
errors, error rate, latency p50/p99, and the first errors as examples. Chaos drills run it around
their action; nothing here knows of Airflow or of the estate.

Usage::

    with CustomerProbe("http://lb.example.com", run_id="dr_weekly_pod_kill/manual__...") as probe:
        time.sleep(5)
        probe.mark("during")
        kill_one_pod()
        wait_until_healed()
        probe.mark("after")
        time.sleep(5)
    report = probe.report()      # {"before": {...}, "during": {...}, "after": {...}, "total": {...}}
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from drdrill.core.httpjson import call

log = logging.getLogger(__name__)

MAX_EXAMPLES = 5  # errors kept per period as examples (the counts are exact)


@dataclass
class _Period:
    name: str
    started: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class CustomerProbe:
    """Requests at ``rate`` per second through ``base_url`` until stopped; counts what customers would see.

    :param base_url: the front door (``http://host:port``)
    :param run_id: tags the probe's writes (the service stores ``(run_id, seq)``)
    :param rate: requests per second (writes and reads alternate)
    :param timeout: seconds a request may take before it counts as an error
    :param write_path: the service's write endpoint
    :param read_path: the service's read endpoint (``?run_id=`` is appended)
    :param concurrency: threads sending requests (enough that ``rate`` holds when answers are slow)
    """

    def __init__(self, base_url: str, *, run_id: str, rate: float = 20.0, timeout: float = 2.0,
                 write_path: str = "/write", read_path: str = "/read", concurrency: int | None = None) -> None:
        if not rate > 0:
            raise ValueError(f"probe rate must be > 0 requests/s, got {rate}")
        if not timeout > 0:
            raise ValueError(f"probe timeout must be > 0 s, got {timeout}")
        self.base_url = base_url.rstrip("/")
        self.run_id = run_id
        self.rate = float(rate)
        self.timeout = float(timeout)
        self.write_path = write_path
        self.read_path = read_path
        # Requests in flight at most: the rate times the longest a request may take, plus headroom.
        self.concurrency = concurrency or max(4, min(64, math.ceil(self.rate * self.timeout) + 2))
        self._lock = threading.Lock()
        self._periods: list[_Period] = []
        self._current: _Period | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._sent = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self, period: str = "before") -> CustomerProbe:
        if self._thread is not None:
            raise RuntimeError("the probe is already running")
        self.mark(period)
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="probe")
        self._thread = threading.Thread(target=self._send_loop, name="probe-schedule", daemon=True)
        self._thread.start()
        log.info("customer probe: %.0f requests/s through %s (timeout %.1f s)", self.rate, self.base_url,
                 self.timeout)
        return self

    def stop(self) -> None:
        """Stop sending and wait for the requests in flight (each bounded by the timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        log.info("customer probe stopped after %d requests", self._sent)

    def __enter__(self) -> CustomerProbe:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()

    def mark(self, period: str) -> None:
        """From now on, requests count toward ``period`` (e.g. "before", "during", "after")."""
        with self._lock:
            self._current = _Period(period, time.time())
            self._periods.append(self._current)
        log.info("customer probe: period %s", period)

    # ------------------------------------------------------------------ sending
    def _send_loop(self) -> None:
        assert self._pool is not None
        t0 = time.monotonic()
        i = 0
        while not self._stop.is_set():
            due = t0 + i / self.rate
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            self._pool.submit(self._one, i)
            self._sent += 1
            i += 1

    def _one(self, seq: int) -> None:
        if seq % 2 == 0:
            what, url, body = "write", self.base_url + self.write_path, {"run_id": self.run_id, "seq": seq}
        else:
            what, url, body = "read", f"{self.base_url}{self.read_path}?run_id={quote(self.run_id)}", None
        t = time.monotonic()
        status, answer = call(url, timeout=self.timeout, body=body)
        ms = (time.monotonic() - t) * 1000
        ok = 200 <= status < 300
        with self._lock:
            # Counted when the customer sees it: a request in flight when the fault hits fails "during".
            p = self._current
            if p is None:
                return
            p.requests += 1
            p.latencies_ms.append(ms)
            if not ok:
                p.errors += 1
                if len(p.examples) < MAX_EXAMPLES:
                    why = "no answer" if status == 0 else f"HTTP {status}"
                    p.examples.append({"at": round(time.time(), 3), "request": what, "status": status,
                                       "error": f"{why}: {answer.get('error') or answer.get('status') or ''}"
                                                .rstrip(": ")})

    # ------------------------------------------------------------------ verdict
    def report(self) -> dict[str, Any]:
        """Per period (in the order marked; a name marked twice is merged) and in total."""
        with self._lock:
            merged: dict[str, _Period] = {}
            for p in self._periods:
                m = merged.setdefault(p.name, _Period(p.name, p.started))
                m.requests += p.requests
                m.errors += p.errors
                m.latencies_ms += p.latencies_ms
                m.examples += p.examples[:MAX_EXAMPLES - len(m.examples)]
            total = _Period("total", self._periods[0].started if self._periods else time.time())
            for m in merged.values():
                total.requests += m.requests
                total.errors += m.errors
                total.latencies_ms += m.latencies_ms
                total.examples += m.examples[:MAX_EXAMPLES - len(total.examples)]
        out = {name: _summary(m) for name, m in merged.items()}
        out["total"] = _summary(total)
        out["total"].update(rate_per_second=self.rate, url=self.base_url)
        return out


def _summary(p: _Period) -> dict[str, Any]:
    def ms(v: float | None) -> float | None:
        return None if v is None else round(v, 1)

    return {"requests": p.requests, "errors": p.errors,
            "error_rate": round(p.errors / p.requests, 4) if p.requests else None,
            "latency_p50_ms": ms(percentile(p.latencies_ms, 50)),
            "latency_p99_ms": ms(percentile(p.latencies_ms, 99)),
            "latency_max_ms": ms(max(p.latencies_ms, default=None)) if p.latencies_ms else None,
            "error_examples": p.examples}
