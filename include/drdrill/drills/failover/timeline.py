"""The run's timeline in Markdown, saved beside the journal, ready for the postmortem.

Built from the finished journal document: every step with its timestamps and outcome, the
key events (fault, promotion, DNS change, first write), every message sent, and the
figures against their targets. Phase durations come from the task groups (assess,
failover, dns_switch, verify, stabilize, ...), so they read like the runbook.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def _iso(v: Any) -> str:
    if isinstance(v, int | float):
        return datetime.fromtimestamp(v, UTC).isoformat(timespec="milliseconds")
    return str(v)


def phase_durations(steps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per task group (the part of the task id before the dot): start, end, seconds, status."""
    phases: dict[str, dict[str, Any]] = {}
    for st in steps:
        if "started_at" not in st:
            continue
        group = st["task_id"].split(".", 1)[0] if "." in st["task_id"] else st["task_id"]
        p = phases.setdefault(group, {"start": st["started_at"], "end": st["ended_at"], "statuses": set()})
        p["start"] = min(p["start"], st["started_at"])
        p["end"] = max(p["end"], st["ended_at"])
        p["statuses"].add(st.get("status"))
    for p in phases.values():
        seen = p.pop("statuses")
        # failed wins; a phase whose steps were all skipped did not succeed, it did not happen
        p["status"] = "failed" if "failed" in seen else "skipped" if seen == {"skipped"} else "success"
    for p in phases.values():
        p["seconds"] = round((datetime.fromisoformat(p["end"]) - datetime.fromisoformat(p["start"])).total_seconds(), 3)
    return phases


def render(doc: dict[str, Any]) -> str:
    m = doc.get("measurements") or {}
    lines = [f"# {doc['drill']} on {doc.get('cluster')}: {doc['status'].upper()}", "",
             f"- run: `{doc['run_id']}` ({doc.get('run_type')}), code `{doc.get('code_version')}`",
             f"- estate: {doc['estate']['name']} ({doc['estate']['file']})",
             f"- params: `{doc.get('params')}`"]
    if m.get("rto_seconds") is not None:
        lines.append(f"- **RTO** {m['rto_seconds']:.2f} s ({m.get('rto_start')} -> first write through the "
                     f"endpoint), target {m['rto_target_seconds']:.0f} s")
    if "rpo_seconds" in m:
        lines.append(f"- **RPO** {m['rpo_seconds']:.2f} s of acknowledged writes lost ({m.get('lost_writes')} "
                     f"write(s)), target {m['rpo_target_seconds']:.0f} s; replication lag before the fault "
                     f"{m.get('lag_bytes_before_fault')} bytes")
    if doc.get("failures"):
        lines += ["", "## Failures", *[f"- {f}" for f in doc["failures"]]]
    phases = doc.get("phases") or {}
    if phases:
        lines += ["", "## Phases", "", "| phase | start (UTC) | seconds | status |", "|---|---|---:|---|"]
        for name, p in phases.items():
            lines.append(f"| {name} | {p['start']} | {p['seconds']:.2f} | {p['status']} |")
    events: list[tuple[str, str]] = []
    for st in doc.get("steps", []):
        if "started_at" in st:
            events.append((st["started_at"], f"`{st['task_id']}` started"))
            err = f": {st['error'].splitlines()[0][:200]}" if st.get("error") else ""
            events.append((st["ended_at"], f"`{st['task_id']}` {st['status']} ({st['seconds']:.2f} s){err}"))
    for at, what in doc.get("events", []):
        events.append((_iso(at), f"**{what}**"))
    for msg in doc.get("comms", []):
        first = msg["message"].splitlines()[0]
        events.append((_iso(msg["at"]), f"message sent ({msg['phase']}): {first}"))
    lines += ["", "## Timeline", "", "| time (UTC) | event |", "|---|---|"]
    for at, what in sorted(events):
        lines.append(f"| {at} | {what.replace('|', '/')} |")
    if doc.get("comms"):
        lines += ["", "## Messages"]
        for msg in doc["comms"]:
            lines += ["", f"{_iso(msg['at'])} ({msg['phase']}):", "```", msg["message"], "```"]
    lines += ["", f"Journal: {doc['drill']}/{doc['run_id']} written {doc.get('written_at')}", ""]
    return "\n".join(lines)
