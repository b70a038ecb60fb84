// The people and records pages' forms (<form class="form" data-method data-path>): the fields
// become the web API's JSON body (a field's `name` is its path in the body, `data-kind` says how
// its text is read), sent with apiSend. A refusal puts each part of the API's message
// ("limits.max_speed_backward_kmh: …; notes: …") next to the field it names, the rest under
// the form; nothing else on the page changes. Success reloads the page or goes where
// `data-then` says ("/people/{id}": a field of the answer).
"use strict";

(function () {
  const PART = /^([A-Za-z_][A-Za-z0-9_.]*): ([\s\S]*)$/;

  function put(body, path, value) {
    const keys = path.split(".");
    let node = body;
    for (const key of keys.slice(0, -1)) {
      if (typeof node[key] !== "object" || node[key] === null) node[key] = {};
      node = node[key];
    }
    node[keys[keys.length - 1]] = value;
  }

  function numeric(text) {
    return text !== "" && Number.isFinite(Number(text)) ? Number(text) : text;
  }

  // "name = value" a line, as an object; a line without "=" is refused, naming the field.
  function pairs(text, name, problems) {
    const out = {};
    for (const line of text.split("\n").map((l) => l.trim()).filter(Boolean)) {
      const at = line.indexOf("=");
      if (at < 1) {
        problems.push(name + ": write each as name = value, not '" + line + "'");
        continue;
      }
      out[line.slice(0, at).trim()] = numeric(line.slice(at + 1).trim());
    }
    return out;
  }

  // One field's value, or undefined when it is left out of the body.
  function read(el, problems) {
    const kind = el.dataset.kind || "text";
    if (el.type === "checkbox") return kind === "flag-object" ? (el.checked ? {} : undefined) : el.checked;
    if (kind === "bool") return el.value === "true";
    if (el.validity && el.validity.badInput) {
      problems.push(el.name + ": not a number");
      return undefined;
    }
    const text = el.value.trim();
    if (kind === "string") return el.value;
    if (kind === "nullable") return text === "" ? null : text;
    if (kind === "pairs") return pairs(el.value, el.name, problems);
    if (text === "") return undefined;
    if (kind === "number" || kind === "int") return numeric(text);
    return text;
  }

  function collect(form, problems) {
    const body = {};
    for (const name of (form.dataset.objects || "").split(" ").filter(Boolean)) body[name] = {};
    for (const el of form.elements) {
      if (!el.name || el.tagName === "BUTTON" || el.closest("fieldset[data-append]")) continue;
      const value = read(el, problems);
      if (value !== undefined) put(body, el.name, value);
    }
    for (const set of form.querySelectorAll("fieldset[data-append]")) {
      const item = {};
      for (const el of set.elements) if (el.name && el.value.trim()) item[el.name] = el.value.trim();
      if (Object.keys(item).length) {
        const existing = JSON.parse(set.dataset.existing || "[]");
        body[set.dataset.append] = [...existing, item];
      }
    }
    return body;
  }

  function statusOf(form) {
    return form.querySelector("[data-form-status]");
  }

  function clear(form) {
    for (const node of form.querySelectorAll("[data-error-for]")) node.textContent = "";
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    const status = statusOf(form);
    if (status) {
      status.textContent = "";
      status.classList.remove("bad");
    }
  }

  // The error slot for an API path: itself, without list indexes, then its parents.
  function slotFor(form, path) {
    const plain = path.split(".").filter((k) => !/^\d+$/.test(k));
    for (let n = plain.length; n > 0; n--) {
      const name = plain.slice(0, n).join(".");
      const slot = form.querySelector('[data-error-for="' + CSS.escape(name) + '"]');
      if (slot) return slot;
    }
    return null;
  }

  function refuse(form, parts) {
    const rest = [];
    let first = null;
    for (const part of parts) {
      const match = PART.exec(part.trim());
      const slot = match ? slotFor(form, match[1]) : null;
      if (!slot) {
        rest.push(part.trim());
        continue;
      }
      slot.textContent = slot.textContent ? slot.textContent + "; " + part.trim() : part.trim();
      const field = form.querySelector('[aria-describedby~="' + CSS.escape(slot.id) + '"]');
      if (field) {
        field.setAttribute("aria-invalid", "true");
        first = first || field;
      }
    }
    const status = statusOf(form);
    if (status) {
      status.textContent = rest.length ? rest.join("; ") : "Not saved: see the fields marked above.";
      status.classList.add("bad");
    }
    if (first) first.focus();
  }

  function then(form, data) {
    const where = form.dataset.then || "reload";
    if (where === "reload") {
      window.location.reload();
      return;
    }
    window.location.assign(
      where.replace(/\{(\w+)\}/g, (_m, key) => encodeURIComponent(String((data && data[key]) ?? ""))),
    );
  }

  async function submit(form, submitter) {
    clear(form);
    const problems = [];
    const body = collect(form, problems);
    if (problems.length) {
      refuse(form, problems);
      return;
    }
    const path = (submitter && submitter.dataset.path) || form.dataset.path;
    const status = statusOf(form);
    if (status) status.textContent = "saving…";
    form.setAttribute("aria-busy", "true");
    try {
      const answer = await apiSend(form.dataset.method || "POST", path, body);
      if (answer.ok) {
        if (status) status.textContent = "saved";
        then(form, answer.data);
      } else {
        refuse(form, apiMessage(answer.data, answer.status).split("; "));
      }
    } catch (_error) {
      refuse(form, ["Not saved: the clinic service cannot be reached."]);
    } finally {
      form.removeAttribute("aria-busy");
    }
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.matches("form.form[data-method]")) return;
    event.preventDefault();
    submit(form, event.submitter);
  });
})();
