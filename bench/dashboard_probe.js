// Added to the overview by bench/dashboard_fleet.py (Playwright's add_init_script; the page
// itself is not edited): animation-frame intervals, long tasks, each live `tile` event bringing a
// new sample, and each change of a tile's heart-rate text (wall clock, ms). `take()` hands over
// and forgets what was gathered.
"use strict";
(() => {
  const b = (window.__bench = { frames: [], long: [], shown: [], arrived: [], longtask: false });
  const wall = () => performance.timeOrigin + performance.now();
  // each live `tile` event bringing a new sample, as the page's own listener gets it
  const heard = new Map();
  const add = EventSource.prototype.addEventListener;
  EventSource.prototype.addEventListener = function (type, listener, options) {
    let wrapped = listener;
    if (type === "tile") {
      wrapped = function (event) {
        const at = wall();
        try {
          const d = JSON.parse(event.data);
          if (heard.get(d.device) !== d.heart_rate_bpm) b.arrived.push([d.device, d.heart_rate_bpm, at]);
          heard.set(d.device, d.heart_rate_bpm); // a state or event change repeats the sample
        } catch (_e) {}
        return listener.call(this, event);
      };
    }
    return add.call(this, type, wrapped, options);
  };
  let last = null;
  const frame = (t) => {
    if (last !== null) b.frames.push([performance.timeOrigin + t, t - last]);
    last = t;
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) b.long.push([performance.timeOrigin + e.startTime, e.duration]);
    }).observe({ type: "longtask" });
    b.longtask = true;
  } catch (_e) {}
  const seen = new Map();
  let waiting = [];
  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById("tiles");
    if (!root) return;
    new MutationObserver((records) => {
      const now = wall();
      for (const r of records) {
        const dd = r.target.nodeType === 1 ? r.target : r.target.parentElement;
        if (!dd || !dd.matches(".reading-heart_rate dd")) continue;
        const device = dd.closest("article.tile").dataset.device;
        const text = dd.textContent;
        if (seen.get(device) === text) continue;
        seen.set(device, text);
        const entry = [device, text, now, null];
        b.shown.push(entry);
        waiting.push(entry);
      }
      if (waiting.length) {
        const those = waiting;
        waiting = [];
        requestAnimationFrame(() => { const t = wall(); for (const e of those) e[3] = t; });
      }
    }).observe(root, { childList: true, subtree: true, characterData: true });
  });
  b.take = () => {
    const out = { frames: b.frames, long: b.long, shown: b.shown, arrived: b.arrived, longtask: b.longtask };
    b.frames = []; b.long = []; b.shown = []; b.arrived = [];
    return out;
  };
})();
