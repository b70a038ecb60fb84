// The treadmill page's start form: a person (their active prescription shown), their
// prescription or a program with its parameters, and the pre-session check (pain now, the
// safety clip, a supervisor: the h/p/cosmos field safety notice, docs/clinic.md). Start stays
// disabled until the check is complete, and the check goes with the start request.
"use strict";

(function () {
  function say(node, message, bad) {
    if (!node) return;
    node.textContent = message;
    node.classList.toggle("bad", Boolean(bad));
  }

  const form = document.getElementById("start-form");

  function painScore() {
    const field = document.getElementById("check-pain");
    if (!field || field.value.trim() === "" || (field.validity && field.validity.badInput)) return null;
    const value = Number(field.value);
    return Number.isInteger(value) && value >= 0 && value <= 10 ? value : null;
  }

  function checked(id) {
    const box = document.getElementById(id);
    return Boolean(box && box.checked);
  }

  // Start only once the check is complete; the hint says what is missing.
  function checkStart() {
    const button = document.getElementById("start-button");
    const why = document.getElementById("start-why");
    const missing = [];
    if (painScore() === null) missing.push("the pain score now (a whole number 0–10)");
    if (!checked("check-clip")) missing.push("the safety clip attached");
    if (!checked("check-supervisor")) missing.push("a supervisor present");
    if (button) button.disabled = missing.length > 0;
    if (why) why.textContent = missing.length ? "Start needs: " + missing.join(", ") + "." : "Ready to start.";
  }

  function chosenProgram() {
    return form.elements.program.value;
  }

  function showParameters() {
    for (const set of form.querySelectorAll("fieldset[data-program]")) {
      set.hidden = set.dataset.program !== chosenProgram();
    }
  }

  function parameters() {
    const values = {};
    const set = form.querySelector('fieldset[data-program="' + CSS.escape(chosenProgram()) + '"]');
    if (!set) return values;
    for (const input of set.querySelectorAll("input[data-parameter]")) {
      if (input.value.trim() !== "") values[input.dataset.parameter] = Number(input.value);
    }
    return values;
  }

  function listed(values) {
    const names = Object.keys(values || {});
    return names.length ? names.map((n) => n + " = " + values[n]).join(", ") : "the program's defaults";
  }

  // The person's active prescription, shown before the start (or why there is none).
  async function showPlan() {
    const node = document.getElementById("start-plan");
    const person = form.elements.person.value.trim();
    if (!node) return;
    if (!person) {
      node.textContent = "Choose a person to see their prescription.";
      return;
    }
    try {
      const who = await apiGet("/api/people/" + encodeURIComponent(person));
      if (form.elements.person.value.trim() !== person) return; // typed on meanwhile
      if (!who.ok) {
        node.textContent = apiMessage(who.data, who.status);
        return;
      }
      if (who.data.archived) {
        node.textContent = person + " is archived: restore them on their page first.";
        return;
      }
      const list = await apiGet("/api/prescriptions?person=" + encodeURIComponent(person));
      const active = (list.ok && Array.isArray(list.data) ? list.data : []).filter((p) => !p.ended);
      const rx = active[active.length - 1];
      node.textContent = rx
        ? "Active prescription: " + rx.program + " (" + listed(rx.parameters) + "), " +
          rx.sessions_per_week + " a week for " + rx.weeks + " weeks."
        : "No active prescription for " + person + ": choose a program.";
    } catch (_error) {
      node.textContent = "The clinic service cannot be reached.";
    }
  }

  async function start() {
    const node = document.getElementById("start-status");
    const person = form.elements.person.value.trim();
    if (!person) {
      say(node, "Person id: enter the person's id (e.g. p-0042)", true);
      form.elements.person.focus();
      return;
    }
    const pain = painScore();
    if (pain === null || !checked("check-clip") || !checked("check-supervisor")) {
      checkStart();
      say(node, "not started: the pre-session check is not complete", true);
      return;
    }
    const body = { person, check: { pain_before: pain, clip_attached: true, supervisor_present: true } };
    const program = chosenProgram();
    if (program) {
      body.program = program;
      const values = parameters();
      if (Object.keys(values).length) body.parameters = values;
    }
    say(node, "starting…", false);
    try {
      const path = "/api/treadmills/" + encodeURIComponent(form.dataset.device) + "/start";
      const { status, data: answer } = await apiSend("POST", path, body);
      if (status < 300) {
        const sent = (answer && answer.sent) || {};
        say(node, "started " + (sent.program || "—") + " for " + person, false);
      } else {
        say(node, "not started: " + apiMessage(answer, status), true);
      }
    } catch (_error) {
      say(node, "not started: the clinic service cannot be reached", true);
    }
  }

  if (form) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      start();
    });
    form.addEventListener("input", checkStart);
    form.addEventListener("change", (event) => {
      checkStart();
      if (event.target === form.elements.program) showParameters();
      if (event.target === form.elements.person) showPlan();
    });
    showParameters();
    checkStart();
  }
})();
