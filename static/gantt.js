// The run-history Gantt (/history): an ECharts canvas custom series fed by /history/data.json.
// vis-timeline needed 20-37 s for 5,000 DOM bars (README); a canvas draws them in one frame.
// Canvas has no classes, so colours come from the CSS custom properties (re-read when the
// theme changes); the tooltip is our own element filled through textContent, never HTML.
(function () {
  "use strict";
  var el = document.getElementById("gantt");
  if (!el || !window.echarts) return;
  var form = document.getElementById("history-filters");
  var tip = document.getElementById("gantt-tip");
  var follow = document.getElementById("gantt-follow");
  var said = document.getElementById("gantt-said");
  var zone = localStorage.getItem("itinerary-zone") || "browser";
  var SCHEDULED = ["schedule", "catchup"], LATE_MS = 5000, ROW_PX = 26, MAX_ROWS_SHOWN = 24;
  var MIN_SPAN = 10000, MAX_SPAN = 90 * 86400000;
  var st = { query: el.getAttribute("data-query") || "", runs: {}, jobs: {}, cursor: null, loaded: null,
             view: null, itemRuns: [], rows: [], rowJob: [], selected: null };
  var chart, colours = {}, drawn = {}, fetchTimer = null, fetching = false;

  // Narrow screens get the table (the accessible alternative) unless a view was asked for.
  if (window.innerWidth < 700 && !/(^|&)view=/.test(location.search.slice(1))) {
    location.replace("/history?" + (st.query ? st.query + "&" : "") + "view=table");
    return;
  }

  function fmt(ms, parts) {
    if (ms === null || ms === undefined) return "–";
    var opts = parts || { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short" };
    opts.hourCycle = "h23";
    if (zone !== "browser") opts.timeZone = zone;
    return new Intl.DateTimeFormat(undefined, opts).format(new Date(ms));
  }
  function axisLabel(ms) {
    var span = st.view ? st.view[1] - st.view[0] : 86400000;
    if (span <= 600000) return fmt(ms, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    if (span <= 2 * 86400000) return fmt(ms, { hour: "2-digit", minute: "2-digit" });
    return fmt(ms, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }
  function span(seconds) {
    var s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " m " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " m";
  }

  // --- colours from the theme's custom properties; failed bars get a 45° hatch pattern.
  function readColours() {
    var css = getComputedStyle(document.documentElement);
    ["succeeded", "failed", "running", "waiting", "killed", "skipped", "missed", "lost"].forEach(function (s) {
      colours[s] = css.getPropertyValue("--st-" + s).trim();
    });
    ["bg", "fg", "muted", "border", "warn", "danger", "focus"].forEach(function (n) { colours[n] = css.getPropertyValue("--" + n).trim(); });
    colours.font = getComputedStyle(document.body).fontFamily;
    colours.starting = colours.running; colours.scheduled = colours.waiting;
    var c = document.createElement("canvas"), g = c.getContext("2d");
    c.width = c.height = 6;
    g.fillStyle = colours.failed; g.fillRect(0, 0, 6, 6);
    g.strokeStyle = colours.bg; g.lineWidth = 1.5; g.beginPath();
    g.moveTo(-1, 7); g.lineTo(7, -1); g.moveTo(2, 8); g.lineTo(8, 2); g.stroke();
    colours.hatch = { image: c, repeat: "repeat" };
  }

  // --- rows: one per job (sorted by name), more when runs of one job overlap (greedy lanes).
  function layout(now) {
    var byJob = {}, rows = [], rowJob = [], order = [];
    Object.keys(st.runs).forEach(function (id) { var r = st.runs[id]; (byJob[r.job] = byJob[r.job] || []).push(r); });
    var jobs = Object.keys(byJob).sort(function (a, b) { return st.jobs[a] < st.jobs[b] ? -1 : st.jobs[a] > st.jobs[b] ? 1 : a - b; });
    jobs.forEach(function (job) {
      var lanes = [], base = rows.length;
      byJob[job].forEach(function (r) {
        r.x1 = r.start !== null ? r.start : r.sched;
        r.x2 = r.start === null ? r.sched : r.end !== null ? r.end : Math.max(now, r.start + 1000);
      });
      byJob[job].sort(function (a, b) { return a.x1 - b.x1 || a.x2 - b.x2; });
      byJob[job].forEach(function (r) {
        var lane = 0;
        if (r.start !== null) {  // missed and skipped points stay on the job's first row
          while (lane < lanes.length && lanes[lane] > r.x1) lane++;
          lanes[lane] = r.end !== null ? r.x2 : Infinity;
        }
        r.row = base + lane;
        order.push(r);
      });
      for (var i = 0; i < Math.max(1, lanes.length); i++) { rows.push(job + ":" + i); rowJob.push(i === 0 ? job : null); }
    });
    st.rows = rows; st.rowJob = rowJob; st.itemRuns = order;
    return order.map(function (r, i) { return [r.row, r.x1, r.x2, i]; });
  }

  // --- drawing one item: bars start→end, points for runs that never started, late ticks.
  function renderItem(params, api) {
    var run = st.itemRuns[api.value(3)];
    var a = api.coord([api.value(1), api.value(0)]), b = api.coord([api.value(2), api.value(0)]);
    var band = api.size([0, 1])[1], h = Math.max(6, Math.min(14, band * 0.55)), y = a[1] - h / 2;
    var colour = colours[run.state] || colours.lost, kids = [], sel = st.selected === run.id;
    drawn[run.id] = { id: run.id, state: run.state, colour: colour, kind: run.start === null ? "point" : "bar",
                      row: run.row, x: (a[0] + b[0]) / 2, y: a[1] };
    if (run.start === null) {
      var dashed = run.state === "skipped";
      kids.push({ type: "circle", shape: { cx: a[0], cy: a[1], r: h / 2 },
                  style: { fill: colours.bg, stroke: colour, lineWidth: 2, lineDash: dashed ? [2, 2] : null } });
    } else {
      var w = Math.max(3, b[0] - a[0]), hollow = ["waiting", "scheduled", "starting"].indexOf(run.state) >= 0;
      kids.push({ type: "rect", shape: { x: a[0], y: y, width: w, height: h, r: 2 },
                  style: { fill: run.state === "failed" ? colours.hatch : hollow ? colours.bg : colour,
                           stroke: run.flags & 1 ? colours.warn : hollow || run.state === "failed" ? colour : null,
                           lineWidth: 2 } });
      if (run.end === null) kids.push({ type: "line", shape: { x1: a[0] + w, y1: y - 2, x2: a[0] + w, y2: y + h + 2 },
                                        style: { stroke: colours.bg, lineWidth: 2, lineDash: [2, 2] } });
      if (run.state === "lost" && w > 10) kids.push({ type: "text", style: { text: "?", x: a[0] + w / 2, y: a[1], fill: colours.bg,
                                                      align: "center", verticalAlign: "middle", fontSize: 10 } });
      if (run.flags & 2) kids.push({ type: "rect", shape: { x: a[0] - 4, y: y - 4, width: w + 8, height: h + 8, r: h / 2 + 4 },
                                     style: { fill: null, stroke: colours.danger, lineWidth: 2 } });
      if (SCHEDULED.indexOf(run.trigger) >= 0 && run.start - run.sched > LATE_MS) {
        var t = api.coord([run.sched, api.value(0)])[0];
        kids.push({ type: "line", shape: { x1: t, y1: y - 2, x2: t, y2: y + h + 2 }, style: { stroke: colours.muted, lineWidth: 2 } });
      }
    }
    if (sel) kids.push({ type: "rect", shape: { x: a[0] - 3, y: y - 3, width: Math.max(3, b[0] - a[0]) + 6, height: h + 6 },
                         style: { fill: null, stroke: colours.focus, lineWidth: 2 } });
    return kids.length === 1 ? kids[0] : { type: "group", children: kids };  // most are one rect
  }

  // --- the chart's options: axes in the display zone, zoom and pan by dataZoom (inside + sliders).
  function options(items, reset) {
    var many = st.rows.length > MAX_ROWS_SHOWN, now = Date.now(), left = Math.round(Math.min(180, el.clientWidth * 0.3));
    var o = {
      animation: false, useUTC: zone !== "browser", tooltip: { show: false }, textStyle: { fontFamily: colours.font },
      grid: { left: left, right: many ? 40 : 16, top: 28, bottom: 56 },
      xAxis: { type: "time", position: "top", min: st.extent[0], max: st.extent[1],
               axisLabel: { formatter: axisLabel, color: colours.fg, hideOverlap: true },
               axisLine: { lineStyle: { color: colours.border } }, splitLine: { show: true, lineStyle: { color: colours.border } } },
      yAxis: { type: "category", inverse: true, data: st.rows, triggerEvent: true, axisTick: { show: false },
               axisLine: { lineStyle: { color: colours.border } },
               axisLabel: { interval: 0, width: left - 16, overflow: "truncate", ellipsis: "…", color: colours.fg,
                            formatter: function (v, i) { return st.rowJob[i] !== null ? st.jobs[st.rowJob[i]] : ""; } },
               splitLine: { show: true, interval: function (i) { return st.rowJob[i + 1] !== null; }, lineStyle: { color: colours.border } } },
      dataZoom: [
        { id: "x", type: "inside", xAxisIndex: 0, filterMode: "weakFilter", minValueSpan: MIN_SPAN, maxValueSpan: MAX_SPAN,
          zoomOnMouseWheel: true, moveOnMouseMove: true, moveOnMouseWheel: false },
        { id: "xs", type: "slider", xAxisIndex: 0, filterMode: "weakFilter", bottom: 8, height: 22, minValueSpan: MIN_SPAN, showDataShadow: false,
          maxValueSpan: MAX_SPAN, labelFormatter: function (v) { return axisLabel(v); }, textStyle: { color: colours.fg },
          borderColor: colours.border, dataBackground: { lineStyle: { color: colours.muted }, areaStyle: { color: colours.border } } },
        { id: "y", type: "slider", yAxisIndex: 0, show: many, right: 8, width: 16, showDetail: false, filterMode: "empty",
          zoomLock: true, borderColor: colours.border },
        { id: "yi", type: "inside", yAxisIndex: 0, disabled: !many, zoomOnMouseWheel: false, moveOnMouseMove: false,
          moveOnMouseWheel: "shift", filterMode: "empty" }
      ],
      series: [{ id: "runs", type: "custom", renderItem: renderItem, encode: { x: [1, 2], y: 0 }, data: items, clip: true,
                 progressive: 0, markLine: { silent: true, symbol: ["none", "none"], label: { show: false }, animation: false,
                 lineStyle: { color: colours.danger, type: "solid", width: 2 }, data: [{ xAxis: now }] } }]
    };
    if (reset) {
      o.dataZoom[0].startValue = o.dataZoom[1].startValue = st.loaded.from;
      o.dataZoom[0].endValue = o.dataZoom[1].endValue = st.loaded.to + headroom();
      o.dataZoom[2].startValue = o.dataZoom[3].startValue = 0;
      o.dataZoom[2].endValue = o.dataZoom[3].endValue = MAX_ROWS_SHOWN - 1;
    }
    return o;
  }
  function redraw(reset) {
    var items = layout(Date.now()), height = Math.min(st.rows.length, MAX_ROWS_SHOWN) * ROW_PX + 90;
    drawn = {};
    if (el.offsetHeight !== Math.max(height, 150)) { el.style.height = Math.max(height, 150) + "px"; chart.resize(); }
    chart.setOption(options(items, reset));
  }
  function whenDrawn() {
    return new Promise(function (resolve) {
      function done() { chart.off("finished", done); resolve(); }
      chart.on("finished", done);
    });
  }

  // --- the visible window; leaving the loaded one fetches it (debounced) and updates the URL.
  function headroom() {  // a relative range shows a little past now, so the now line stays in sight
    return st.loaded.relative ? (st.loaded.to - st.loaded.from) * 0.03 : 0;
  }
  function extentFor(a, b) { var w = b - a; return [a - w, Math.max(b, st.loaded && st.loaded.relative ? Date.now() : b) + w]; }
  function currentView() {
    var axis = chart.getModel().getComponent("xAxis", 0).axis;
    return axis.scale.getExtent().slice();
  }
  function setView(a, b) {
    var w = Math.min(MAX_SPAN, Math.max(MIN_SPAN, b - a)), mid = (a + b) / 2;
    a = mid - w / 2; b = mid + w / 2;
    if (a < st.extent[0] || b > st.extent[1]) {
      st.extent = extentFor(a, b);
      chart.setOption({ xAxis: { min: st.extent[0], max: st.extent[1] } });
    }
    chart.dispatchAction({ type: "dataZoom", dataZoomIndex: 0, startValue: a, endValue: b });
  }
  function viewChanged() {
    if (!st.loaded) return;
    var v = st.view = currentView(), slack = (v[1] - v[0]) * 0.01 + 1000;
    var hi = st.loaded.relative ? Math.max(st.loaded.to, Date.now()) + 2 * headroom() : st.loaded.to;
    if (follow && !st.following) follow.checked = st.loaded.relative && v[1] >= Date.now() - slack;
    describe();
    if (v[0] >= st.loaded.from - slack && v[1] <= hi + slack) return;
    clearTimeout(fetchTimer);
    fetchTimer = setTimeout(function () {
      var params = new URLSearchParams(st.query), w = st.view;
      ["range", "from", "to", "tzo"].forEach(function (k) { params.delete(k); });
      params.set("from", new Date(w[0]).toISOString());
      params.set("to", new Date(w[1]).toISOString());
      var query = params.toString();
      load(query, "", false).then(function (err) {
        if (err) return;
        st.query = query;
        history.replaceState({ query: query }, "", "/history?" + query);
      });
    }, 300);
  }

  // --- loading and merging the compact arrays: [id, job, sched, start, end, state, trigger, attempt, flags, reason]
  function ingest(data) {
    data.jobIds.forEach(function (id, i) { st.jobs[id] = data.jobs[i]; });
    data.runs.forEach(function (r) {
      st.runs[r[0]] = { id: r[0], job: data.jobIds[r[1]], sched: r[2], start: r[3], end: r[4], state: data.states[r[5]] || "lost",
                        trigger: data.triggers[r[6]] || "", attempt: r[7], flags: r[8], reason: r[9] };
    });
  }
  function load(query, extra, merge) {
    var url = "/history/data.json?" + query + (extra ? (query ? "&" : "") + extra : "");
    fetching = true;
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (resp) {
      return resp.json().then(function (body) { return { ok: resp.ok, body: body }; });
    }).then(function (res) {
      fetching = false;
      if (!res.ok) return res.body;
      var data = res.body;
      if (!merge) { st.runs = {}; st.selected = null; st.loaded = { from: data.from, to: data.to, relative: data.relative }; }
      if (!merge) st.extent = extentFor(data.from, data.to);
      ingest(data);
      st.cursor = data.cursor !== null ? data.cursor : st.cursor;
      redraw(!merge);
      summary(data, merge);
      return null;
    }, function () { fetching = false; return { error: { message: "network error", fields: {} } }; });
  }

  // --- summary line, cap banner, empty note and the chart's aria-label.
  function counts() {
    var c = { total: 0 };
    Object.keys(st.runs).forEach(function (id) { var s = st.runs[id].state; c[s] = (c[s] || 0) + 1; c.total++; });
    return c;
  }
  function summary(data, merge) {
    var c = counts(), parts = [c.total + " run" + (c.total === 1 ? "" : "s")];
    ["failed", "running", "missed", "skipped", "killed"].forEach(function (s) { if (c[s]) parts.push(c[s] + " " + s); });
    document.getElementById("gantt-summary").textContent = parts.join(" · ");
    if (!merge) {
      var cap = document.getElementById("gantt-cap");
      cap.hidden = !data.cut;
      if (data.cut) cap.textContent = "Showing the " + data.runs.length.toLocaleString() + " most recent of " +
        data.total.toLocaleString() + " runs — narrow the range or add filters.";
    }
    document.getElementById("gantt-empty").hidden = c.total > 0;
    describe();
  }
  function describe() {
    var v = st.view || (st.loaded ? [st.loaded.from, st.loaded.to] : null);
    if (!v) return;
    var jobs = st.rowJob.filter(function (j) { return j !== null; }).length;
    el.setAttribute("aria-label", "Run history chart: " + document.getElementById("gantt-summary").textContent + " over " + jobs +
      " job" + (jobs === 1 ? "" : "s") + ", showing " + fmt(v[0]) + " to " + fmt(v[1]) + ". Left and right arrows pan, + and − zoom, " +
      "Home goes to now, up and down arrows select a run, Enter opens it. The table view lists the same runs.");
  }

  // --- tooltip: text only, in our own element.
  function tipRows(run) {
    var rows = [["Job", st.jobs[run.job]], ["State", run.state + (run.flags & 1 ? " (behind schedule)" : "") + (run.flags & 2 ? " (anomaly)" : "")],
      ["Scheduled", fmt(run.sched)], ["Started", fmt(run.start)], ["Ended", run.start !== null && run.end === null ? "still running" : fmt(run.end)],
      ["Duration", run.start === null ? "–" : span(((run.end !== null ? run.end : Date.now()) - run.start) / 1000)],
      ["Trigger", run.trigger], ["Attempt", String(run.attempt)]];
    if (run.reason) rows.push(["Reason", run.reason]);
    return rows;
  }
  function showTip(rows, x, y) {
    if (!tip) return;
    var dl = document.createElement("dl");
    rows.forEach(function (pair) {
      var dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = pair[0]; dd.textContent = pair[1];
      dl.appendChild(dt); dl.appendChild(dd);
    });
    tip.textContent = "";
    tip.appendChild(dl);
    tip.hidden = false;
    tip.style.left = Math.max(0, Math.min(x + 12, document.documentElement.scrollWidth - 330)) + "px";
    tip.style.top = (y + 12) + "px";
  }
  function hideTip() { if (tip) tip.hidden = true; }
  function openRun(id, newTab) {
    if (newTab) window.open("/runs/" + id, "_blank", "noopener");
    else location.href = "/runs/" + id;
  }
  function pageXY(run) {  // the middle of the run's visible part (bars are at least 3 px wide)
    var v = st.view, box = el.getBoundingClientRect();
    var a = chart.convertToPixel({ seriesId: "runs" }, [Math.max(run.x1, v[0]), run.row]);
    var b = chart.convertToPixel({ seriesId: "runs" }, [Math.min(run.x2, v[1]), run.row]);
    var x = run.start === null ? a[0] : (a[0] + Math.max(a[0] + 3, b[0])) / 2;
    return [x + box.left + window.scrollX, a[1] + box.top + window.scrollY];
  }

  // --- keys and buttons: pan, zoom, now; up/down select a run in view, Enter opens it.
  function step(what) {
    var v = st.view, w = v[1] - v[0], mid = (v[0] + v[1]) / 2;
    if (what === "in") setView(mid - w / 4, mid + w / 4);
    else if (what === "out") setView(mid - w, mid + w);
    else if (what === "now") { var now = Date.now(); setView(now - w * 0.97, now + w * 0.03); }
    else {
      var big = what === "earlier" || what === "later", d = (what === "earlier" || what === "left" ? -1 : 1) * w * (big ? 0.5 : 0.2);
      setView(v[0] + d, v[1] + d);
    }
  }
  function select(delta) {
    var v = st.view, shown = st.itemRuns.filter(function (r) { return r.x2 >= v[0] && r.x1 <= v[1]; });
    if (!shown.length) return;
    var at = -1;
    shown.forEach(function (r, i) { if (r.id === st.selected) at = i; });
    var run = shown[at < 0 ? (delta > 0 ? 0 : shown.length - 1) : (at + delta + shown.length) % shown.length];
    st.selected = run.id;
    var yz = chart.getModel().getComponent("yAxis", 0).axis.scale.getExtent();
    if (run.row < yz[0] || run.row > yz[1]) {
      chart.dispatchAction({ type: "dataZoom", dataZoomIndex: 2, startValue: run.row, endValue: run.row + MAX_ROWS_SHOWN - 1 });
    }
    redraw(false);
    var rows = tipRows(run), xy = pageXY(run);
    showTip(rows, xy[0], xy[1]);
    if (said) said.textContent = rows.map(function (p) { return p[0] + ": " + p[1]; }).join(", ");
  }
  function onKey(e) {
    var keys = { ArrowLeft: "left", ArrowRight: "right", "+": "in", "=": "in", "-": "out", Home: "now" };
    if (keys[e.key]) step(keys[e.key]);
    else if (e.key === "ArrowDown" || e.key === "ArrowUp") select(e.key === "ArrowDown" ? 1 : -1);
    else if (e.key === "Enter" && st.selected !== null) openRun(st.selected, e.ctrlKey || e.metaKey);
    else if (e.key === "Escape") { st.selected = null; hideTip(); redraw(false); }
    else return;
    e.preventDefault();
  }

  // --- live: while the range is relative, only runs changed since the last poll; zoom kept.
  function poll() {
    if (document.visibilityState === "visible" && st.loaded && st.loaded.relative && !fetching) {
      load(st.query, st.cursor !== null ? "updated_after=" + st.cursor : "", true).then(followNow);
    } else followNow();
  }
  function followNow() {
    if (follow && follow.checked && st.loaded && st.loaded.relative && st.view) {
      st.following = true;
      step("now");
      st.following = false;
    }
  }

  // --- filters: checked on the server; a bad value is shown beside its field, the chart stays.
  function clearErrors() {
    form.querySelectorAll(".field-error[data-js]").forEach(function (p) { p.remove(); });
    form.querySelectorAll("[aria-invalid]").forEach(function (i) { i.removeAttribute("aria-invalid"); i.removeAttribute("aria-describedby"); });
  }
  function showErrors(fields) {
    Object.keys(fields).forEach(function (name) {
      var input = form.querySelector("[name='" + name + "']") || form;
      var p = document.createElement("p");
      p.className = "field-error"; p.setAttribute("data-js", "1"); p.id = "err-js-" + name;
      p.textContent = fields[name];
      (input.closest(".field") || input.closest("fieldset") || form).appendChild(p);
      if (input !== form) { input.setAttribute("aria-invalid", "true"); input.setAttribute("aria-describedby", p.id); }
    });
  }
  function formQuery() {
    var zoneInput = form.querySelector("[data-zone-offset]");
    if (zoneInput) zoneInput.value = (form.elements.from.value || form.elements.to.value) ? String(zoneOffset()) : "";
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) { if (value !== "" && key !== "view") params.append(key, value); });
    return params.toString();
  }
  function zoneOffset() {  // minutes to add to a datetime-local value in the display zone to get UTC
    if (zone === "browser") return new Date().getTimezoneOffset();
    var now = new Date(), parts = {};
    new Intl.DateTimeFormat("en-US", { timeZone: zone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric",
      hour: "numeric", minute: "numeric" }).formatToParts(now).forEach(function (p) { parts[p.type] = +p.value; });
    var wall = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute);
    return Math.round((now.getTime() - now.getSeconds() * 1000 - now.getMilliseconds() - wall) / 60000);
  }
  function apply(query, push) {
    clearErrors();
    return load(query, "", false).then(function (err) {
      if (err && err.error) { showErrors(err.error.fields || {}); return; }
      st.query = query;
      if (push) history.pushState({ query: query }, "", "/history" + (query ? "?" + query : ""));
      document.querySelectorAll("[data-view-link=table]").forEach(function (a) { a.href = "/history?" + (query ? query + "&" : "") + "view=table"; });
    });
  }

  // --- theme and zone switches redraw with the new colours or axis labels.
  function restyle() { readColours(); if (st.loaded) redraw(false); }
  function setZone(value) {
    zone = value;
    var note = form.querySelector("[data-zone-note]");
    if (note) note.textContent = "From/to are in " + (zone === "browser" ? Intl.DateTimeFormat().resolvedOptions().timeZone : zone) + ".";
    if (st.loaded) { redraw(false); describe(); }
  }

  function setup() {
    readColours();
    chart = echarts.init(el, null, { renderer: "canvas" });
    chart.on("datazoom", viewChanged);
    chart.on("mouseover", function (p) {
      var ev = p.event && p.event.event;
      if (!ev) return;
      if (p.componentType === "series") showTip(tipRows(st.itemRuns[p.value[3]]), ev.pageX, ev.pageY);
      else if (p.componentType === "yAxis" && st.rowJob[p.dataIndex !== undefined ? p.dataIndex : st.rows.indexOf(p.value)] !== undefined) {
        var job = String(p.value).split(":")[0];
        if (st.jobs[job]) showTip([["Job", st.jobs[job]]], ev.pageX, ev.pageY);
      }
    });
    chart.on("mouseout", hideTip);
    chart.on("click", function (p) {
      var ev = p.event && p.event.event;
      if (p.componentType === "series") openRun(st.itemRuns[p.value[3]].id, ev && (ev.ctrlKey || ev.metaKey));
    });
    el.addEventListener("keydown", onKey);
    window.addEventListener("resize", function () { chart.resize(); if (st.loaded) redraw(false); });
    new MutationObserver(restyle).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
    if (window.matchMedia) window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", restyle);
    var zoneSelect = document.querySelector("[data-zone-select]");
    if (zoneSelect) zoneSelect.addEventListener("change", function () { setZone(zoneSelect.value); });
    document.querySelectorAll("[data-gantt]").forEach(function (b) {
      b.addEventListener("click", function () { if (st.view) step(b.getAttribute("data-gantt")); });
    });
    var showTable = document.querySelector("[data-show-table]");
    if (showTable) showTable.addEventListener("click", function () { location.href = "/history?" + (st.query ? st.query + "&" : "") + "view=table"; });
    form.addEventListener("submit", function (e) { e.preventDefault(); apply(formQuery(), true); });
    document.querySelectorAll("[data-range]").forEach(function (a) {
      a.addEventListener("click", function (e) {
        e.preventDefault();
        form.elements.range.value = a.getAttribute("data-range");
        form.elements.from.value = ""; form.elements.to.value = "";
        apply(formQuery(), true);
      });
    });
    window.addEventListener("popstate", function () { location.reload(); });
    // A test and benchmark hook: what the canvas drew (state and colour per run) and where.
    window.itineraryGantt = {
      chart: chart, whenDrawn: whenDrawn, setView: setView,
      items: function () {
        var v = st.view || [-Infinity, Infinity];
        return Object.keys(drawn).map(function (id) { return drawn[id]; }).filter(function (d) {
          var r = st.runs[d.id]; return r && r.x2 >= v[0] && r.x1 <= v[1];
        });
      },
      at: function (id) {  // the middle of the run's visible part, in viewport pixels
        var p = st.runs[id] ? pageXY(st.runs[id]) : null;
        return p && [p[0] - window.scrollX, p[1] - window.scrollY];
      },
      colour: function (state) { return colours[state]; }
    };
    setZone(zone);
    var first = whenDrawn();
    apply(st.query, false).then(function () { return first; }).then(function () {
      st.view = currentView(); describe(); el.setAttribute("data-ready", "1");
    });
    setInterval(poll, (parseFloat(el.getAttribute("data-poll-seconds")) || 10) * 1000);
  }
  document.addEventListener("DOMContentLoaded", setup);
})();
