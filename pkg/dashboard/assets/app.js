// sluice mesh dashboard: a single-page app over /dashboard/api/*.
// Every refresh replaces the page's DOM (never appends), one timer and at
// most one request are alive at a time, so it can stay open for hours.
"use strict";
(function () {
  const API = "api/";
  const POLL_MS = 5000;
  const main = document.getElementById("main");
  const statusEl = document.getElementById("status");
  const windowSel = document.getElementById("window");
  let timer = null;
  let inflight = null;
  let generation = 0;

  function esc(v) {
    return String(v == null ? "" : v).replace(/[&<>"']/g, (c) =>
      ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }
  function num(v, digits) {
    if (v == null || isNaN(v)) return "–";
    return Number(v).toFixed(digits == null ? 2 : digits);
  }
  function pct(v) { return v == null ? "–" : (v * 100).toFixed(v > 0 && v < 0.01 ? 2 : 1) + "%"; }
  function ms(v) { return v == null ? "–" : (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + " ms"; }
  function bytes(v) {
    if (!v) return "0 B/s";
    const u = ["B/s", "KB/s", "MB/s", "GB/s"]; let i = 0;
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return v.toFixed(1) + " " + u[i];
  }
  function badge(cls, text) { return '<span class="badge ' + esc(String(cls).replace(/ /g, "_")) + '">' + esc(text || cls) + "</span>"; }

  // route parses location.hash: #/graph, #/service/<host>,
  // #/workload/<ns>/<name>, #/config, #/proxies, #/traces[/<service>],
  // #/trace/<id>[/<span id>].
  function route() {
    const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
    switch (parts[0]) {
      case "service": return { page: "service", host: parts.slice(1).join("/") };
      case "workload": return { page: "workload", ns: parts[1], name: parts.slice(2).join("/") };
      case "config": return { page: "config" };
      case "proxies": return { page: "proxies" };
      case "traces": return { page: "traces", service: parts.slice(1).join("/") };
      case "trace": return { page: "trace", id: parts[1] || "", span: parts[2] || "" };
      default: return { page: "graph" };
    }
  }
  function nodeHref(n) {
    if (n.kind === "service") return "#/service/" + encodeURIComponent(n.name);
    if (n.kind === "workload") return "#/workload/" + encodeURIComponent(n.namespace) + "/" + encodeURIComponent(n.name);
    return "#/graph";
  }

  function replace(html) {
    const tpl = document.createElement("template");
    tpl.innerHTML = html;
    main.replaceChildren(tpl.content);
  }
  function setStatus(env, err) {
    if (err) { statusEl.textContent = "error: " + err; statusEl.className = "status errors"; return; }
    let s = "";
    if (env && env.source) {
      s = "metrics: " + env.source + " · window " + env.window_seconds + "s · " + new Date(env.updated).toLocaleTimeString();
      if (env.errors && env.errors.length) s += " · " + env.errors.length + " problem(s): " + env.errors[0];
    } else {
      s = "updated " + new Date().toLocaleTimeString();
    }
    statusEl.textContent = s;
    statusEl.className = "status";
  }

  // ---- graph ----
  const R = 18;
  function shape(n) {
    if (n.kind === "service") {
      return '<polygon class="shape" points="' + [[n.x, n.y - R], [n.x + R, n.y + R * 0.8], [n.x - R, n.y + R * 0.8]].map((p) => p.join(",")).join(" ") + '"/>';
    }
    if (n.kind === "unknown") return '<rect class="shape" x="' + (n.x - R) + '" y="' + (n.y - R) + '" width="' + 2 * R + '" height="' + 2 * R + '"/>';
    return '<circle class="shape" cx="' + n.x + '" cy="' + n.y + '" r="' + R + '"/>';
  }
  function edgeLabel(e) {
    if (e.protocol === "tcp" && !e.rps) return bytes(e.tcp_bytes_per_second);
    let s = num(e.rps, 2) + " rps";
    if (e.error_ratio > 0) s += " · " + pct(e.error_ratio) + " err";
    if (e.p99_ms != null) s += " · p99 " + ms(e.p99_ms);
    return s;
  }
  function graphSVG(g) {
    const byId = {};
    g.nodes.forEach((n) => { byId[n.id] = n; });
    const w = Math.max(g.width, 400), h = Math.max(g.height + 40, 200);
    let out = '<svg class="graph" xmlns="http://www.w3.org/2000/svg" width="' + w + '" height="' + h + '" viewBox="0 0 ' + w + " " + h + '">';
    out += '<defs>' + ["healthy", "degraded", "failure", "idle"].map((c) =>
      '<marker id="arrow-' + c + '" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">' +
      '<path d="M 0 0 L 10 5 L 0 10 z" fill="var(--' + c + ')"/></marker>').join("") + "</defs>";
    g.edges.forEach((e) => {
      const a = byId[e.source], b = byId[e.target];
      if (!a || !b) return;
      const dx = b.x - a.x, dy = b.y - a.y, len = Math.hypot(dx, dy) || 1;
      const x1 = a.x + dx / len * R, y1 = a.y + dy / len * R, x2 = b.x - dx / len * (R + 2), y2 = b.y - dy / len * (R + 2);
      const bend = dx < 0 ? 40 : 0; // a call back to an earlier layer curves away
      const mx = (x1 + x2) / 2 - dy / len * bend, my = (y1 + y2) / 2 + dx / len * bend;
      // Labels sit 60% along, where edges fanning out of one node have
      // drifted apart.
      const lx = 0.16 * x1 + 0.48 * mx + 0.36 * x2, ly = 0.16 * y1 + 0.48 * my + 0.36 * y2;
      out += '<g class="edge ' + esc(e.health) + '" data-edge-id="' + esc(e.id) + '" data-health="' + esc(e.health) + '" data-mtls="' + esc(e.mtls) + '" data-rps="' + esc(e.rps) + '">' +
        '<path d="M ' + x1 + " " + y1 + " Q " + mx + " " + my + " " + x2 + " " + y2 + '" marker-end="url(#arrow-' + esc(e.health) + ')"/>' +
        '<text x="' + lx + '" y="' + (ly - 6) + '" text-anchor="middle">' + esc(edgeLabel(e)) + "</text>" +
        (e.mtls === "mutual_tls" || e.mtls === "partial" ? '<text class="lock" x="' + lx + '" y="' + (ly + 12) + '" text-anchor="middle">' + (e.mtls === "partial" ? "mTLS (partial)" : "mTLS") + "</text>" : "") +
        "<title>" + esc(e.source + " → " + e.target + "\n" + edgeLabel(e) + "\nmTLS: " + e.mtls) + "</title></g>";
    });
    g.nodes.forEach((n) => {
      out += '<a href="' + esc(nodeHref(n)) + '"><g class="node ' + esc(n.health) + '" data-node-id="' + esc(n.id) + '" data-kind="' + esc(n.kind) + '" data-health="' + esc(n.health) + '">' +
        shape(n) + '<text x="' + n.x + '" y="' + (n.y + R + 14) + '" text-anchor="middle">' + esc(n.kind === "service" ? n.name.split(".")[0] : n.name) + "</text>" +
        (n.namespace ? '<text x="' + n.x + '" y="' + (n.y + R + 26) + '" text-anchor="middle" fill="#6a6e73">' + esc(n.namespace) + "</text>" : "") +
        "<title>" + esc(n.kind + " " + n.name + "\n" + num(n.rps) + " rps, " + pct(n.error_ratio) + " 5xx, " + n.health) + "</title></g></a>";
    });
    return out + "</svg>";
  }
  function legend() {
    return '<div class="legend">' + [["healthy", "healthy"], ["degraded", "degraded (5xx > 0.1%, 4xx > 10%)"], ["failure", "failure (5xx > 10%, 4xx > 20%, no answer > 10%)"], ["idle", "no requests"]]
      .map((p) => '<span><i style="background:var(--' + p[0] + ')"></i>' + p[1] + "</span>").join("") +
      "<span>○ workload · △ service · □ unknown</span></div>";
  }
  function renderGraph(env) {
    const g = env.data;
    if (!g.nodes.length) {
      replace('<h1>Service graph</h1><p class="empty" id="graph-empty">No traffic in the last ' + esc(env.window_seconds) + "s.</p>");
      return;
    }
    replace('<h1>Service graph</h1>' + legend() + '<div class="graph-wrap" id="graph">' + graphSVG(g) + "</div>");
  }

  // ---- service and workload pages ----
  function cards(s, title) {
    return "<h2>" + esc(title) + '</h2><div class="card-row">' +
      [["requests/s", num(s.rps)], ["5xx", pct(s.error_ratio)], ["p50", ms(s.p50_ms)], ["p90", ms(s.p90_ms)], ["p99", ms(s.p99_ms)],
        ["TCP", bytes(s.tcp_bytes_per_second)], ["mTLS", s.mtls], ["health", badge(s.health)]]
        .map((c) => '<div class="card"><div class="k">' + c[0] + '</div><div class="v">' + (c[0] === "health" ? c[1] : esc(c[1])) + "</div></div>").join("") + "</div>";
  }
  function codes(s) {
    const list = Object.keys(s.codes || {}).sort();
    if (!list.length) return '<p class="empty">No requests.</p>';
    return '<table class="codes"><tr><th>response code</th><th>requests/s</th><th>share</th></tr>' +
      list.map((c) => "<tr><td>" + esc(c) + "</td><td>" + num(s.codes[c]) + "</td><td>" + pct(s.codes[c] / s.rps) + "</td></tr>").join("") + "</table>";
  }
  function neighbours(list, cls) {
    if (!list.length) return '<p class="empty">None.</p>';
    return '<table class="' + cls + '"><tr><th></th><th>name</th><th>requests/s</th><th>5xx</th><th>p99</th><th>mTLS</th></tr>' +
      list.map((n) => "<tr><td>" + badge(n.edge.health) + '</td><td><a href="' + esc(nodeHref(n)) + '">' + esc(n.kind + " " + (n.namespace && n.kind === "workload" ? n.namespace + "/" : "") + n.name) + "</a></td><td>" +
        num(n.edge.rps) + "</td><td>" + pct(n.edge.error_ratio) + "</td><td>" + ms(n.edge.p99_ms) + "</td><td>" + esc(n.edge.mtls) + "</td></tr>").join("") + "</table>";
  }
  function configRefs(list) {
    if (!list.length) return '<p class="empty">No VirtualService, DestinationRule or policy applies.</p>';
    return '<table class="config-refs"><tr><th>kind</th><th>resource</th><th>how it applies</th></tr>' +
      list.map((c) => "<tr><td>" + esc(c.kind) + "</td><td>" + esc(c.namespace + "/" + c.name) + "</td><td>" + esc(c.role) + "</td></tr>").join("") + "</table>";
  }
  function syncTable(rows) {
    if (!rows || !rows.length) return '<p class="empty">No connected proxy.</p>';
    return '<table class="proxies"><tr><th>name</th><th>id</th><th>type</th><th>CDS</th><th>LDS</th><th>EDS</th><th>RDS</th><th>version</th></tr>' +
      rows.map((r) => '<tr data-proxy="' + esc(r.id) + '"><td>' + esc(r.name) + "</td><td>" + esc(r.id) + "</td><td>" + esc(r.proxy_type) + "</td>" +
        r.types.map((t) => '<td title="' + esc(t.nack || t.sent_version || "") + '">' + badge(t.status.replace(" ", "_"), t.status) + "</td>").join("") +
        "<td>" + esc(r.version) + "</td></tr>").join("") + "</table>" +
      rows.flatMap((r) => r.types.filter((t) => t.nack).map((t) => '<p class="errors">' + esc(r.name + " " + t.type + " NACK: " + t.nack) + "</p>")).join("");
  }
  // history is the requests/s of the page shown, one point per refresh,
  // at most HISTORY points (10 min), reset when another page is shown.
  const HISTORY = 120;
  let history = { id: "", rps: [], err: [] };
  function record(d) {
    if (history.id !== d.id) history = { id: d.id, rps: [], err: [] };
    // A workload that receives nothing (a client) is charted by what it sends.
    const s = d.inbound.rps > 0 || d.kind === "service" ? d.inbound : d.outbound;
    history.dir = s === d.inbound ? "inbound" : "outbound";
    history.rps.push(s.rps || 0);
    history.err.push((s.error_ratio || 0) * (s.rps || 0));
    if (history.rps.length > HISTORY) { history.rps.shift(); history.err.shift(); }
  }
  function sparkline() {
    const w = 600, h = 80, n = history.rps.length;
    if (n < 2) return '<p class="empty">The chart fills in as the page refreshes.</p>';
    const top = Math.max(...history.rps, 0.001) * 1.2;
    // Newest at the right edge.
    const pts = (list) => list.map((v, i) => (w - (n - 1 - i) * w / (HISTORY - 1)).toFixed(1) + "," + (h - 2 - v / top * (h - 4)).toFixed(1)).join(" ");
    return '<svg class="spark" id="history" width="' + w + '" height="' + h + '" viewBox="0 0 ' + w + " " + h + '" data-points="' + n + '">' +
      '<polyline class="rps" points="' + pts(history.rps) + '"/><polyline class="err" points="' + pts(history.err) + '"/>' +
      '<text x="4" y="12">' + esc(num(top)) + " rps</text></svg>" +
      '<p class="legend"><span><i style="background:#1f6fb2"></i>' + esc(history.dir) + ' requests/s</span><span><i style="background:var(--failure)"></i>5xx/s</span><span>one point per refresh (' + POLL_MS / 1000 + " s), last " + HISTORY * POLL_MS / 60000 + " min while the page is open</span></p>";
  }
  function renderDetail(env) {
    const d = env.data;
    record(d);
    let html = '<p><a href="#/graph">← graph</a></p><h1 id="detail" data-kind="' + esc(d.kind) + '" data-health="' + esc(d.health) + '">' +
      esc(d.kind) + " " + esc(d.namespace && d.kind === "workload" ? d.namespace + "/" + d.name : d.name) + " " + badge(d.health) + "</h1>";
    html += cards(d.inbound, "Inbound traffic") + "<h2>Traffic</h2>" + sparkline() + "<h2>Response codes</h2>" + codes(d.inbound);
    if (d.kind === "workload") html += cards(d.outbound, "Outbound traffic");
    html += "<h2>Inbound neighbours</h2>" + neighbours(d.callers, "callers") + "<h2>Outbound neighbours</h2>" + neighbours(d.callees, "callees");
    html += "<h2>Config that applies</h2>" + configRefs(d.config);
    html += '<p><a id="recent-traces" href="' + esc(tracesHref(d)) + '">Recent traces of ' + esc(traceService(d)) + " →</a></p>";
    if (d.kind === "workload") {
      if (d.labels) html += "<h2>Labels</h2><p>" + Object.keys(d.labels).sort().map((k) => esc(k + "=" + d.labels[k])).join(", ") + "</p>";
      html += "<h2>Proxies</h2>" + syncTable(d.proxies);
    }
    replace(html);
  }

  // ---- config and proxies ----
  function renderConfig(body) {
    const list = body.entries;
    const count = {};
    list.forEach((e) => { count[e.status] = (count[e.status] || 0) + 1; });
    let html = "<h1>Config</h1><p>" + Object.keys(count).sort().map((k) => badge(k) + " " + count[k]).join(" &nbsp; ") + "</p>";
    html += '<table id="config"><tr><th>status</th><th>kind</th><th>resource</th><th>file</th><th>messages</th></tr>' +
      list.map((e) => '<tr data-status="' + esc(e.status) + '"><td>' + badge(e.status) + "</td><td>" + esc(e.kind) + "</td><td>" +
        esc((e.namespace ? e.namespace + "/" : "") + (e.name || "")) + "</td><td>" + esc(e.file) + '</td><td class="msg">' + esc(e.messages.join("\n")) + "</td></tr>").join("") + "</table>";
    replace(html);
  }
  function renderProxies(body) {
    replace("<h1>Proxies</h1>" + syncTable(body.proxies));
  }

  // ---- traces ----
  // traceService is the service name a page's spans carry: Istio's
  // service cluster, <app label>.<namespace> (docs/observability.md).
  function traceService(d) {
    if (d.kind === "service") return d.name.split(".").slice(0, 2).join(".");
    return ((d.labels && d.labels.app) || d.name) + "." + d.namespace;
  }
  function tracesHref(d) { return "#/traces/" + encodeURIComponent(traceService(d)); }
  function us(v) { return v == null ? "–" : v >= 1000 ? ms(v / 1000) : v + " µs"; }
  function renderTraces(r, body) {
    const opts = ['<option value="">all services</option>'].concat(body.services.map((s) =>
      '<option value="' + esc(s) + '"' + (s === r.service ? " selected" : "") + ">" + esc(s) + "</option>"));
    let html = "<h1>Traces</h1><p>service <select id=\"trace-service\">" + opts.join("") + "</select> " +
      '<span class="note">' + esc(body.stats.traces + " traces, " + body.stats.spans + " spans kept (at most " + body.stats.max_traces + " / " + body.stats.max_spans + "); Zipkin API at /api/v2/") + "</span></p>";
    if (!body.traces.length) {
      replace(html + '<p class="empty" id="traces-empty">No traces' + (r.service ? " of " + esc(r.service) : "") +
        " yet. Proxies report spans here when a zipkin provider's service is this control plane's HTTP address (docs/observability.md).</p>");
      return;
    }
    const top = Math.max(...body.traces.map((t) => t.duration_us), 1);
    html += '<table id="traces"><tr><th></th><th>root operation</th><th>services</th><th>spans</th><th>duration</th><th></th><th>started</th></tr>' +
      body.traces.map((t) => '<tr data-trace-id="' + esc(t.trace_id) + '" data-spans="' + esc(t.spans) + '" data-errors="' + esc(t.errors) + '"><td>' +
        (t.errors ? badge("failure", t.errors + " error" + (t.errors > 1 ? "s" : "")) : badge("healthy", "ok")) + '</td><td><a href="#/trace/' + esc(t.trace_id) + '">' +
        esc(t.root_service + ": " + t.root) + "</a></td><td>" + esc(t.services.join(", ")) + "</td><td>" + esc(t.spans) + "</td><td>" + esc(us(t.duration_us)) +
        '</td><td><div class="dbar"><i style="width:' + (t.duration_us / top * 100).toFixed(1) + '%"></i></div></td><td>' + esc(new Date(t.start).toLocaleTimeString()) + "</td></tr>").join("") + "</table>";
    replace(html);
  }
  function renderTrace(r, body) {
    const selectedSpan = r.span;
    const s = body.summary, total = Math.max(s.duration_us, 1);
    let html = '<p><a href="#/traces">← traces</a></p><h1 id="trace" data-trace-id="' + esc(s.trace_id) + '">Trace ' + esc(s.trace_id) + "</h1>" +
      "<p>" + esc(s.root_service + ": " + s.root) + " · " + esc(us(s.duration_us)) + " · " + esc(s.spans) + " spans · " + esc(s.services.join(", ")) +
      (s.errors ? " " + badge("failure", s.errors + " error(s)") : "") + "</p>";
    html += '<div id="waterfall" class="waterfall">' + body.spans.map((sp) => {
      const left = sp.offset_us / total * 100, width = Math.max(sp.duration_us / total * 100, 0.3);
      return '<a class="span-row' + (sp.id === selectedSpan ? " selected" : "") + (sp.error ? " error" : "") + '" data-span-id="' + esc(sp.id) + '" data-parent-id="' + esc(sp.parent_id || "") +
        '" data-depth="' + esc(sp.depth) + '" href="#/trace/' + esc(s.trace_id + "/" + sp.id) + '"><div class="span-label" style="padding-left:' + (sp.depth * 16 + 4) + 'px">' + esc(sp.service) + " <b>" + esc(sp.name) + "</b> " +
        '<span class="note">' + esc(sp.kind) + '</span></div><div class="span-track"><i style="left:' + left.toFixed(2) + "%;width:" + Math.min(width, 100 - left).toFixed(2) + '%"></i></div><span class="span-dur">' +
        esc(us(sp.duration_us)) + "</span></a>";
    }).join("") + "</div>";
    const sel = body.spans.find((sp) => sp.id === selectedSpan);
    if (sel) {
      html += '<h2>Span ' + esc(sel.service + " " + sel.name) + "</h2>" + '<table id="span-tags"><tr><th>tag</th><th>value</th></tr>' +
        Object.keys(sel.tags).sort().map((k) => "<tr><td>" + esc(k) + "</td><td>" + esc(sel.tags[k]) + "</td></tr>").join("") + "</table>";
    } else {
      html += '<p class="empty">Click a span for its tags.</p>';
    }
    replace(html);
  }
  // One listener for the service filter (the DOM under main is replaced;
  // it stays).
  main.addEventListener("change", (ev) => {
    if (ev.target.id === "trace-service") location.hash = "#/traces/" + encodeURIComponent(ev.target.value);
  });

  // ---- polling ----
  function apiURL(r) {
    const w = "window=" + encodeURIComponent(windowSel.value);
    switch (r.page) {
      case "service": return API + "service?host=" + encodeURIComponent(r.host) + "&" + w;
      case "workload": return API + "workload?namespace=" + encodeURIComponent(r.ns) + "&name=" + encodeURIComponent(r.name) + "&" + w;
      case "config": return API + "config";
      case "proxies": return API + "proxies";
      case "traces": return API + "traces?service=" + encodeURIComponent(r.service || "");
      case "trace": return API + "trace?id=" + encodeURIComponent(r.id);
      default: return API + "graph?" + w;
    }
  }
  function render(r, body) {
    switch (r.page) {
      case "service": case "workload": renderDetail(body); setStatus(body); break;
      case "config": renderConfig(body); setStatus(null); break;
      case "proxies": renderProxies(body); setStatus(null); break;
      case "traces": renderTraces(r, body); setStatus(null); break;
      case "trace": renderTrace(r, body); setStatus(null); break;
      default: renderGraph(body); setStatus(body);
    }
    document.body.dataset.page = r.page;
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
    // Chromium's live JS heap (with --enable-precise-memory-info, after a
    // full GC when --js-flags=--expose-gc exposes one), for the browser
    // test's leak check.
    if (typeof window.gc === "function") window.gc();
    if (performance.memory) document.body.dataset.heap = String(performance.memory.usedJSHeapSize);
  }
  function refresh() {
    clearTimeout(timer);
    if (inflight) inflight.abort();
    const gen = ++generation;
    const r = route();
    document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.route === (r.page === "trace" ? "traces" : r.page)));
    const ctl = new AbortController();
    inflight = ctl;
    fetch(apiURL(r), { signal: ctl.signal, cache: "no-store" })
      .then((resp) => resp.json().then((body) => {
        if (!resp.ok) throw new Error(body.error || resp.statusText);
        return body;
      }))
      .then((body) => { if (gen === generation) render(r, body); })
      .catch((err) => { if (gen === generation && err.name !== "AbortError") setStatus(null, err.message); })
      .finally(() => {
        if (gen !== generation) return;
        inflight = null;
        timer = setTimeout(refresh, POLL_MS);
      });
  }
  window.addEventListener("hashchange", refresh);
  windowSel.addEventListener("change", refresh);
  refresh();
})();
