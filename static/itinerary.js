// Itinerary's one script: polling, times, theme, confirmations, copy, toasts.
// No inline scripts or eval (the CSP forbids them); data comes from data- attributes.
(function () {
  "use strict";
  var IDLE_MS = 120000, MAX_S = 60, lastActive = Date.now(), failures = 0;
  var zone = localStorage.getItem("itinerary-zone") || "browser";

  // --- polling: every element with data-poll="N" gets a "poll" event every N s while
  // the tab is visible; x6 (at most 60 s) when the user is idle; none while hidden.
  function pollDelay(el) {
    var base = parseFloat(el.getAttribute("data-poll")) || 5;
    if (Date.now() - lastActive > IDLE_MS) base = Math.min(base * 6, MAX_S);
    if (failures) base = Math.min(base * Math.pow(2, failures), MAX_S);
    return base * 1000;
  }
  function tickPolls() {
    var now = Date.now();
    if (document.visibilityState !== "visible") return;
    document.querySelectorAll("[data-poll]").forEach(function (el) {
      var due = parseFloat(el.dataset.pollDue || "0");
      if (!due) { el.dataset.pollDue = String(now + pollDelay(el)); return; }
      if (now >= due) { el.dataset.pollDue = String(now + pollDelay(el)); htmx.trigger(el, "poll"); }
    });
  }
  function pollAllNow() {
    document.querySelectorAll("[data-poll]").forEach(function (el) {
      el.dataset.pollDue = String(Date.now() + pollDelay(el));
      htmx.trigger(el, "poll");
    });
  }
  ["mousemove", "keydown", "scroll", "touchstart"].forEach(function (name) {
    document.addEventListener(name, function () { lastActive = Date.now(); }, { passive: true });
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") pollAllNow();
  });

  // --- times: <time datetime data-ts> in the display zone; ticking elapsed and countdowns.
  function fmt(date, withYear) {
    var opts = { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" };
    if (withYear) opts.year = "numeric";
    if (zone !== "browser") opts.timeZone = zone;
    opts.timeZoneName = "short";
    return new Intl.DateTimeFormat(undefined, opts).format(date);
  }
  function span(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " m " + (s % 60) + " s";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " m";
    return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
  }
  function formatTimes(root) {
    var year = new Date().getFullYear();
    root.querySelectorAll("time[data-ts]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) return;
      el.textContent = fmt(d, d.getFullYear() !== year);
      el.title = d.toISOString().replace(".000", "") + " (UTC)";
    });
  }
  function tickClocks() {
    var now = Date.now();
    document.querySelectorAll("[data-elapsed]").forEach(function (el) {
      el.textContent = span((now - Date.parse(el.getAttribute("data-elapsed"))) / 1000);
    });
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var left = (Date.parse(el.getAttribute("data-due")) - now) / 1000;
      el.textContent = left > 0 ? "in " + span(left) : "due now";
    });
  }

  // --- theme: light / dark / system, kept in a cookie so the server renders it.
  var THEMES = ["system", "light", "dark"];
  function setTheme(name) {
    document.documentElement.setAttribute("data-theme", name);
    document.cookie = "theme=" + name + "; path=/; max-age=31536000; samesite=lax";
    document.querySelectorAll("[data-theme-toggle]").forEach(function (b) {
      b.setAttribute("aria-label", "Colour theme: " + name);
      b.textContent = "Theme: " + name;
    });
  }

  // --- toasts: text only (textContent), never markup from a response.
  function toast(text) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var p = document.createElement("p");
    p.className = "toast";
    p.setAttribute("role", "alert");
    p.textContent = text;
    box.appendChild(p);
    setTimeout(function () { p.remove(); }, 8000);
  }

  function enhance(root) {
    formatTimes(root);
    root.querySelectorAll("[data-tz-offset]").forEach(function (el) {
      el.value = String(new Date().getTimezoneOffset());
    });
    var focus = root.querySelector("[data-focus]");
    if (focus) focus.focus();
  }

  document.addEventListener("click", function (e) {
    var t = e.target.closest("[data-theme-toggle]");
    if (t) {
      var cur = document.documentElement.getAttribute("data-theme") || "system";
      setTheme(THEMES[(THEMES.indexOf(cur) + 1) % THEMES.length]);
      return;
    }
    var c = e.target.closest("[data-copy], [data-copy-from]");
    if (c && navigator.clipboard) {
      var text = c.getAttribute("data-copy");
      if (text === null) text = document.getElementById(c.getAttribute("data-copy-from")).textContent;
      navigator.clipboard.writeText(text).then(function () { c.textContent = "Copied"; }, function () {});
    }
  });

  // --- confirmations in a native <dialog> for forms with data-confirm.
  document.addEventListener("submit", function (e) {
    var form = e.target, dialog = document.getElementById("confirm");
    if (!form.hasAttribute("data-confirm") || form.dataset.confirmed || !dialog || !dialog.showModal) return;
    e.preventDefault();
    document.getElementById("confirm-text").textContent = form.getAttribute("data-confirm");
    dialog.returnValue = "";
    dialog.showModal();
    dialog.addEventListener("close", function onClose() {
      dialog.removeEventListener("close", onClose);
      if (dialog.returnValue === "ok") { form.dataset.confirmed = "1"; form.requestSubmit(); }
    });
  });

  document.addEventListener("DOMContentLoaded", function () {
    var select = document.querySelector("[data-zone-select]");
    if (select) {
      if (![].some.call(select.options, function (o) { return o.value === zone; })) zone = "browser";
      select.value = zone;
      select.addEventListener("change", function () {
        zone = select.value;
        localStorage.setItem("itinerary-zone", zone);
        formatTimes(document);
      });
    }
    setTheme(document.documentElement.getAttribute("data-theme") || "system");
    enhance(document);
    tickClocks();
    setInterval(tickClocks, 1000);
    setInterval(tickPolls, 1000);
    document.body.addEventListener("htmx:afterSettle", function (e) { enhance(e.target); });
    document.body.addEventListener("htmx:afterRequest", function (e) {
      if (e.detail.successful) {
        failures = 0;
        var ls = document.getElementById("live-status"); if (ls) ls.hidden = true;
      }
    });
    document.body.addEventListener("htmx:sendError", function () {
      failures = Math.min(failures + 1, 4);
      var ls = document.getElementById("live-status"); if (ls) ls.hidden = false;
    });
    document.body.addEventListener("htmx:responseError", function (e) {
      var xhr = e.detail.xhr, msg = xhr.getResponseHeader("X-Itinerary-Message");
      if (xhr.status >= 500) {
        failures = Math.min(failures + 1, 4);
        var ls = document.getElementById("live-status"); if (ls) ls.hidden = false;
      }
      toast(msg ? decodeURIComponent(msg) : "Request failed (" + xhr.status + ")");
    });
  });
})();
