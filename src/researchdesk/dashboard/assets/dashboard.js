// ResearchDesk dashboard: keeps the parts of a page marked `data-live` up to date.
// Each such element names a URL that serves its inner HTML; the script asks for it again
// every `data-interval` ms with the last `ETag` (a 304 costs nothing), keeps open folds open,
// and stops when the server says the content is final. Elements with `data-since` (a Unix
// time) show how long ago that was, counted here so that the served HTML stays unchanged.
"use strict";

(function () {
  function elapsed(seconds) {
    if (seconds < 60) return seconds.toFixed(1) + " s";
    const minutes = Math.floor(seconds / 60);
    const rest = Math.floor(seconds % 60);
    if (minutes < 60) return minutes + " min " + String(rest).padStart(2, "0") + " s";
    return Math.floor(minutes / 60) + " h " + String(minutes % 60).padStart(2, "0") + " min";
  }

  function tick() {
    const now = Date.now() / 1000;
    document.querySelectorAll("[data-since]").forEach(function (el) {
      el.textContent = elapsed(Math.max(0, now - Number(el.dataset.since)));
    });
  }

  function setState(text, kind) {
    document.querySelectorAll("[data-live-state]").forEach(function (el) {
      el.textContent = text;
      el.classList.toggle("stale", kind === "stale");
      el.classList.toggle("final", kind === "final");
    });
  }

  function follow(el) {
    const url = el.dataset.live;
    const interval = Number(el.dataset.interval || 2000);
    let etag = el.dataset.etag || null;
    if (el.dataset.final === "1") {
      setState("final", "final");
      return;
    }

    async function poll() {
      let delay = interval;
      try {
        const headers = { Accept: "text/html" };
        if (etag) headers["If-None-Match"] = etag;
        const answer = await fetch(url, { headers: headers, credentials: "same-origin", cache: "no-store" });
        if (answer.status === 401) {
          const here = location.pathname + location.search;
          location.assign(el.dataset.login + "?next=" + encodeURIComponent(here));
          return;
        }
        if (answer.status === 200) {
          etag = answer.headers.get("ETag");
          const open = Array.from(el.querySelectorAll("details[open][data-fold]"), function (d) {
            return d.dataset.fold;
          });
          el.innerHTML = await answer.text();
          open.forEach(function (name) {
            const fold = el.querySelector('details[data-fold="' + CSS.escape(name) + '"]');
            if (fold) fold.open = true;
          });
          tick();
          if (answer.headers.get("X-Live-Final") === "1") {
            setState("final", "final");
            return;
          }
          setState("live", "live");
        } else if (answer.status === 304) {
          setState("live", "live");
        } else if (answer.status === 404) {
          setState("gone", "stale");  // deleted, or no longer this key's to see
          return;
        } else if (answer.status === 429) {
          delay = 1000 * Number(answer.headers.get("Retry-After") || 5);
          setState("rate limited", "stale");
        } else {
          delay = interval * 4;
          setState("retrying", "stale");
        }
      } catch (error) {
        delay = interval * 4;
        setState("offline", "stale");
      }
      setTimeout(poll, delay);
    }

    setTimeout(poll, interval);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(follow);
    tick();
    setInterval(tick, 1000);
  });
})();
