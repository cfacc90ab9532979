"""The per-run view: one journal rendered as HTML (status, figures against targets, failed checks, steps).

Plain strings with every journal value escaped (`html.escape`): a journal is data written by a
drill, never markup. Links are relative to ``dr-drills/run`` (``../`` is the Airflow UI root) and
open in the Airflow UI (``static/top-links.js``: the page sits in the UI's sandboxed iframe).
"""

from __future__ import annotations

import json
from html import escape
from typing import Any
from urllib.parse import quote

STATUS_CLASS = {"passed": "passed", "pass": "passed", "success": "passed", "failed": "failed", "fail": "failed",
                "skipped": "skipped", "skip": "skipped", "warn": "missed", "not run": "not_due"}


def parse(raw: bytes) -> dict[str, Any]:
    """The journal's JSON document (a journal that is not an object is an error, named so)."""
    doc = json.loads(raw)
    if not isinstance(doc, dict):
        raise ValueError(f"the journal is a JSON {type(doc).__name__}, not an object")
    return doc


def _e(v: Any) -> str:
    return escape("" if v is None else str(v))


def badge(status: str | None) -> str:
    s = str(status or "unknown")
    return f'<span class="badge {STATUS_CLASS.get(s, s.replace(" ", "_"))}">{_e(s)}</span>'


def fmt(value: Any, unit: str | None = None) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        value = f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return _e(f"{value} {unit}" if unit else value)


def journal_href(path: str) -> str:
    return "journal?path=" + quote(path, safe="")


def _page(title: str, body: str) -> str:
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<link rel=\"stylesheet\" href=\"static/dr-drills.css\">"
            "<script src=\"static/top-links.js\"></script></head>"
            f"<body><main class=\"run-view\">{body}</main></body></html>")


def run_page(run: dict[str, Any], doc: dict[str, Any]) -> str:
    """The view of one run: ``run`` is its entry in the evidence (figures, links), ``doc`` its journal."""
    head = (f'<header><h1>{_e(run["drill"])} {badge(run.get("status"))}</h1>'
            f'<p class="meta">cluster <b>{_e(run.get("cluster") or "—")}</b> · run <code>{_e(run["run_id"])}</code>'
            f' · {_e(run.get("run_type"))} · at {_e(run.get("at"))} · journal written {_e(run.get("written_at"))}'
            f'{" · dry run" if run.get("dry_run") else ""}</p>'
            f'<p class="links"><a target="_top" href="../{_e(run.get("dag_run_href"))}">Airflow run</a>'
            f' · <a href="{_e(journal_href(run["journal"]))}">journal (JSON)</a>'
            f' · <a target="_top" href="../plugin/dr-drills">all DR drills</a></p>'
            f'<p class="meta small">code {_e(doc.get("code_version"))} · SHA-256 '
            f'<code>{_e(run.get("sha256"))}</code></p>'
            "</header>")
    figures = run.get("figures") or []
    fig_rows = "".join(
        f'<tr><td>{_e(f.get("label") or f.get("name"))}</td><td class="num">{fmt(f.get("value"), f.get("unit"))}</td>'
        f'<td class="num">{fmt(f.get("target"), f.get("unit"))}</td>'
        f'<td>{badge("passed" if f.get("met") else "failed") if f.get("met") is not None else "—"}</td></tr>'
        for f in figures)
    fig_html = ('<section><h2>Figures against targets</h2><table><thead><tr><th>figure</th><th>measured</th>'
                f'<th>target</th><th>met</th></tr></thead><tbody>{fig_rows}</tbody></table></section>'
                if figures else '<section><h2>Figures against targets</h2><p class="muted">This drill measures no '
                'RTO, RPO, restore or recovery time.</p></section>')
    results = [r for r in doc.get("results") or [] if isinstance(r, dict)]
    failed = [r for r in results if r.get("status") == "fail"]
    failures = doc.get("failures") or run.get("failures") or []
    fail_html = ("<section><h2>Failed checks</h2>"
                 + ("<ul class=\"failures\">" + "".join(f"<li>{_e(f)}</li>" for f in failures) + "</ul>"
                    if failures else '<p class="muted">None.</p>') + "</section>")
    check_rows = "".join(
        f'<tr class="{"row-failed" if r.get("status") == "fail" else ""}"><td>{badge(r.get("status"))}</td>'
        f'<td><code>{_e(r.get("name"))}</code></td><td>{_e(r.get("target"))}</td><td>{_e(r.get("message"))}</td></tr>'
        for r in failed + [r for r in results if r.get("status") != "fail"])
    checks_html = (f'<section><h2>Checks ({len(results)}, {len(failed)} failed)</h2><table><thead><tr><th>status</th>'
                   f'<th>check</th><th>target</th><th>result</th></tr></thead><tbody>{check_rows}</tbody></table>'
                   "</section>")
    steps = [s for s in doc.get("steps") or [] if isinstance(s, dict)]
    step_rows = "".join(
        f'<tr><td>{badge(s.get("status"))}</td><td><code>{_e(s.get("task_id"))}</code></td>'
        f'<td class="num">{fmt(s.get("seconds"), "s") if s.get("seconds") is not None else "—"}</td>'
        f'<td>{_e(s.get("started_at"))}</td><td class="error">{_e(s.get("error"))}</td></tr>' for s in steps)
    steps_html = (f'<section><h2>Steps ({len(steps)})</h2><table><thead><tr><th>status</th><th>step</th><th>time</th>'
                  f'<th>started</th><th>error</th></tr></thead><tbody>{step_rows}</tbody></table></section>')
    return _page(f'{run["drill"]} {run["run_id"]}', head + fig_html + fail_html + checks_html + steps_html)


def no_journal(dag_id: str, run_id: str, evidence: dict[str, Any], airflow_run: dict[str, Any] | None = None) -> str:
    """The view of a run the evidence has no journal for (not a drill, still running, killed, or outside the
    period); ``airflow_run`` is what Airflow's metadata DB has of it (`drdrill.ui.history.AirflowRun.to_dict`)."""
    known = ""
    if airflow_run:
        a = airflow_run
        state = ('<span class="badge no_journal">success, no journal</span>' if a.get("state") == "success"
                 else badge(a.get("state")))
        known = (f'<p>Airflow has this run: {state} {_e(a.get("run_type"))} run after '
                 f'{_e(a.get("run_after"))}, started {_e(a.get("start_date") or "—")}, ended '
                 f'{_e(a.get("end_date") or "—")}. It wrote no journal: it is no evidence of a drill (a run still '
                 'queued or running, a worker killed, or a run that failed before its last task).</p>'
                 f'<p><a target="_top" href="../{_e(a.get("dag_run_href"))}">Airflow run</a></p>')
    return _page("no journal", f'<header><h1>No journal for this run</h1></header><p>The evidence of estate '
                 f'<b>{_e(evidence.get("estate"))}</b> from {_e(evidence.get("since"))} to {_e(evidence.get("until"))} '
                 f'has no journal of run <code>{_e(run_id)}</code> of <code>{_e(dag_id)}</code>. A drill writes its '
                 'journal in its last task: a run that is still going, or a DAG that is not a drill, has none.</p>'
                 f'{known}<p><a target="_top" href="../plugin/dr-drills">all DR drills</a></p>')


def unreadable(run: dict[str, Any], error: str) -> str:
    """The view of a run whose journal the evidence listed but that cannot be read now."""
    return _page("journal unreadable", f'<header><h1>{_e(run["drill"])} {badge(run.get("status"))}</h1></header>'
                 f'<p class="error">Cannot read the journal {_e(run["journal"])}: {_e(error)}</p>'
                 f'<p><a target="_top" href="../{_e(run.get("dag_run_href"))}">Airflow run</a></p>')
