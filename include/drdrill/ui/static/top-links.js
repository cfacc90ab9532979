// Links that open in the Airflow UI itself (target="_top": an Airflow run, the DR drills page).
// The Airflow UI shows plugin pages in a sandboxed iframe without allow-top-navigation, so such a
// link cannot navigate the top window; the frame is same-origin, so it asks the UI's router to go
// there instead (history.pushState + popstate, what a click inside the UI does). Opened on its own
// (no iframe), the page's links work as plain links.
"use strict";

function openInAirflow(href) {
  const url = new URL(href, location.href);
  if (window.top === window) { location.assign(url.href); return; }
  let top;
  try { top = window.top; void top.location.href; } catch (e) { location.assign(url.href); return; }  // not same-origin
  top.history.pushState({}, "", url.pathname + url.search + url.hash);
  top.dispatchEvent(new top.PopStateEvent("popstate", { state: {} }));
}

document.addEventListener("click", (ev) => {
  const a = ev.target instanceof Element ? ev.target.closest("a[target=_top]") : null;
  if (!a || window.top === window || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  ev.preventDefault();
  openInAirflow(a.getAttribute("href"));
});
