// The dashboard's live tiles: one EventSource on /api/live (a snapshot, then one tile per
// change), tiles updated in place (a focused button keeps its focus), and the commands
// (e-stop, reset, pause, resume, skip, stop) posted to the web API with apiSend (api.js).
// Once a session ends on a tile, the tile links to its record's annotation form. The
// treadmill page's start form is start.js.
// Everything shown is set with textContent: device ids and people come from the broker.
"use strict";

(function () {
  const RECONNECT_MS = 1000;
  const tiles = new Map(); // device -> {tile, el, fields}
  let live = false;
  let source = null;

  const root = document.getElementById("tiles");
  const banner = document.getElementById("banner");
  const view = root ? root.dataset.view : null;
  const only = root ? root.dataset.device || null : null; // the treadmill page's device

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // --- formatting -----------------------------------------------------------------------------

  function seenAt(value) {
    if (value === null || value === undefined) return null;
    if (typeof value === "number") return value > 1e12 ? value : value * 1000;
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? null : ms;
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function num(value, digits, unit) {
    return typeof value === "number" ? value.toFixed(digits) + " " + unit : "—";
  }

  function duration(s) {
    if (typeof s !== "number") return "—";
    const total = Math.max(0, Math.round(s));
    const m = Math.floor(total / 60);
    return m + ":" + String(total % 60).padStart(2, "0");
  }

  function text(value) {
    return value === null || value === undefined || value === "" ? "—" : String(value);
  }

  function inputs(map) {
    const names = Object.keys(map || {});
    if (names.length === 0) return { text: "none configured", bad: false };
    const bad = names.filter((n) => !(map[n] && map[n].healthy));
    if (bad.length === 0) return { text: "all " + names.length + " ok", bad: false };
    return {
      text: "⚠ " + bad.map((n) => n + ": " + text(map[n] && map[n].status)).join(", "),
      bad: true,
    };
  }

  function still(tile) {
    return tile.speed_kmh === 0;
  }

  // What the tile may claim: live, stale, offline, or unknown (no live stream).
  function liveness(tile) {
    const seen = seenAt(tile.last_seen);
    if (!live) return { dead: true, text: "not live: live updates lost" };
    if (tile.online === false) {
      return { dead: true, text: "offline since " + (seen ? clock(seen) : "an unknown time") };
    }
    if (tile.online === null || tile.online === undefined) {
      return { dead: true, text: "not heard from yet" };
    }
    if (tile.stale) {
      const age = seen ? Math.max(0, Math.round((Date.now() - seen) / 1000)) : null;
      return { dead: true, text: age === null ? "no live data yet" : "no data for " + age + " s" };
    }
    return { dead: false, text: "live" };
  }

  // --- a tile ---------------------------------------------------------------------------------

  const ROWS = [
    ["mode", "Mode"],
    ["person", "Person"],
    ["program", "Program"],
    ["phase", "Phase"],
    ["direction", "Walk / belt"],
    ["speed", "Speed"],
    ["target", "Target"],
    ["incline", "Incline"],
    ["time_left", "Time left"],
    ["heart_rate", "Heart rate"],
    ["inputs", "E-stop inputs"],
  ];

  function build(device) {
    const article = el("article", { class: "tile", "data-device": device, "aria-label": "Treadmill " + device });
    const head = el("header", { class: "tile-head" });
    const name = el("h2", { class: "tile-name" });
    if (view === "overview") name.append(el("a", { href: "/treadmills/" + encodeURIComponent(device) }, device));
    else name.textContent = device;
    const badge = el("span", { class: "badge" });
    head.append(name, badge);
    const state = el("p", { class: "tile-state", "aria-live": "polite" });
    const awaiting = el("p", { class: "awaiting", role: "status", hidden: "" });
    const latched = el("p", { class: "latched", hidden: "" }, "■ E-STOP LATCHED");
    const list = el("dl", { class: "readings" });
    const after = el("p", { class: "after", hidden: "" });
    const fields = { badge, state, awaiting, latched, after };
    for (const [key, label] of ROWS) {
      const row = el("div", { class: "reading reading-" + key });
      const value = el("dd", {}, "—");
      row.append(el("dt", {}, label), value);
      list.append(row);
      fields[key] = value;
    }
    const actions = el("div", { class: "tile-actions" });
    const status = el("p", { class: "status", role: "status", "aria-live": "assertive" });
    if (view === "overview") {
      const stop = el("button", { type: "button", class: "estop", "data-action": "estop", "data-device": device }, "E-STOP");
      stop.setAttribute("aria-label", "E-stop " + device);
      actions.append(stop);
    }
    const reset = el("button", { type: "button", class: "cmd reset", "data-action": "reset", "data-device": device, hidden: "" }, "Reset");
    reset.setAttribute("aria-label", "Reset the e-stop of " + device);
    actions.append(reset);
    fields.reset = reset;
    fields.status = status;
    article.append(head, state, awaiting, latched, list, actions, status, after);
    return { el: article, fields, tile: null };
  }

  function render(entry) {
    const t = entry.tile;
    const f = entry.fields;
    const how = liveness(t);
    entry.el.classList.toggle("tile-dead", how.dead);
    entry.el.classList.toggle("tile-latched", Boolean(t.estop_latched));
    f.badge.textContent = t.online === true ? "● online" : t.online === false ? "○ offline" : "? unknown";
    f.badge.className = "badge " + (t.online === true ? "badge-on" : "badge-off");
    const state = how.dead ? how.text : "live · " + text(t.mode);
    if (f.state.textContent !== state) f.state.textContent = state; // announced on change only
    // What the daemon waits for before the belt moves (a start to confirm at the treadmill).
    const waiting = typeof t.awaiting === "string" && t.awaiting !== "" && !how.dead ? t.awaiting : "";
    if (f.awaiting.textContent !== waiting) f.awaiting.textContent = waiting;
    f.awaiting.hidden = waiting === "";
    f.latched.hidden = !t.estop_latched;
    f.mode.textContent = text(t.mode);
    f.person.textContent = text(t.person);
    f.program.textContent = text(t.program);
    f.phase.textContent = text(t.phase);
    f.direction.textContent = text(t.walk) + " / " + text(t.belt);
    f.speed.textContent = num(t.speed_kmh, 1, "km/h");
    f.target.textContent = num(t.target_kmh, 1, "km/h");
    f.incline.textContent = num(t.incline_pct, 1, "%");
    f.time_left.textContent = duration(t.time_left_s);
    f.heart_rate.textContent = num(t.heart_rate_bpm, 0, "bpm");
    const health = inputs(t.estop_inputs);
    f.inputs.textContent = health.text;
    f.inputs.classList.toggle("bad", health.bad);
    f.reset.hidden = !(t.estop_latched && still(t) && !how.dead);
  }

  function upsert(tile) {
    if (!tile || typeof tile.device !== "string") return;
    if (only && tile.device !== only) return;
    let entry = tiles.get(tile.device);
    if (!entry) {
      entry = build(tile.device);
      const next = [...tiles.keys()].filter((d) => d > tile.device).sort()[0]; // by id
      root.insertBefore(entry.el, next ? tiles.get(next).el : null);
      tiles.set(tile.device, entry);
    }
    const before = entry.tile;
    entry.tile = tile;
    render(entry);
    followSession(entry, before, tile);
    const empty = document.getElementById("empty");
    if (empty) empty.hidden = tiles.size > 0;
  }

  function snapshot(list) {
    const seen = new Set();
    for (const tile of list || []) {
      if (!only || tile.device === only) seen.add(tile.device);
    }
    for (const [device, entry] of tiles) {
      if (!seen.has(device)) {
        entry.el.remove();
        tiles.delete(device);
      }
    }
    for (const tile of list || []) upsert(tile);
    const empty = document.getElementById("empty");
    if (empty) {
      empty.hidden = tiles.size > 0;
      empty.textContent = only ? "No treadmill " + only + " has been seen on the broker." : "No treadmill has been seen on the broker yet.";
    }
  }

  function rerenderAll() {
    for (const entry of tiles.values()) if (entry.tile) render(entry);
  }

  // --- the live stream -------------------------------------------------------------------------

  function setLive(value) {
    live = value;
    if (banner) banner.hidden = value;
    document.body.classList.toggle("not-live", !value);
    rerenderAll();
  }

  function parse(event) {
    try {
      return JSON.parse(event.data);
    } catch (_error) {
      return null;
    }
  }

  function connect() {
    source = new EventSource("/api/live");
    source.addEventListener("snapshot", (event) => {
      const data = parse(event);
      if (!data) return;
      setLive(true);
      snapshot(data.treadmills);
    });
    source.addEventListener("tile", (event) => {
      const data = parse(event);
      if (data) upsert(data);
    });
    source.onerror = () => {
      setLive(false);
      // The browser retries by itself unless the stream was refused (readyState CLOSED).
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        window.setTimeout(connect, RECONNECT_MS);
      }
    };
  }

  // --- commands --------------------------------------------------------------------------------

  const OWN_STOP = "use the treadmill's own stop";

  // The API's 503 names the fallback itself; any other failure gets it added.
  function ownStop(prefix, message) {
    const text = /NOT/.test(message) ? message : prefix + message;
    return /own stop/.test(text) ? text : text + " — " + OWN_STOP;
  }

  function statusFor(button) {
    const tile = button.closest(".tile");
    if (tile) return tile.querySelector(".status");
    const described = button.getAttribute("aria-describedby");
    if (described) return document.getElementById(described);
    return document.getElementById("command-status");
  }

  function say(node, message, bad) {
    if (!node) return;
    node.textContent = message;
    node.classList.toggle("bad", Boolean(bad));
  }

  async function post(device, action, body) {
    const path = "/api/treadmills/" + encodeURIComponent(device) + "/" + action;
    const { status, data } = await apiSend("POST", path, body || {});
    return { status, answer: data };
  }

  function problem(answer, status) {
    return apiMessage(answer, status);
  }

  async function estop(button) {
    const node = statusFor(button);
    say(node, "sending stop…", false);
    try {
      const { status, answer } = await post(button.dataset.device, "estop");
      if (status === 202 || status === 200) say(node, "stop sent", false);
      else say(node, ownStop("stop NOT sent: ", problem(answer, status)), true);
    } catch (_error) {
      say(node, ownStop("stop NOT sent: ", "the clinic service cannot be reached"), true);
    }
  }

  async function command(button) {
    const node = statusFor(button);
    const action = button.dataset.action;
    say(node, action + ": sending…", false);
    try {
      const { status, answer } = await post(button.dataset.device, action);
      const ok = status < 300 && !(answer && answer.ok === false);
      if (ok) say(node, action + ": " + ((answer && answer.message) || "done"), false);
      else say(node, action + " refused: " + problem(answer, status), true);
    } catch (_error) {
      say(node, action + " not sent: the clinic service cannot be reached", true);
    }
  }

  // --- after a session: a link to its record's annotation form ---------------------------------

  const ACTIVE = new Set(["running", "paused", "stopping"]);
  const FOLLOW_MS = 1000;
  const FOLLOW_TRIES = 60; // the record reaches the clinic seconds after the end
  const known = new Map(); // device -> Promise of the session ids stored before this one ended

  async function storedSessions(device) {
    try {
      const answer = await apiGet("/api/sessions?device=" + encodeURIComponent(device));
      return answer.ok && Array.isArray(answer.data) ? answer.data : null;
    } catch (_error) {
      return null;
    }
  }

  async function linkNewSession(entry, device, before) {
    const ids = await before;
    if (ids === null) return;
    for (let i = 0; i < FOLLOW_TRIES; i++) {
      if (entry.tile && ACTIVE.has(entry.tile.mode)) return; // another session began
      const list = await storedSessions(device);
      const fresh = (list || []).filter((s) => !ids.has(s.id));
      if (fresh.length) {
        const session = fresh[fresh.length - 1];
        const link = el("a", { href: "/sessions/" + encodeURIComponent(session.id) + "#annotation" },
          "Annotate the session that just ended");
        entry.fields.after.replaceChildren(link);
        entry.fields.after.hidden = false;
        return;
      }
      await new Promise((resolve) => window.setTimeout(resolve, FOLLOW_MS));
    }
  }

  function followSession(entry, before, tile) {
    const device = tile.device;
    if (ACTIVE.has(tile.mode)) {
      entry.fields.after.hidden = true;
      if (!known.has(device)) {
        known.set(device, storedSessions(device).then((list) => (list ? new Set(list.map((s) => s.id)) : null)));
      }
    } else if (before && ACTIVE.has(before.mode) && tile.mode && known.has(device)) {
      const ids = known.get(device);
      known.delete(device);
      linkNewSession(entry, device, ids);
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    if (button.dataset.action === "estop") estop(button);
    else command(button);
  });

  if (root) {
    window.setInterval(rerenderAll, 1000); // "no data for N s" counts up
    connect();
  }
})();
