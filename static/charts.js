// The job overview's two charts (uPlot): slots per hour/day stacked by state, and the
// duration trend. Data comes from <script type="application/json" id="chart-data">;
// colours from the CSS variables, so both themes work (rebuilt on a theme change).
// Text shown from the data (anomaly explanations) goes through textContent only.
(function () {
  "use strict";
  var holder = document.querySelector(".charts");
  var source = document.getElementById("chart-data");
  if (!holder || !source || !window.uPlot) return;
  var data = JSON.parse(source.textContent);
  var STACK = ["succeeded", "failed", "missed", "skipped", "killed"];
  var zone = localStorage.getItem("itinerary-zone") || "browser";
  var plots = [];

  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
  function width(el) { return Math.max(280, el.clientWidth || 280); }
  function tz(ts) { return zone === "browser" ? new Date(ts * 1000) : uPlot.tzDate(new Date(ts * 1000), zone); }
  function axes() {
    var fg = css("--fg"), grid = css("--border");
    return [{ stroke: fg, grid: { stroke: grid }, ticks: { stroke: grid } }, { stroke: fg, grid: { stroke: grid }, ticks: { stroke: grid } }];
  }
  function dur(v) {
    if (v === null || v === undefined) return "–";
    if (v < 60) return v.toFixed(1) + " s";
    if (v < 3600) return Math.floor(v / 60) + " m " + Math.round(v % 60) + " s";
    return Math.floor(v / 3600) + " h " + Math.floor((v % 3600) / 60) + " m";
  }

  function slots() {
    var el = document.getElementById("chart-slots");
    var b = data.buckets, n = b.t.length, acc = [], cum = [], i, k;
    for (i = 0; i < n; i++) acc.push(0);
    STACK.forEach(function (s) { acc = acc.map(function (v, j) { return v + b[s][j]; }); cum.push(acc.slice()); });
    var series = [{}], rows = [b.t];
    // Cumulative series, the total first: each later (lower) one paints over the previous.
    for (k = STACK.length - 1; k >= 0; k--) {
      (function (state) {
        var colour = css("--st-" + state);
        series.push({
          label: state, stroke: colour, fill: colour, width: 0, points: { show: false },
          paths: uPlot.paths.bars({ size: [0.8, 48] }),
          value: function (u, v, si, idx) { return idx === null || idx === undefined ? "–" : String(b[state][idx]); }
        });
      })(STACK[k]);
      rows.push(cum[k]);
    }
    var max = Math.max.apply(null, [1].concat(acc));
    var u = new uPlot({
      width: width(el), height: 220, series: series, tzDate: tz, axes: axes(),
      scales: { x: { time: true, range: [b.t[0] - (b.hourly ? 1800 : 43200), b.t[n - 1] + (b.hourly ? 1800 : 43200)] }, y: { range: [0, Math.ceil(max * 1.1)] } },
      cursor: { points: { show: false } }
    }, rows, el);
    u.over.addEventListener("click", function () {
      var idx = u.cursor.idx;
      if (idx === null || idx === undefined) return;
      var span = b.hourly ? 3600 : 86400;
      location.href = "/jobs/" + holder.getAttribute("data-job") + "/runs?from=" +
        encodeURIComponent(new Date(b.t[idx] * 1000).toISOString()) + "&to=" + encodeURIComponent(new Date((b.t[idx] + span) * 1000).toISOString());
    });
    u.over.style.cursor = "pointer";
    return u;
  }

  function trend() {
    var el = document.getElementById("chart-trend");
    var t = data.trend;
    if (!t.t.length) return null;
    var expected = parseFloat(holder.getAttribute("data-expected")), allowed = parseFloat(holder.getAttribute("data-allowed"));
    var failed = t.duration.map(function (v, i) { return t.failed[i] ? v : null; });
    var ringed = t.duration.map(function (v, i) { return t.anomaly[i] ? v : null; });
    var none = function () { return null; };
    var series = [{},
      { label: "duration", stroke: css("--st-succeeded"), paths: none, points: { show: true, size: 5, fill: css("--st-succeeded") }, value: function (u, v) { return dur(v); } },
      { label: "rolling p50", stroke: css("--accent"), width: 2, points: { show: false }, value: function (u, v) { return dur(v); } },
      { label: "failed", stroke: css("--st-failed"), paths: none, points: { show: true, size: 8, fill: css("--st-failed") }, value: function (u, v) { return dur(v); } },
      { label: "anomaly", stroke: css("--danger"), paths: none, points: { show: true, size: 14, width: 2, fill: "transparent" }, value: function (u, v) { return v === null ? "–" : dur(v); } }];
    var rows = [t.t, t.duration, t.p50, failed, ringed];
    if (!isNaN(expected)) { series.push({ label: "maxExpectedRunTime", stroke: css("--warn"), dash: [6, 4], points: { show: false }, value: function () { return dur(expected); } }); rows.push(t.t.map(function () { return expected; })); }
    if (!isNaN(allowed)) { series.push({ label: "maxAllowedRunTime", stroke: css("--danger"), dash: [6, 4], points: { show: false }, value: function () { return dur(allowed); } }); rows.push(t.t.map(function () { return allowed; })); }
    var note = document.getElementById("trend-note");
    if (!note) { note = document.createElement("p"); note.id = "trend-note"; note.className = "hint"; note.setAttribute("aria-live", "polite"); el.parentNode.insertBefore(note, el.nextSibling); }
    var u = new uPlot({
      width: width(el), height: 220, series: series, tzDate: tz, axes: axes(),
      scales: { x: { time: true, range: [data.from, data.to] }, y: { range: function (u, lo, hi) { return [0, Math.max(hi, expected || 0, allowed || 0) * 1.1 || 1]; } } },
      hooks: { setCursor: [function (u) {
        var idx = u.cursor.idx;
        note.textContent = idx !== null && idx !== undefined && t.anomaly[idx] ? "Anomaly: " + t.anomaly[idx] : "";
      }] }
    }, rows, el);
    u.over.addEventListener("click", function () {
      var idx = u.cursor.idx;
      if (idx !== null && idx !== undefined) location.href = "/runs/" + t.runId[idx];
    });
    return u;
  }

  function build() {
    plots.forEach(function (p) { if (p) p.destroy(); });
    plots = [slots(), trend()];
    holder.setAttribute("data-ready", "1");
  }
  document.addEventListener("DOMContentLoaded", function () {
    build();
    if (window.matchMedia) window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", build);
    document.addEventListener("click", function (e) { if (e.target.closest("[data-theme-toggle]")) setTimeout(build, 0); });
    var resizeTimer = null;
    window.addEventListener("resize", function () { clearTimeout(resizeTimer); resizeTimer = setTimeout(build, 200); });
  });
})();
