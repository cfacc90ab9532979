"""Bounded polling: every wait in drdrill has a deadline and says what it waited for."""

from __future__ import annotations

import time
from typing import Any

from drdrill.core.errors import DrillError


def wait_until(predicate, *, timeout: float, interval: float = 0.2, what: str) -> Any:
    """Poll ``predicate`` until it returns a truthy value; raise DrillError naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise DrillError(f"timed out after {timeout:.0f}s waiting for {what}")
