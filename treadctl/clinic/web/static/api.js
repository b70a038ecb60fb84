// The one way the dashboard's pages talk to the web API. Every request that changes something
// goes through apiSend, which sets the JSON content type and, when the page carries one
// (<meta name="csrf-token">, from the accounts), the CSRF header: one place to get it right.
// A network failure (the service unreachable) throws; callers say so in words.
"use strict";

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.getAttribute("content") : null;
}

async function apiAnswer(response) {
  let data = null;
  try {
    data = await response.json();
  } catch (_error) {
    data = null;
  }
  return { ok: response.ok, status: response.status, data };
}

async function apiSend(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  const token = csrfToken();
  if (token) headers["X-CSRF-Token"] = token;
  const response = await fetch(path, {
    method,
    headers,
    body: JSON.stringify(body === undefined ? {} : body),
    cache: "no-store",
    credentials: "same-origin",
  });
  return apiAnswer(response);
}

async function apiGet(path) {
  const response = await fetch(path, { cache: "no-store", credentials: "same-origin" });
  return apiAnswer(response);
}

// The API's error message ({"error": {"code", "message"}}), or what the status says.
function apiMessage(data, status) {
  const error = data && data.error;
  if (error && error.message) return error.message;
  if (data && data.message) return data.message;
  return "refused (HTTP " + status + ")";
}
