// The job overview's two charts (uPlot): slots per hour/day stacked by state, and the
// duration trend. Data comes from <script type="application/json" id="chart-data"> (the
// job's zone), then from /jobs/{id}/charts.json in the display zone, so a bar is a day
// of the viewer's calendar; reloaded every 60 s while the tab is visible, on Refresh and
// on a zone change. Colours from the CSS variables, so both themes work (rebuilt on a
// theme change). The trend has a log scale (kept in localStorage) for durations from
// seconds to hours. Text from the data (anomaly explanations) goes through textContent.
(function () {
  "use strict";
  var holder = document.querySelector(".charts");
  var source = document.getElementById("chart-data");
  if (!holder || !source || !window.uPlot) return;
  var data = JSON.parse(source.textContent);
  var STACK = ["succeeded", "failed", "missed", "skipped", "killed"];
  var logBox = document.getElementById("trend-log");
  var RELOAD_MS = 60000, loadedAt = Date.now(), plots = [];

  function displayZone() {
    var z = localStorage.getItem("itinerary-zone") || "browser";
    return z === "browser" ? Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC" : z;
  }
  function reload() {
    var url = "/jobs/" + holder.getAttribute("data-job") + "/charts.json?window=" +
      encodeURIComponent(holder.getAttribute("data-window")) + "&zone=" + encodeURIComponent(displayZone());
    loadedAt = Date.now();
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (fresh) {
        data = fresh;
        document.querySelectorAll("[data-chart-zone]").forEach(function (el) { el.textContent = data.zone; });
        build();
      }, function () { /* keep the charts drawn; the next reload tries again */ });
  }

  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
  function width(el) { return Math.max(280, el.clientWidth || 280); }
  function tz(ts) {
    var zone = localStorage.getItem("itinerary-zone") || "browser";
    return zone === "browser" ? new Date(ts * 1000) : uPlot.tzDate(new Date(ts * 1000), zone);
  }
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

  var LOG_TICKS = [0.01, 0.1, 1, 10, 60, 600, 3600, 36000, 360000];
  function short(v) {
    if (v < 1) return (Math.round(v * 100) / 100) + " s";
    if (v < 60) return (Math.round(v * 10) / 10) + " s";
    if (v < 3600) return (Math.round(v / 6) / 10) + " m";
    return (Math.round(v / 360) / 10) + " h";
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
      var end = idx + 1 < n ? b.t[idx + 1] : data.to;  // a DST day is 23 or 25 hours
      location.href = "/jobs/" + holder.getAttribute("data-job") + "/runs?from=" +
        encodeURIComponent(new Date(b.t[idx] * 1000).toISOString()) + "&to=" + encodeURIComponent(new Date(end * 1000).toISOString());
    });
    u.over.style.cursor = "pointer";
    return u;
  }

  // Failed runs as × (shape as well as colour), drawn over the plot after each redraw.
  function crosses(u) {
    var px = uPlot.pxRatio || 1, xs = u.data[0], ys = u.data[3], ctx = u.ctx, r = 4 * px, i, n = 0;
    if (!u.series[3].show) return;
    ctx.save();
    ctx.strokeStyle = css("--st-failed");
    ctx.lineWidth = 2 * px;
    ctx.beginPath();
    for (i = 0; i < xs.length; i++) {
      if (ys[i] === null || ys[i] === undefined) continue;
      var cx = u.valToPos(xs[i], "x", true), cy = u.valToPos(ys[i], "y", true);
      ctx.moveTo(cx - r, cy - r); ctx.lineTo(cx + r, cy + r);
      ctx.moveTo(cx - r, cy + r); ctx.lineTo(cx + r, cy - r);
      n++;
    }
    ctx.stroke();
    ctx.restore();
    holder.setAttribute("data-failed-marks", String(n));
  }

  function trend() {
    var el = document.getElementById("chart-trend");
    var t = data.trend;
    if (!t.t.length) return null;
    var expected = parseFloat(holder.getAttribute("data-expected")), allowed = parseFloat(holder.getAttribute("data-allowed"));
    var log = !!(logBox && logBox.checked);
    // A log axis has no 0: durations under 10 ms are drawn at 10 ms there.
    var shown = log ? t.duration.map(function (v) { return Math.max(v, 0.01); }) : t.duration;
    var p50 = log ? t.p50.map(function (v) { return Math.max(v, 0.01); }) : t.p50;
    var failed = shown.map(function (v, i) { return t.failed[i] ? v : null; });
    var ringed = shown.map(function (v, i) { return t.anomaly[i] ? v : null; });
    var none = function () { return null; };
    var series = [{},
      { label: "duration", stroke: css("--st-succeeded"), paths: none, points: { show: true, size: 5, fill: css("--st-succeeded") }, value: function (u, v) { return dur(v); } },
      { label: "rolling p50", stroke: css("--accent"), width: 2, points: { show: false }, value: function (u, v) { return dur(v); } },
      { label: "failed (×)", stroke: css("--st-failed"), paths: none, points: { show: false }, value: function (u, v) { return v === null ? "–" : dur(v); } },
      { label: "anomaly", stroke: css("--danger"), paths: none, points: { show: true, size: 14, width: 2, fill: "transparent" }, value: function (u, v) { return v === null ? "–" : dur(v); } }];
    var rows = [t.t, shown, p50, failed, ringed];
    if (!isNaN(expected)) { series.push({ label: "maxExpectedRunTime", stroke: css("--warn"), dash: [6, 4], points: { show: false }, value: function () { return dur(expected); } }); rows.push(t.t.map(function () { return expected; })); }
    if (!isNaN(allowed)) { series.push({ label: "maxAllowedRunTime", stroke: css("--danger"), dash: [6, 4], points: { show: false }, value: function () { return dur(allowed); } }); rows.push(t.t.map(function () { return allowed; })); }
    var note = document.getElementById("trend-note");
    if (!note) { note = document.createElement("p"); note.id = "trend-note"; note.className = "hint"; note.setAttribute("aria-live", "polite"); el.parentNode.insertBefore(note, el.nextSibling); }
    var ax = axes();
    ax[1].size = 64;
    ax[1].values = function (u, splits) { return splits.map(function (v) { return v === null ? "" : short(v); }); };
    ax[1].filter = function (u, splits) { return splits; };  // uPlot's log filter keeps powers of 10
    // Log axis: lines at 1 s, 10 s, 1 m, 10 m, 1 h, 10 h only (uPlot would add 2..9 of each decade).
    // Linear axis: steps of whole seconds, minutes and hours, not of 10^n seconds.
    if (!log) ax[1].incrs = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
    if (log) ax[1].splits = function (u) { return LOG_TICKS.filter(function (v) { return v >= u.scales.y.min && v <= u.scales.y.max; }); };
    var u = new uPlot({
      width: width(el), height: 220, series: series, tzDate: tz, axes: ax,
      scales: { x: { time: true, range: [data.from, data.to] }, y: log ?
        { distr: 3, log: 10, range: function (u, lo, hi) { return [Math.max(0.01, Math.min(lo, expected || lo)) / 2, Math.max(hi, expected || 0, allowed || 0) * 2]; } } :
        { range: function (u, lo, hi) { return [0, Math.max(hi, expected || 0, allowed || 0) * 1.1 || 1]; } } },
      hooks: { draw: [crosses], setCursor: [function (u) {
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
    holder.setAttribute("data-zone", data.zone);
    holder.setAttribute("data-log", logBox && logBox.checked ? "1" : "0");
  }
  document.addEventListener("DOMContentLoaded", function () {
    if (logBox) {
      logBox.checked = localStorage.getItem("itinerary-trend-log") === "1";
      logBox.addEventListener("change", function () {
        localStorage.setItem("itinerary-trend-log", logBox.checked ? "1" : "0");
        build();
      });
    }
    build();
    if (displayZone() !== data.zone) reload();
    var refresh = document.getElementById("charts-refresh");
    if (refresh) refresh.addEventListener("click", reload);
    var select = document.querySelector("[data-zone-select]");
    if (select) select.addEventListener("change", function () { setTimeout(reload, 0); });
    setInterval(function () {
      if (document.visibilityState === "visible" && Date.now() - loadedAt >= RELOAD_MS) reload();
    }, 5000);
    if (window.matchMedia) window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", build);
    document.addEventListener("click", function (e) { if (e.target.closest("[data-theme-toggle]")) setTimeout(build, 0); });
    var resizeTimer = null;
    window.addEventListener("resize", function () { clearTimeout(resizeTimer); resizeTimer = setTimeout(build, 200); });
  });
})();
