// The run-history Gantt (/history): vis-timeline fed by /history/data.json.
// Labels and tooltips are DOM nodes filled through textContent, never HTML; bars carry
// no content, only a class per state (colours and patterns are CSS, itinerary.css).
(function () {
  "use strict";
  var el = document.getElementById("gantt");
  if (!el || !window.vis) return;
  var form = document.getElementById("history-filters");
  var tip = document.getElementById("gantt-tip");
  var follow = document.getElementById("gantt-follow");
  var zone = localStorage.getItem("itinerary-zone") || "browser";
  var SCHEDULED_TRIGGERS = ["schedule", "catchup"];
  var LATE_MS = 5000;
  var items = new vis.DataSet(), groups = new vis.DataSet();
  var state = { query: el.getAttribute("data-query") || "", data: null, cursor: null, jobs: {}, runs: {}, loaded: null };
  var timeline, pollTimer = null, fetchTimer = null, fetching = false;

  // Narrow screens get the table (the accessible alternative) unless a view was asked for.
  if (window.innerWidth < 700 && !/(^|&)view=/.test(location.search.slice(1))) {
    location.replace("/history?" + (state.query ? state.query + "&" : "") + "view=table");
    return;
  }

  function offsetMinutes() { return zone === "UTC" ? 0 : new Date().getTimezoneOffset(); }
  function fmt(ms) {
    if (ms === null || ms === undefined) return "–";
    var opts = { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "short" };
    if (zone !== "browser") opts.timeZone = zone;
    return new Intl.DateTimeFormat(undefined, opts).format(new Date(ms));
  }
  function span(seconds) {
    var s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " m " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " m";
  }

  // --- items from the compact arrays: [id, job, sched, start, end, state, trigger, attempt, flags, reason]
  function toItems(data, now) {
    var out = [];
    data.runs.forEach(function (r) {
      var st = data.states[r[5]] || "lost", trig = data.triggers[r[6]] || "";
      var run = { id: r[0], job: data.jobIds[r[1]], name: data.jobs[r[1]], sched: r[2], start: r[3], end: r[4],
                  state: st, trigger: trig, attempt: r[7], flags: r[8], reason: r[9] };
      state.runs[run.id] = run;
      var cls = "r-" + run.id + " g-" + st + (r[8] & 1 ? " g-behind" : "") + (r[8] & 2 ? " g-anomaly" : "");
      if (run.start === null) {
        out.push({ id: run.id, group: run.job, start: new Date(run.sched), type: "point", content: "", className: "g-point " + cls });
        return;
      }
      var end = run.end !== null ? run.end : Math.max(now, run.start + 1000);
      out.push({ id: run.id, group: run.job, start: new Date(run.start), end: new Date(end), type: "range", content: "",
                 className: "g-bar " + cls + (run.end === null ? " g-open" : "") });
      if (SCHEDULED_TRIGGERS.indexOf(trig) >= 0 && run.start - run.sched > LATE_MS) {
        out.push({ id: run.id + ":late", group: run.job, start: new Date(run.sched), type: "point", content: "", className: "g-late" });
      }
    });
    return out;
  }
  function toGroups(data) {
    return data.jobIds.map(function (id, i) {
      var label = document.createElement("span");
      label.className = "g-label";
      label.textContent = data.jobs[i];
      label.title = data.jobs[i];
      state.jobs[id] = data.jobs[i];
      return { id: id, content: label, name: data.jobs[i] };
    });
  }

  function summary(data) {
    var counts = {}, total = 0;
    Object.keys(state.runs).forEach(function (id) { var s = state.runs[id].state; counts[s] = (counts[s] || 0) + 1; total++; });
    var parts = [total + " run" + (total === 1 ? "" : "s")];
    ["failed", "running", "missed", "skipped", "killed"].forEach(function (s) { if (counts[s]) parts.push(counts[s] + " " + s); });
    document.getElementById("gantt-summary").textContent = parts.join(" · ");
    var cap = document.getElementById("gantt-cap");
    cap.hidden = !data.cut;
    if (data.cut) cap.textContent = "Showing the " + data.runs.length.toLocaleString() + " most recent of " +
      data.total.toLocaleString() + " runs — narrow the range or add filters.";
    document.getElementById("gantt-empty").hidden = total > 0;
  }

  // --- tooltip: text only
  function showTip(id, ev) {
    var run = state.runs[String(id).replace(/:late$/, "")];
    if (!run || !tip) return;
    tip.textContent = "";
    var rows = [["Job", run.name], ["State", run.state + (run.flags & 1 ? " (behind schedule)" : "") + (run.flags & 2 ? " (anomaly)" : "")],
      ["Scheduled", fmt(run.sched)], ["Started", fmt(run.start)], ["Ended", run.start !== null && run.end === null ? "still running" : fmt(run.end)],
      ["Duration", run.start === null ? "–" : span(((run.end !== null ? run.end : Date.now()) - run.start) / 1000)],
      ["Trigger", run.trigger], ["Attempt", String(run.attempt)]];
    if (run.reason) rows.push(["Reason", run.reason]);
    var dl = document.createElement("dl");
    rows.forEach(function (pair) {
      var dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = pair[0]; dd.textContent = pair[1];
      dl.appendChild(dt); dl.appendChild(dd);
    });
    tip.appendChild(dl);
    tip.hidden = false;
    var x = (ev && ev.pageX) || 0, y = (ev && ev.pageY) || 0;
    tip.style.left = Math.min(x + 12, document.documentElement.scrollWidth - 320) + "px";
    tip.style.top = (y + 12) + "px";
  }
  function hideTip() { if (tip) tip.hidden = true; }
  function openRun(id, newTab) {
    var runId = String(id).replace(/:late$/, "");
    if (newTab) window.open("/runs/" + runId, "_blank", "noopener");
    else location.href = "/runs/" + runId;
  }

  // --- loading
  function load(query, extra, merge) {
    var url = "/history/data.json?" + query + (extra ? (query ? "&" : "") + extra : "");
    fetching = true;
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (resp) {
      return resp.json().then(function (body) { return { ok: resp.ok, body: body }; });
    }).then(function (res) {
      fetching = false;
      if (!res.ok) return res.body;
      var data = res.body, now = data.now;
      if (!merge) { items.clear(); state.runs = {}; }
      groups.update(toGroups(data));
      items.update(toItems(data, now));
      state.data = data; state.cursor = data.cursor || state.cursor;
      if (!merge) state.loaded = { from: data.from, to: data.to, relative: data.relative };
      summary(data);
      return null;
    }, function () { fetching = false; return { error: { message: "network error", fields: {} } }; });
  }

  function tick() {
    var now = Date.now();
    items.forEach(function (item) {
      var run = state.runs[item.id];
      if (run && run.start !== null && run.end === null) items.update({ id: item.id, end: new Date(Math.max(now, run.start + 1000)) });
    });
    if (follow && follow.checked && state.loaded && state.loaded.relative) {
      var w = timeline.getWindow(), width = w.end - w.start;
      timeline.setWindow(now - width * 0.95, now + width * 0.05, { animation: false });
    }
  }
  function poll() {
    if (document.visibilityState === "visible" && state.loaded && state.loaded.relative && !fetching) {
      load(state.query, state.cursor !== null ? "updated_after=" + state.cursor : "", true);
    }
    tick();
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
      var holder = input.closest(".field") || input.closest("fieldset") || form;
      holder.appendChild(p);
      if (input !== form) { input.setAttribute("aria-invalid", "true"); input.setAttribute("aria-describedby", p.id); }
    });
  }
  function formQuery() {
    var zoneInput = form.querySelector("[data-zone-offset]");
    if (zoneInput) zoneInput.value = (form.elements.from.value || form.elements.to.value) ? String(offsetMinutes()) : "";
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) { if (value !== "" && key !== "view") params.append(key, value); });
    return params.toString();
  }
  function apply(query, push) {
    clearErrors();
    return load(query, "", false).then(function (err) {
      if (err && err.error) { showErrors(err.error.fields || {}); return; }
      state.query = query; state.cursor = state.data.cursor;
      if (push) history.pushState({ query: query }, "", "/history" + (query ? "?" + query : ""));
      document.querySelectorAll("[data-view-link=table]").forEach(function (a) { a.href = "/history?" + (query ? query + "&" : "") + "view=table"; });
      timeline.setOptions({ zoomMax: Math.max(state.data.to - state.data.from, 60000) * 1.2 });
      timeline.setWindow(state.data.from, state.data.to, { animation: false });
    });
  }

  // --- leaving the loaded window fetches that window (debounced) and updates the URL.
  function onRangeChanged(props) {
    if (!props.byUser || !state.loaded) return;
    if (follow) follow.checked = props.end.valueOf() >= Date.now() - 1000 && state.loaded.relative;
    if (props.start.valueOf() >= state.loaded.from && props.end.valueOf() <= state.loaded.to) return;
    clearTimeout(fetchTimer);
    fetchTimer = setTimeout(function () {
      var params = new URLSearchParams(state.query);
      ["range", "from", "to", "tzo"].forEach(function (k) { params.delete(k); });
      params.set("from", new Date(props.start).toISOString());
      params.set("to", new Date(props.end).toISOString());
      var query = params.toString();
      load(query, "", false).then(function (err) {
        if (err) return;
        state.query = query;
        history.replaceState({ query: query }, "", "/history?" + query);
      });
    }, 300);
  }

  function setup() {
    var options = {
      stack: false, orientation: { axis: "top", item: "top" }, showCurrentTime: true, zoomMin: 10000,
      groupOrder: function (a, b) { return a.name < b.name ? -1 : a.name > b.name ? 1 : 0; },
      selectable: true, multiselect: false, margin: { item: 4 }, maxHeight: "600px", verticalScroll: true,
      horizontalScroll: false, zoomKey: "", tooltip: { followMouse: false }, xss: { disabled: false }
    };
    if (zone === "UTC") options.moment = function (d) { return vis.moment(d).utc(); };
    timeline = new vis.Timeline(el, items, groups, options);
    window.itineraryGantt = { timeline: timeline, items: items, groups: groups };
    timeline.on("itemover", function (p) { showTip(p.item, p.event); });
    timeline.on("itemout", hideTip);
    timeline.on("click", function (p) {
      if (p.item !== null && p.item !== undefined) openRun(p.item, p.event && (p.event.ctrlKey || p.event.metaKey));
    });
    timeline.on("rangechanged", onRangeChanged);
    var left = el.querySelector(".vis-left");
    if (left) { left.setAttribute("tabindex", "0"); left.setAttribute("aria-label", "Job names"); left.setAttribute("role", "region"); }
    el.addEventListener("keydown", function (e) {
      var w = timeline.getWindow(), width = w.end - w.start;
      if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
        var d = (e.key === "ArrowLeft" ? -1 : 1) * width * 0.2;
        timeline.setWindow(w.start.valueOf() + d, w.end.valueOf() + d); e.preventDefault();
      } else if (e.key === "+" || e.key === "=") { timeline.zoomIn(0.5); e.preventDefault(); }
      else if (e.key === "-") { timeline.zoomOut(0.5); e.preventDefault(); }
      else if (e.key === "Home") { timeline.moveTo(Date.now()); e.preventDefault(); }
      else if (e.key === "Enter") { var sel = timeline.getSelection(); if (sel.length) openRun(sel[0], e.ctrlKey || e.metaKey); }
    });
    document.querySelectorAll("[data-gantt]").forEach(function (b) {
      b.addEventListener("click", function () {
        var w = timeline.getWindow(), width = w.end - w.start, what = b.getAttribute("data-gantt");
        if (what === "in") timeline.zoomIn(0.5);
        else if (what === "out") timeline.zoomOut(0.5);
        else if (what === "now") timeline.moveTo(Date.now());
        else { var d = (what === "earlier" ? -1 : 1) * width * 0.5; timeline.setWindow(w.start.valueOf() + d, w.end.valueOf() + d); }
        onRangeChanged({ byUser: true, start: timeline.getWindow().start, end: timeline.getWindow().end });
      });
    });
    var showTable = document.querySelector("[data-show-table]");
    if (showTable) showTable.addEventListener("click", function () { location.href = "/history?" + (state.query ? state.query + "&" : "") + "view=table"; });
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
    var note = form.querySelector("[data-zone-note]");
    if (note) note.textContent = "From/to are in " + (zone === "UTC" ? "UTC" : Intl.DateTimeFormat().resolvedOptions().timeZone) + ".";
    apply(state.query, false).then(function () { el.setAttribute("data-ready", "1"); });
    pollTimer = setInterval(poll, (parseFloat(el.getAttribute("data-poll-seconds")) || 10) * 1000);
  }
  document.addEventListener("DOMContentLoaded", setup);
})();
