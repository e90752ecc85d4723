// The console's own script: token handling, the decision at a clicked time, live updates over
// server-sent events, the kill switch. No framework; plotly.js is served from the installed package.
"use strict";
const TT = (() => {
  const KEY = "trimtab-console-token";
  // On a non-loopback bind, pages are opened with ?token=...: keep it for this tab's API calls
  // (sent as a header, never a cookie) and drop it from the address bar.
  const q = new URLSearchParams(location.search);
  if (q.get("token")) {
    sessionStorage.setItem(KEY, q.get("token"));
    q.delete("token");
    history.replaceState(null, "", location.pathname + (q.toString() ? "?" + q : ""));
  }
  const token = () => sessionStorage.getItem(KEY);
  const headers = (extra) => Object.assign(token() ? {"X-Trimtab-Token": token()} : {}, extra || {});
  const withToken = (url) => token() ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token()) : url;
  const el = (tag, attrs, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k == null ? "—" : String(k)));
    return e;
  };
  const fmt = (v, d) => typeof v === "number" ? v.toLocaleString("en-US", d == null ? {minimumFractionDigits: 2, maximumFractionDigits: 2}
    : {maximumFractionDigits: d}) : (v == null ? "—" : String(v));
  async function getJSON(url) {
    const r = await fetch(url, {headers: headers()});
    const body = await r.json().catch(() => ({detail: r.statusText}));
    if (!r.ok) throw new Error(body.detail || r.statusText);
    return body;
  }
  function table(cols, rows) {
    const t = el("table", {class: "grid"});
    t.append(el("thead", {}, el("tr", {}, ...cols.map(c => el("th", {}, c)))));
    const b = el("tbody");
    rows.forEach(r => b.append(el("tr", {}, ...r.map(v => el("td", {}, fmt(v, 6))))));
    t.append(b);
    return t;
  }
  function renderDecision(d) {
    const box = document.getElementById("decision");
    box.replaceChildren();
    box.dataset.tick = d.tick;
    box.append(el("p", {class: "decision-head"}, el("b", {}, d.time), " (tick " + d.tick + ", asked " + d.requested + "): state ",
      el("b", {id: "decision-state"}, d.state), d.trigger ? " — transition " + d.trigger + " from " + d.from : "",
      d.since ? " · since " + d.since.time + " (" + d.since.trigger + ")" : ""));
    const m = d.metrics || {};
    box.append(el("h3", {}, "Metrics the rules saw"), table(["metric", "value"], Object.keys(m).map(k => [k, m[k]])));
    const rows = [];
    (d.rules || []).forEach(r => (r.comparisons.length ? r.comparisons : [{}]).forEach(c =>
      rows.push([r.rule, r.result, c.left, c.observed, c.op, c.threshold, c.result])));
    box.append(el("h3", {}, "Rules"), table(["rule", "holds", "left", "observed", "op", "threshold", "result"], rows));
    if (d.transitions_tried) box.append(el("h3", {}, "Transitions tried"),
      table(["trigger", "to", "holds", "fired"], d.transitions_tried.map(t => [t.trigger, t.dest, t.holds, t.fired])));
    if (d.plan) box.append(el("h3", {}, "Plan in force: " + d.plan.plan_id + " (" + d.plan.status + ")"),
      table(["step", "venue", "operation", "description", "status"], d.plan.steps.map(s => [s.id, s.venue, s.operation, s.description, s.status])));
    if (d.reallocation) box.append(el("h3", {}, "Reallocation in force: " + d.reallocation.id + " (" + d.reallocation.status + ")"));
  }
  async function showDecision(run, at) {
    const box = document.getElementById("decision");
    box.replaceChildren(el("p", {}, "loading the decision at " + at + "…"));
    try {
      renderDecision(await getJSON("/api/runs/" + encodeURIComponent(run) + "/decision?at=" + encodeURIComponent(at)));
    } catch (e) {
      box.replaceChildren(el("p", {class: "error"}, "cannot explain " + at + ": " + e.message));
    }
  }
  // plotly.py writes numeric arrays as base64 typed arrays ({dtype, bdata}); Plotly.extendTraces
  // needs plain arrays, so the charts a live run extends are decoded first.
  const TYPED = {f8: Float64Array, f4: Float32Array, i4: Int32Array, u4: Uint32Array, i2: Int16Array, u2: Uint16Array, i1: Int8Array, u1: Uint8Array};
  function plain(v) {
    if (!v || typeof v !== "object" || !v.bdata || !TYPED[v.dtype] || v.shape) return v;
    const bin = atob(v.bdata), bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return Array.from(new TYPED[v.dtype](bytes.buffer));
  }
  function drawCharts(run) {
    document.querySelectorAll("script[id^='fig-']").forEach(s => {
      const key = s.id.slice(4), fig = JSON.parse(s.textContent), div = document.getElementById("chart-" + key);
      if (key === "equity") fig.data.forEach(t => { t.x = plain(t.x); t.y = plain(t.y); });
      Plotly.newPlot(div, fig.data, fig.layout, {displaylogo: false, responsive: true});
      div.on("plotly_click", ev => { if (ev.points && ev.points.length) showDecision(run, String(ev.points[0].x)); });
    });
  }
  function setStatus(st) {
    const s = document.getElementById("run-status");
    s.textContent = st.status;
    s.className = "status " + st.status;
    const facts = document.getElementById("facts");
    facts.dataset.alive = st.alive ? "true" : "false";
    if (!st.alive) {
      const a = document.getElementById("actions");
      if (a) a.querySelectorAll("button").forEach(b => b.disabled = true);
      if (st.stopped) {
        const r = document.getElementById("action-result");
        if (r) r.textContent = "stopped at tick " + st.stopped.tick + " (" + st.stopped.time + ")" + (st.stopped.flatten ? ", flattened" : "");
      }
    }
  }
  function follow(run) {
    const facts = document.getElementById("facts");
    if (facts.dataset.alive !== "true") return;
    const since = facts.dataset.tick === "None" ? -1 : facts.dataset.tick;
    const es = new EventSource(withToken("/api/runs/" + encodeURIComponent(run) + "/stream?since_tick=" + since));
    es.addEventListener("tick", ev => {
      const t = JSON.parse(ev.data);
      document.getElementById("last-tick").textContent = t.tick;
      document.getElementById("last-time").textContent = t.time;
      document.getElementById("last-state").textContent = t.state;
      document.getElementById("last-equity").textContent = fmt(t.equity);
      facts.dataset.tick = t.tick;
      const eq = document.getElementById("chart-equity");
      if (eq && typeof t.equity === "number") Plotly.extendTraces(eq, {x: [[t.time]], y: [[t.equity]]}, [0]);
    });
    es.addEventListener("status", ev => setStatus(JSON.parse(ev.data)));
    es.addEventListener("end", () => es.close());
  }
  function actions(run) {
    const form = document.getElementById("stop-form");
    if (!form) return;
    const out = document.getElementById("action-result");
    form.querySelectorAll("button").forEach(b => b.addEventListener("click", async () => {
      const flatten = b.dataset.flatten === "true";
      const tok = document.getElementById("stop-token").value || token() || "";
      const body = {confirm: document.getElementById("stop-confirm").value, flatten: flatten};
      out.className = "";
      out.textContent = "sending…";
      try {
        const r = await fetch("/api/runs/" + encodeURIComponent(run) + "/stop", {method: "POST",
          headers: {"Content-Type": "application/json", "X-Trimtab-Token": tok}, body: JSON.stringify(body)});
        const res = await r.json().catch(() => ({detail: r.statusText}));
        if (!r.ok) throw new Error(typeof res.detail === "string" ? res.detail : JSON.stringify(res.detail));
        out.textContent = res.requested + " requested (pid " + res.pid + "): " + res.note;
      } catch (e) {
        out.className = "error";
        out.textContent = "refused: " + e.message;
      }
    }));
  }
  function runPage(run) { drawCharts(run); follow(run); actions(run); }
  function watchRuns() {
    const live = () => document.querySelector("#runs tr[data-status='live']");
    const tick = async () => {
      if (!live()) return;
      try {
        for (const r of await getJSON("/api/runs")) {
          const tr = document.querySelector("#runs tr[data-run='" + CSS.escape(r.id) + "']");
          if (!tr) continue;
          tr.dataset.status = r.status;
          const s = tr.querySelector(".status");
          s.textContent = r.status;
          s.className = "status " + r.status;
          if (r.error !== undefined) continue;
          tr.querySelector(".state").textContent = r.state;
          const last = tr.querySelector(".last");
          last.textContent = r.last_time;
          last.dataset.tick = r.tick;
          tr.querySelector(".equity").textContent = fmt(r.equity);
          tr.querySelector(".apy").textContent = typeof r.apy === "number" ? (100 * r.apy).toFixed(2) + "%" : "—";
          const h = tr.querySelector(".health");
          h.textContent = r.health.level;
          h.className = "health " + r.health.level;
        }
      } catch (e) { /* the next poll tries again */ }
      setTimeout(tick, 3000);
    };
    setTimeout(tick, 3000);
  }
  return {runPage, watchRuns, showDecision};
})();
