"""A drill run's outcome, told to people: a failure, and the first pass after a failure ("recovered").

Called after the drill's journal task (`drdrill.notifiers.DrillOutcomeNotifier`), so the journal, the
evidence of record, is already written: the message is built from it (drill, cluster, the failed
checks' lines, the journal's path) and the run's link in the Airflow UI (``[api] base_url``).

Whether a pass is a recovery is decided from the journals too: the previous outcome is the newest
earlier journal of the same drill and the same ``cluster`` that failed, or that passed and was not a
dry run (a dry run proves no recovery; its failure still counts, it was notified). Journals, not
Airflow's previous DagRun, because they name the cluster (a drill's runs alternate between clusters:
a pass on one is no recovery of another), they tell ``skipped`` runs (a guard said "not now", the run
is green in Airflow) from passes, they are kept when the metadata DB is cleaned up or the DAG is
recreated, and they are what the dashboards and reports read. They are read newest first by their
storage modification time (written once, never edited) until one qualifies: one or two reads a run.

Every channel of the estate's ``notifications:`` that wants the event gets it (`drdrill.drills.channels`);
the message is also logged. A channel that cannot deliver is logged with its name and never changes
the run's result.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from drdrill.core import journal as j

log = logging.getLogger("drdrill.drills.outcome")

MAX_LISTED = 20  # failed checks named in a message; the journal has them all
MAX_LINE = 400


@dataclass(frozen=True)
class Message:
    """One notification: the same facts for every channel."""

    event: str  # failure | recovery
    drill: str
    cluster: str | None
    estate: str
    run_id: str
    link: str
    failures: list[str] = field(default_factory=list)
    journal: str | None = None
    previous: dict[str, Any] | None = None

    @property
    def where(self) -> str:
        return self.cluster or "no cluster"

    @property
    def subject(self) -> str:
        if self.event == "failure":
            n = len(self.failures)
            return f"[drdrill {self.estate}] FAILED: {self.drill} on {self.where} ({n} failed check{'s' * (n != 1)})"
        return f"[drdrill {self.estate}] RECOVERED: {self.drill} on {self.where} passed again"

    @property
    def text(self) -> str:
        lines = [f"Drill: {self.drill}", f"Cluster: {self.where}", f"Estate: {self.estate}", f"Run: {self.run_id}"]
        if self.event == "failure":
            lines.append(f"Status: FAILED, {len(self.failures)} failed check(s):")
            lines += [f"  - {f[:MAX_LINE]}" for f in self.failures[:MAX_LISTED]]
            if len(self.failures) > MAX_LISTED:
                lines.append(f"  ... and {len(self.failures) - MAX_LISTED} more (in the journal)")
        else:
            prev = self.previous or {}
            lines.append(f"Status: PASSED, recovered from the failure of run {prev.get('run_id', '?')} "
                         f"({prev.get('written_at', '?')}, {len(prev.get('failures') or [])} failed check(s))")
        lines.append(f"Airflow: {self.link}")
        if self.journal:
            lines.append(f"Journal: {self.journal}")
        return "\n".join(lines)

    @property
    def dedup_key(self) -> str:
        """One PagerDuty incident per estate, drill and cluster: repeated failures add to it, a recovery resolves
        it."""
        return f"drdrill/{self.estate}/{self.drill}/{self.cluster or '-'}"


def run_link(dag_id: str, run_id: str) -> str:
    """The run's page in the Airflow UI, from ``[api] base_url`` (as Airflow's own task log links)."""
    from airflow.sdk.configuration import conf

    base = conf.get("api", "base_url", fallback="http://localhost:8080/") or "http://localhost:8080/"
    return f"{base.rstrip('/')}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"


def counts(doc: dict[str, Any]) -> bool:
    """Whether a journal is an outcome a later pass can recover from: failed, or passed for real."""
    status = doc.get("status")
    return status == "failed" or (status == "passed" and not (doc.get("params") or {}).get("dry_run"))


def previous_outcome(location: str, conn_id: str | None, drill: str, cluster: str | None,
                     run_id: str) -> dict[str, Any] | None:
    """The newest earlier journal of ``drill`` on ``cluster`` that `counts` (None: there is none)."""
    paths = []
    for p in j.listed(location, conn_id, drill):
        try:
            mtime = j.storage(p, conn_id).stat().st_mtime
        except Exception:  # noqa: BLE001 - a store without times: every journal is read (below)
            mtime = None
        paths.append((mtime, p))
    ordered = all(m is not None for m, _ in paths)
    best: dict[str, Any] | None = None
    for _, p in sorted(paths, key=lambda mp: (mp[0] or 0, mp[1]), reverse=True):
        try:
            doc = j.read(p, conn_id)
        except Exception as e:  # noqa: BLE001 - one unreadable journal does not hide the others
            log.warning("journal %s could not be read (%s); skipped", p, e)
            continue
        if doc.get("run_id") == run_id or doc.get("cluster") != cluster or not counts(doc):
            continue
        item = {"run_id": doc.get("run_id"), "status": doc.get("status"), "written_at": doc.get("written_at"),
                "failures": doc.get("failures") or [], "journal": p}
        if ordered:
            return item
        if best is None or str(item["written_at"]) > str(best["written_at"]):
            best = item
    return best


def decide(doc: dict[str, Any], previous: dict[str, Any] | None) -> str | None:
    """``failure`` for a failed run, ``recovery`` for a real pass after a failure, else None (nothing to tell)."""
    if doc.get("status") == "failed":
        return "failure"
    if doc.get("status") == "passed" and not (doc.get("params") or {}).get("dry_run") and previous \
            and previous.get("status") == "failed":
        return "recovery"
    return None


def send(msg: Message, notifications: Any) -> list[dict[str, Any]]:
    """Log the message and send it to every channel of the estate's ``notifications`` that wants it; one
    outcome per channel. Never raises."""
    from drdrill.drills import channels

    (log.warning if msg.event == "failure" else log.info)("%s\n%s", msg.subject, msg.text)
    out: list[dict[str, Any]] = []
    for kind, ch in notifications.channels(msg.drill, msg.event):
        try:
            if kind == "smtp":
                channels.smtp(ch.conn_id, list(ch.to), msg.subject, msg.text, from_email=ch.from_email)
            elif kind == "slack":
                channels.slack_webhook(ch.conn_id, f"*{_slack(msg.subject)}*\n{_slack(msg.text)}")
            elif kind == "pagerduty":
                channels.pagerduty(
                    ch.conn_id, summary=msg.subject, action="trigger" if msg.event == "failure" else "resolve",
                    dedup_key=msg.dedup_key, severity=ch.severity, source=f"drdrill/{msg.estate}",
                    custom_details={"drill": msg.drill, "cluster": msg.where, "run_id": msg.run_id,
                                    "failed_checks": msg.failures[:MAX_LISTED], "journal": msg.journal},
                    links=[{"href": msg.link, "text": f"{msg.drill} run in Airflow"}])
            out.append({"kind": kind, "sent": True})
            log.info("%s notification of %s sent through %s", msg.event, msg.drill, kind)
        except Exception as e:  # noqa: BLE001 - a notification never changes the drill's result
            out.append(channels.failed(kind, ch.conn_id, f"the {msg.event} notification of {msg.drill}", e))
    return out


def _slack(text: str) -> str:
    """Slack's mrkdwn control characters escaped (a check's message may hold ``<``, ``>`` or ``&``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def notify_run(context: dict[str, Any], *, journal_task_failed: bool = False) -> dict[str, Any]:
    """Tell the run's outcome (the journal task's callback context): which event, the message, per channel
    whether it was sent. Nothing is sent for a pass after a pass, a first pass, or a skipped run.

    ``journal_task_failed``: called as the journal task's failure callback. When the journal is missing then,
    the run failed without its evidence: told as a failure with the task's exception, or, when there is none
    (a killed worker: Airflow runs the callback in the DAG processor after the task's heartbeat timed out,
    with no exception in the context), saying the task's process was lost."""
    from drdrill.core.estate import load_estate

    dag_id = context["dag"].dag_id
    run_id = context["dag_run"].run_id
    try:
        estate = load_estate()
    except Exception as e:  # noqa: BLE001 - the failure itself is in the task's log; nowhere to send it
        log.error("no notification for %s run %s: the estate cannot be read (%s)", dag_id, run_id, e)
        return {"event": None, "reason": f"estate: {e}"}
    loc, conn_id = estate.journal.location, estate.journal.conn_id
    path = j.journal_path(loc, conn_id, dag_id, run_id)
    if path.exists():
        doc = j.read(str(path), conn_id)
        journal: str | None = str(path)
    elif journal_task_failed or context.get("exception") is not None:  # failed before it wrote the evidence
        params = dict(context.get("params") or {})
        exc = context.get("exception")
        why = f"{type(exc).__name__}: {exc}" if exc is not None else \
            "the journal task's process was lost (a killed worker, or its heartbeat timed out)"
        doc = {"status": "failed", "cluster": params.get("cluster") if isinstance(params.get("cluster"), str) else None,
               "params": params, "failures": [f"journal: the run's journal was not written: {why}"]}
        journal = None
    else:
        log.error("no notification for %s run %s: its journal %s is missing", dag_id, run_id, path)
        return {"event": None, "reason": "no journal"}
    previous = None
    if doc.get("status") == "passed":
        previous = previous_outcome(loc, conn_id, dag_id, doc.get("cluster"), run_id)
    event = decide(doc, previous)
    if event is None:
        log.info("%s run %s %s: nothing to notify (previous outcome: %s)", dag_id, run_id, doc.get("status"),
                 (previous or {}).get("status", "none"))
        return {"event": None, "status": doc.get("status"), "previous": previous}
    msg = Message(event=event, drill=dag_id, cluster=doc.get("cluster"), estate=estate.name, run_id=run_id,
                  link=run_link(dag_id, run_id), failures=list(doc.get("failures") or []), journal=journal,
                  previous=previous)
    return {"event": event, "subject": msg.subject, "text": msg.text, "sent": send(msg, estate.notifications)}
