"""One small JSON-over-HTTP call, for the application's endpoints (health, write, read).

Never raises for an HTTP or network failure: it returns ``(status, body)`` with status 0 when
nothing answered, so callers record what they saw (a failed write is a measurement, not a crash).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def call(url: str, *, timeout: float, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """GET ``url``, or POST ``body`` as JSON; the answer's JSON (``{"error": ...}`` when there is none)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"{}")
        except ValueError:
            return e.code, {"error": str(e)}
    except (OSError, ValueError) as e:
        return 0, {"error": f"{type(e).__name__}: {e}"}
