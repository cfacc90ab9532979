"""The compliance report: the evidence of one period, readable without Airflow (Markdown or HTML).

Every drill run in the period with its verdict and figures against targets, the windows a scheduled
drill did not satisfy, the 3-2-1-1-0 scorecard, the resilience policy with its score, and the SHA-256
of every journal it cites (with how to check one). The HTML is one self-contained file (inline CSS, no
external URL); the Markdown renders on GitHub.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable
from typing import Any

FORMATS = ("html", "md")
BAD = ("failed", "missed", "skipped")
WINDOW_STATES = ("passed", "failed", "missed", "skipped", "open", "not_due")


def render(evidence: Any, fmt: str) -> str:
    """The report of ``evidence`` (a `drdrill.evidence.Evidence`, or its ``to_dict()``) as ``html`` or ``md``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}: use one of {', '.join(FORMATS)}")
    doc = evidence if isinstance(evidence, dict) else evidence.to_dict()
    return (_html if fmt == "html" else _md)(_sections(doc), doc)


def period_label(doc: dict[str, Any]) -> str:
    """``first day to last day``; an ``until`` at midnight ends the day before (the CLI's inclusive last day)."""
    until = dt.datetime.fromisoformat(doc["until"])
    if until.time() == dt.time():
        until -= dt.timedelta(days=1)
    return f"{doc['since'][:10]} to {until.date().isoformat()}"


# ------------------------------------------------------------------ the content, format-neutral
# A section is (title, intro paragraphs, header, rows); a cell is text, or (text, css class) for a status.
Cell = Any


def _fig(f: dict[str, Any]) -> str:
    unit = " s" if f["unit"] == "s" else ""
    text = f"{f['label']} {_n(f['value'])}{unit}"
    if f["target"] is not None:
        text += f" (target {_n(f['target'])}{unit}: {'met' if f['met'] else 'BREACHED'})"
    return text


def _n(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{v:.0f}"
    return "-" if v is None else str(v)


def _sections(doc: dict[str, Any]) -> list[tuple[str, list[str], list[str], list[list[Cell]]]]:
    runs, drills, pol = doc["runs"], doc["drills"], doc["policy"]
    cited: dict[str, str] = {}

    def cite(journal: str | None, sha: str | None) -> None:
        if journal and sha:
            cited[journal] = sha

    sha_of = {r["journal"]: r["sha256"] for r in runs}
    out = []
    counted = [r for r in runs if not r["dry_run"] and r["status"] != "skipped"]
    windows = [(d, w) for d in drills for w in d["windows"]]
    states = {s: sum(1 for _, w in windows if w["status"] == s) for s in WINDOW_STATES}
    score = pol["scores"]["overall"]
    out.append(("Summary", [], ["item", "value"], [
        ["Estate", doc["estate"]],
        ["Period", f"{doc['since']} to {doc['until']} (schedule dates in {doc['timezone']})"],
        ["Generated", doc["generated_at"]], ["Journal location", doc.get("journal_location", "")],
        ["Drill runs", f"{len(runs)} ({sum(r['status'] == 'passed' for r in counted)} passed, "
                       f"{sum(r['status'] == 'failed' for r in counted)} failed, "
                       f"{len(runs) - len(counted)} dry runs or skipped)"],
        ["Windows", ", ".join(f"{n} {s}" for s, n in states.items() if n) or "none due"],
        ["Resilience score", "-" if score is None else f"{score:g} / 100"],
        ["Unreadable journals", str(len(doc["unreadable"]))]]))

    rows = []
    for p in pol["disruptions"]:
        cite(p["journal"], sha_of.get(p["journal"]))
        rows.append([p["disruption"], p["cluster"] or "-", p["drill"],
                     f"{_n(p['rto_target_seconds'])} s / {_n(p['rpo_target_seconds'])} s",
                     _n(p["rto_measured_seconds"]) + (" s" if p["rto_measured_seconds"] is not None else ""),
                     _n(p["rpo_measured_seconds"]) + (" s" if p["rpo_measured_seconds"] is not None else ""),
                     (p["status"], p["status"]), "-" if p["age_days"] is None else f"{p['age_days']:g} d",
                     p["run_id"] or "-"])
    scores = ", ".join(f"{c}: {s:g}" for c, s in pol["scores"]["clusters"].items() if s is not None)
    out.append(("Resilience policy", [f"Score: {'-' if score is None else f'{score:g}'} overall"
                                      + (f" ({scores})" if scores else "") + ".", pol["formula"]],
                ["disruption", "cluster", "drill", "target RTO / RPO", "measured RTO", "measured RPO", "status",
                 "evidence age", "run"], rows))

    rows = []
    for sc in doc["scorecard"]:
        cite(sc["journal"], sha_of.get(sc["journal"]))
        rows.append([sc["cluster"] or "-", "total", sc["score"], sc["target"], (sc["status"], sc["status"]),
                     f"{sc['at']} ({sc['run_id']})"])
        for d in sc["digits"]:
            rows.append(["", d["digit"], _n(d["value"]), _n(d["target"]), (d["status"], d["status"]), d["evidence"]])
    out.append(("3-2-1-1-0 scorecard", ["From the newest daily verification holding scorecard results, per cluster."],
                ["cluster", "digit", "value", "required", "status", "evidence"], rows))

    rows = [[d["drill"], d["cluster"] or "-", d["cadence"], str(len(d["windows"])),
             *[str(sum(w["status"] == s for w in d["windows"])) for s in WINDOW_STATES],
             d["last_passed"]["at"] if d["last_passed"] else "never"] for d in drills]
    out.append(("Drills and their windows",
                ["One window per period a scheduled drill was due in (daily, weekly, monthly, quarterly). A window "
                 "is passed when a run inside it passed; dry runs and skipped runs do not satisfy it. not_due: "
                 "before the estate's first journal; manual drills have no windows."],
                ["drill", "cluster", "cadence", "windows", *WINDOW_STATES, "last passed"], rows))

    rows = [[d["drill"], d["cluster"] or "-", d["cadence"], f"{w['start']} to {w['end']}", (w["status"], w["status"]),
             ", ".join(w["run_ids"]) or "no run"]
            for d, w in windows if w["status"] in BAD]
    out.append(("Windows not satisfied", ["Every due period in which a scheduled drill did not pass (end date "
                                          "exclusive)."] if rows else ["None: every due window was satisfied."],
                ["drill", "cluster", "cadence", "window", "status", "runs"], rows))

    rows = []
    for r in runs:
        cite(r["journal"], r["sha256"])
        verdict = r["status"] + (" (dry run)" if r["dry_run"] else "")
        rows.append([r["at"], r["drill"], r["cluster"] or "-", r["run_id"], (verdict, r["status"]),
                     "; ".join(_fig(f) for f in r["figures"]) or "-", "; ".join(r["failures"][:3]) or "-",
                     r["sha256"][:12]])
    out.append(("Drill runs", ["Every run in the period, oldest first; the last column starts the journal's "
                               "SHA-256 (in full below)."],
                ["at", "drill", "cluster", "run", "status", "figures against targets", "failures", "sha256"], rows))

    if doc["unreadable"]:
        out.append(("Unreadable journals", ["These files under the journal location could not be read as journals; "
                                            "they are not counted above."],
                    ["journal", "error"], [[u["path"], u["error"]] for u in doc["unreadable"]]))

    out.append(("Journals cited", [
        "SHA-256 of each journal's bytes when this report was made. To check one, fetch it and compare: "
        "`sha256sum <file>` for a local journal (strip `file://`), `aws s3 cp s3://bucket/key - | sha256sum` "
        "for one in S3. Journals are written once and never edited: a different digest means the file changed."],
        ["journal", "sha256"], [[j, s] for j, s in sorted(cited.items())]))
    return out


# ------------------------------------------------------------------ Markdown
def _md_cell(c: Cell) -> str:
    text = c[0] if isinstance(c, tuple) else str(c)
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    if isinstance(c, tuple) and c[1] in ("failed", "fail", "breached", "missed", "expired", "not_run", "skipped"):
        return f"**{text}**"
    return text


def _md(sections: list[Any], doc: dict[str, Any]) -> str:
    lines = [f"# DR compliance report: {doc['estate']}, {period_label(doc)}", ""]
    for title, intro, header, rows in sections:
        lines += [f"## {title}", ""]
        for p in intro:
            lines += [p, ""]
        if rows:
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "---|" * len(header))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------ HTML
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#1f2328}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td{word-break:break-word;max-width:40em}td:first-child{white-space:nowrap}
.passed,.pass,.met{background:#dafbe1}.failed,.fail,.breached,.missed{background:#ffebe9;font-weight:600}
.expired,.skipped,.open{background:#fff8c5}.not_run{background:#eee;font-weight:600}
code{background:#f6f8fa;padding:0 .3em}
"""


def _h(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _html_cell(c: Cell) -> str:
    if isinstance(c, tuple):
        return f'<td class="{_h(c[1])}">{_h(c[0])}</td>'
    return f"<td>{_h(c)}</td>"


def _inline_code(text: str, esc: Callable[[Any], str] = _h) -> str:
    parts = text.split("`")
    return "".join(esc(p) if i % 2 == 0 else f"<code>{esc(p)}</code>" for i, p in enumerate(parts))


def _html(sections: list[Any], doc: dict[str, Any]) -> str:
    title = f"DR compliance report: {doc['estate']}, {period_label(doc)}"
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{_h(title)}</title>",
           f"<style>{CSS}</style></head><body>", f"<h1>{_h(title)}</h1>"]
    for name, intro, header, rows in sections:
        out.append(f"<h2>{_h(name)}</h2>")
        out += [f"<p>{_inline_code(p)}</p>" for p in intro]
        if rows:
            head = "" if not any(header) else "<thead><tr>" + "".join(f"<th>{_h(x)}</th>" for x in header) + \
                "</tr></thead>"
            body = "".join("<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in rows)
            out.append(f"<table>{head}<tbody>{body}</tbody></table>")
    out.append(f"<p><small>Generated {_h(doc['generated_at'])} by drdrill from the journals.</small></p>")
    out.append("</body></html>")
    return "\n".join(out)


# ------------------------------------------------------------------ the quarterly report beside the journals
REPORTS_DIR = "reports"


def quarter_of(day: dt.date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def quarter_bounds(quarter: str) -> tuple[dt.date, dt.date]:
    """First day and the day after the last of ``YYYY-Qn``."""
    try:
        year, q = quarter.split("-Q")
        start = dt.date(int(year), 3 * (int(q) - 1) + 1, 1)
        if not 1 <= int(q) <= 4:
            raise ValueError
    except ValueError:
        raise ValueError(f"quarter {quarter!r} is not YYYY-Qn (n = 1 to 4), e.g. 2026-Q3") from None
    end = dt.date(start.year + 1, 1, 1) if start.month == 10 else dt.date(start.year, start.month + 3, 1)
    return start, end


def previous_quarter(day: dt.date) -> str:
    start, _ = quarter_bounds(quarter_of(day))
    return quarter_of(start - dt.timedelta(days=1))


def write_quarter_report(estate: Any, quarter: str, *, now: dt.datetime | None = None) -> dict[str, dict[str, str]]:
    """Write the report of a closed quarter as ``<journal location>/reports/<YYYY-Qn>.html`` and ``.md``.

    Written once, like the journals: a report that is already there is kept, never overwritten (the
    result says ``kept``). A quarter that has not ended yet (in the estate's timezone) is refused: its
    evidence is still coming in. Goes through Airflow's ObjectStoragePath, so an ``s3://`` location works.
    """
    from zoneinfo import ZoneInfo

    from drdrill import evidence
    from drdrill.core import journal

    tz = ZoneInfo(estate.schedules.timezone)
    now = now or dt.datetime.now(tz)
    start, end = quarter_bounds(quarter)
    since, until = dt.datetime.combine(start, dt.time(), tz), dt.datetime.combine(end, dt.time(), tz)
    if until > now:
        raise ValueError(f"quarter {quarter} ends {end.isoformat()} ({estate.schedules.timezone}): it is not closed "
                         f"yet, so its report would miss evidence; report a closed quarter")
    out: dict[str, dict[str, str]] = {}
    ev = None
    for fmt in FORMATS:
        path = journal.storage(estate.journal.location, estate.journal.conn_id) / REPORTS_DIR / f"{quarter}.{fmt}"
        name = f"{estate.journal.location.rstrip('/')}/{REPORTS_DIR}/{quarter}.{fmt}"
        if path.exists():
            out[fmt] = {"path": name, "action": "kept"}
            continue
        if ev is None:
            ev = evidence.build(estate, now=now, since=since, until=until).to_dict()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as f:
            f.write(render(ev, fmt))
        out[fmt] = {"path": name, "action": "written"}
    return out
