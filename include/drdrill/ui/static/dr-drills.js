// drdrill's DR drills page: reads api/evidence (drdrill.evidence's Evidence.to_dict(), with Airflow's runs
// that wrote no journal: drdrill.ui.history) and draws it.
// Every URL is relative (the page is served at <airflow>/dr-drills/ and may sit under a base_url
// sub-path); links to Airflow runs open at the top level (the page is shown in the UI's iframe).
"use strict";

const CHARTS = [
  ["rto_seconds", "RTO", "time from the fault to the database writable again"],
  ["rpo_seconds", "RPO", "data lost at the failover, in seconds of writes"],
  ["restore_seconds", "Restore time", "restore test: restore, replay, promote, checks"],
  ["recovery_seconds", "Chaos recovery time", "from the kill to the service healthy again"],
];
const PALETTE = ["#2563eb", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#db2777", "#65a30d", "#4f46e5"];

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const runHref = (href) => (href ? "../" + href : null);              // Airflow UI root = ../
const journalHref = (path) => "journal?path=" + encodeURIComponent(path);
const viewHref = (drill, runId) => "run?dag_id=" + encodeURIComponent(drill) + "&run_id=" + encodeURIComponent(runId);
const badge = (status) => el("span", { class: "badge " + String(status || "unknown").replace(/ /g, "_") }, status || "unknown");

function duration(v, unit) {
  if (v === null || v === undefined) return "—";
  if (unit && unit !== "s") return `${v} ${unit}`;
  if (Math.abs(v) < 120) return `${Number(v.toPrecision(3))} s`;
  if (Math.abs(v) < 7200) return `${Number((v / 60).toPrecision(3))} min`;
  if (Math.abs(v) < 172800) return `${Number((v / 3600).toPrecision(3))} h`;
  return `${Number((v / 86400).toPrecision(3))} d`;
}
const when = (iso) => (iso ? iso.replace("T", " ").replace(/(\.\d+)?(\+00:00|Z)$/, " UTC") : "—");
const minute = (iso) => (iso ? iso.slice(0, 16).replace("T", " ") : "—");
const day = (iso) => (iso ? iso.slice(0, 10) : "—");

function runLinks(summary, drill) {
  // A run: its status, when, and links to its Airflow run (top window) and its journal / evidence view.
  if (!summary) return el("span", { class: "muted" }, "never");
  return el("div", { class: "run" },
    el("div", {}, badge(summary.status), " ",
      el("a", { href: viewHref(drill, summary.run_id), title: `${summary.run_id}: the run's evidence` }, minute(summary.at))),
    el("div", { class: "small" },
      el("a", { href: runHref(summary.dag_run_href), target: "_top" }, "Airflow run"), " · ",
      el("a", { href: journalHref(summary.journal) }, "journal")));
}

// An Airflow run that wrote no journal: its state (a success without journal is not a passed drill).
const stateBadge = (state) => (state === "success" ? el("span", { class: "badge no_journal" }, "success, no journal") : badge(state));

function calendar(d, airflow) {
  const cal = el("div", { class: "cal " + (["daily", "weekly", "monthly", "quarterly"].includes(d.cadence) ? d.cadence : "monthly"),
                          "data-drill": d.drill, "data-cluster": d.cluster || "" });
  for (const w of d.windows || []) {
    const orphans = (w.no_journal_run_ids || []).map((id) => airflow.get(`${d.drill} ${id}`) || { run_id: id, state: "unknown" });
    const status = w.status === "no_journal" ? "ran, no journal" : w.status;
    const title = `${w.start} .. ${w.end}: ${status}` + (w.run_ids && w.run_ids.length ? ` (${w.run_ids.join(", ")})` : "")
      + (orphans.length ? `; Airflow run(s) without journal: ${orphans.map((r) => `${r.run_id} (${r.state})`).join(", ")}` : "");
    const label = d.cadence === "monthly" ? w.start.slice(5, 7) : d.cadence === "quarterly" ? w.start.slice(0, 7) : "";
    const attrs = { class: w.status, title, "data-status": w.status, "data-start": w.start };
    if (w.run_ids && w.run_ids.length) {
      const runId = w.run_ids[w.run_ids.length - 1];
      cal.append(el("a", { ...attrs, href: viewHref(d.drill, runId) }, label));
    } else if (orphans.length) {
      cal.append(el("a", { ...attrs, href: runHref(orphans[0].dag_run_href), target: "_top" }, label));
    } else {
      cal.append(el("span", attrs, label));
    }
  }
  if (!(d.windows || []).length) return el("span", { class: "muted" }, d.cadence === "manual" ? "run on demand (no window)" : "no windows: the estate does not schedule it here");
  return cal;
}

function noJournal(d, airflow) {
  // The drill's Airflow runs that wrote no journal (newest first): their state and a link to each.
  const ids = d.no_journal_run_ids || [];
  if (!ids.length) return null;
  const shown = ids.slice(0, 5).map((id) => airflow.get(`${d.drill} ${id}`)).filter(Boolean);
  return el("div", { class: "no-journal small", title: "Airflow ran these, but no journal was written: a killed " +
                     "worker, a run still going, or a run that failed before its last task" },
    `${ids.length} without journal`,
    shown.map((r) => el("div", { "data-run-id": r.run_id }, stateBadge(r.state), " ",
      el("a", { href: runHref(r.dag_run_href), target: "_top", title: r.run_id }, minute(r.run_after)))),
    ids.length > shown.length ? el("a", { href: runHref(`dags/${encodeURIComponent(d.drill)}/runs`), target: "_top" },
      `${ids.length - shown.length} more`) : null);
}

function drills(ev) {
  const body = document.querySelector("#drills tbody");
  body.replaceChildren();
  const airflow = new Map((ev.airflow_runs || []).map((r) => [`${r.drill} ${r.run_id}`, r]));
  for (const d of ev.drills || []) {
    body.append(el("tr", { "data-drill": d.drill },
      el("td", {}, el("code", {}, d.drill)), el("td", {}, d.cluster || "—"), el("td", {}, d.cadence),
      el("td", {}, runLinks(d.last, d.drill)), el("td", {}, runLinks(d.last_passed, d.drill)),
      el("td", { class: "num" }, d.runs, noJournal(d, airflow)), el("td", {}, calendar(d, airflow))));
  }
  if (!(ev.drills || []).length) body.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No drill has run in this period.")));
}

function chart(key, title, help, points) {
  const latest = points[points.length - 1];
  const card = el("div", { class: "chart", id: "chart-" + key, "data-points": points.length },
    el("div", { class: "head" }, el("h3", {}, title),
      el("span", { class: "latest" }, latest ? `latest ${duration(latest.value)} (target ${duration(latest.target)}) · ${points.length} run(s)` : "")),
    el("div", { class: "muted small" }, help));
  const plot = el("div", { class: "plot" });
  card.append(plot);
  if (!points.length) {
    plot.append(el("div", { class: "empty" }, "No run measured this yet."));
    return card;
  }
  // One series per drill/cluster, and one target line per drill/cluster (dashed); x = run time.
  const groups = new Map();
  for (const p of points) {
    const g = `${p.drill}${p.cluster ? " / " + p.cluster : ""}`;
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(p);
  }
  const xs = [...new Set(points.map((p) => Date.parse(p.at) / 1000))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const data = [xs];
  const series = [{}];
  const byIdx = [];  // series -> x index -> point
  let i = 0;
  for (const [g, ps] of groups) {
    const color = PALETTE[i++ % PALETTE.length];
    const vals = new Array(xs.length).fill(null), tgts = new Array(xs.length).fill(null), pts = new Array(xs.length).fill(null);
    for (const p of ps) {
      const k = index.get(Date.parse(p.at) / 1000);
      vals[k] = p.value; tgts[k] = p.target; pts[k] = p;
    }
    data.push(vals, tgts);
    byIdx.push(pts, pts);
    series.push({ label: g, stroke: color, width: 2, spanGaps: true, points: { size: 7, fill: color },
                  value: (u, v) => duration(v) },
                { label: `${g} target`, stroke: color, width: 1, dash: [6, 4], spanGaps: true,
                  points: { show: false }, value: (u, v) => duration(v) });
  }
  // The y scale: up to the targets when the figures are within a tenth of them, else fitted to the
  // figures (targets far above would flatten every trend); a button switches.
  const maxValue = Math.max(0, ...points.map((p) => p.value ?? 0));
  const maxTarget = Math.max(0, ...points.map((p) => p.target ?? 0));
  let toTargets = maxValue >= maxTarget / 10;
  const yMax = () => Math.max(toTargets ? Math.max(maxValue, maxTarget) : maxValue, 1e-3) * 1.15;
  const width = Math.max(360, (document.querySelector("#charts").clientWidth || 900) / 2 - 60);
  const u = new uPlot({
    width, height: 220, series, legend: { live: true },
    axes: [{}, { values: (u, vs) => vs.map((v) => duration(v)), size: 70 }],
    scales: { y: { range: () => [0, yMax()] } },
    cursor: { points: { size: 9 } },
  }, data, plot);
  if (maxTarget > maxValue) {
    const toggle = el("button", { type: "button", class: "scale" });
    const label = () => { toggle.textContent = toTargets ? "fit to the figures" : `show the targets (up to ${duration(maxTarget)})`; };
    toggle.addEventListener("click", () => { toTargets = !toTargets; label(); u.setScale("y", { min: 0, max: yMax() }); });
    label();
    card.querySelector(".head").append(toggle);
  }
  // A click on the chart opens the run under the cursor in the Airflow UI (top window).
  u.over.addEventListener("click", () => {
    const idx = u.cursor.idx;
    if (idx === null || idx === undefined) return;
    for (let s = 0; s < byIdx.length; s++) {
      const p = byIdx[s][idx];
      if (p && p.dag_run_href) { openInAirflow(runHref(p.dag_run_href)); return; }
    }
  });
  // Every point as a row: its value, its target, links to its Airflow run and its journal.
  const rows = points.slice().reverse().map((p) => el("tr", { "data-run-id": p.run_id },
    el("td", {}, when(p.at)), el("td", {}, el("code", {}, p.drill)), el("td", {}, p.cluster || "—"),
    el("td", { class: "num" }, duration(p.value)), el("td", { class: "num" }, duration(p.target)),
    el("td", {}, p.target !== null && p.target !== undefined ? badge(p.value <= p.target ? "met" : "breached") : "—"),
    el("td", {}, el("a", { href: runHref(p.dag_run_href), target: "_top" }, "Airflow run"), " · ",
      el("a", { href: journalHref(p.journal) }, "journal"))));
  card.append(el("details", {}, el("summary", {}, `${points.length} point(s): values, targets, links`),
    el("table", { class: "points" }, el("thead", {}, el("tr", {}, ["at", "drill", "cluster", "value", "target", "", "run"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows))));
  return card;
}

function charts(ev) {
  const box = document.querySelector("#charts");
  box.replaceChildren();
  for (const [key, title, help] of CHARTS) box.append(chart(key, title, help, (ev.trends || {})[key] || []));
}

function scorecard(ev) {
  const box = document.querySelector("#scorecard");
  box.replaceChildren();
  const cards = ev.scorecard || [];
  if (!cards.length) box.append(el("p", { class: "muted" }, "No daily verification journal with a scorecard in this period."));
  for (const c of cards) {
    box.append(el("div", { class: "scorecard", "data-cluster": c.cluster },
      el("h3", {}, `${c.cluster}: `, el("span", { class: "score" }, c.score), ` (target ${c.target}) `, badge(c.status)),
      el("p", { class: "meta small" }, "from the daily verification at ", when(c.at), " · ",
        el("a", { href: runHref(c.dag_run_href), target: "_top" }, "Airflow run"), " · ",
        el("a", { href: journalHref(c.journal) }, "journal")),
      el("div", { class: "card" }, (c.digits || []).map((d) => el("div", { class: "digit " + d.status },
        el("div", { class: "name" }, d.digit), el("div", { class: "big" }, d.value, el("span", { class: "muted small" }, ` / ${d.target}`)),
        badge(d.status), el("p", {}, d.evidence))))));
  }
}

function policy(ev) {
  const pol = ev.policy || {};
  const scores = pol.scores || {};
  const tiles = document.querySelector("#scores");
  tiles.replaceChildren(el("div", { class: "tile", id: "score-overall" }, el("div", { class: "label" }, "overall resilience score"),
    el("div", { class: "big" }, scores.overall ?? "—")));
  for (const [cluster, s] of Object.entries(scores.clusters || {})) {
    tiles.append(el("div", { class: "tile" }, el("div", { class: "label" }, `cluster ${cluster}`), el("div", { class: "big" }, s)));
  }
  const body = document.querySelector("#policy tbody");
  body.replaceChildren();
  for (const d of pol.disruptions || []) {
    const met = (ok) => (ok === null || ok === undefined ? "" : ok ? " ✓" : " ✗");
    body.append(el("tr", { "data-disruption": d.disruption },
      el("td", {}, d.disruption), el("td", {}, d.cluster || "—"), el("td", {}, el("code", {}, d.drill)),
      el("td", { class: "num" }, duration(d.rto_target_seconds)), el("td", { class: "num" }, duration(d.rto_measured_seconds) + met(d.rto_met)),
      el("td", { class: "num" }, duration(d.rpo_target_seconds)), el("td", { class: "num" }, duration(d.rpo_measured_seconds) + met(d.rpo_met)),
      el("td", {}, badge(d.status)),
      el("td", { class: "num" }, d.age_days === null || d.age_days === undefined ? "—" : `${Number(d.age_days.toFixed(1))} d`),
      el("td", {}, d.run_id ? [el("a", { href: runHref(d.dag_run_href), target: "_top" }, "Airflow run"), " · ",
        el("a", { href: journalHref(d.journal) }, "journal")] : el("span", { class: "muted" }, "no run"))));
  }
  document.querySelector("#formula").textContent = pol.formula ? "Score: " + pol.formula : "";
}

function summary(ev) {
  const runs = ev.runs || [];
  const failed = runs.filter((r) => r.status === "failed").length;
  const missed = (ev.drills || []).reduce((n, d) => n + (d.windows || []).filter((w) => w.status === "missed").length, 0);
  const tile = (label, value, id) => el("div", { class: "tile", id }, el("div", { class: "label" }, label), el("div", { class: "big" }, value));
  document.querySelector("#summary").replaceChildren(
    tile("drill runs", runs.length, "tile-runs"), tile("failed runs", failed, "tile-failed"),
    tile("missed windows", missed, "tile-missed"), tile("runs without journal", (ev.airflow_runs || []).length, "tile-no-journal"),
    tile("drills", (ev.drills || []).length, "tile-drills"));
  document.querySelector("#period").textContent =
    `Estate ${ev.estate} · ${day(ev.since)} to ${day(ev.until)} (${ev.timezone}) · evidence generated ${when(ev.generated_at)} ` +
    "from the drills' journals and Airflow's run history";
  const hist = ev.airflow_history || {};
  const note = document.querySelector("#history");
  note.hidden = !hist.error && !hist.truncated;
  note.textContent = hist.error ? `${hist.error}: runs that wrote no journal are not shown.`
    : hist.truncated ? `Airflow's run history: only the newest ${hist.limit} runs were read.` : "";
  const bad = ev.unreadable || [];
  const box = document.querySelector("#unreadable");
  box.hidden = !bad.length;
  box.replaceChildren(el("b", {}, `${bad.length} journal(s) could not be read:`),
    el("ul", {}, bad.map((u) => el("li", {}, el("code", {}, u.path), ": ", u.error))));
}

async function main() {
  try {
    const resp = await fetch("api/evidence", { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!resp.ok) throw new Error(`api/evidence answered ${resp.status}: ${await resp.text()}`);
    const ev = await resp.json();
    performance.mark("dr-drills:evidence");  // the JSON is in (bench/ui_page.py reads these marks)
    summary(ev); drills(ev); charts(ev); scorecard(ev); policy(ev);
    performance.mark("dr-drills:rendered");
    document.body.dataset.loaded = "true";
  } catch (e) {
    const box = document.querySelector("#error");
    box.hidden = false;
    box.textContent = "Cannot load the evidence: " + e.message;
    document.body.dataset.loaded = "error";
  }
}

main();
