// The admin page: queue figures and dead letters from /_patina/api, with Replay and Drop.
// The credential stays in this tab (sessionStorage) and goes only to this origin.
"use strict";

const api = "/_patina/api";
const $ = (sel) => document.querySelector(sel);

function headers() {
  const value = sessionStorage.getItem("patina-credential") || "";
  const scheme = sessionStorage.getItem("patina-scheme") || "bearer";
  if (!value) return {};
  return scheme === "key" ? { "X-API-Key": value } : { Authorization: "Bearer " + value };
}

function say(text) {
  $("#status").textContent = text || "";
}

async function call(method, path) {
  const res = await fetch(api + path, { method, headers: headers() });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    throw new Error((body.title || res.status) + ": " + (body.detail || ""));
  }
  return body;
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  row.appendChild(td);
  return td;
}

function age(seconds) {
  if (seconds == null) return "";
  if (seconds < 120) return seconds + " s";
  if (seconds < 7200) return Math.round(seconds / 60) + " min";
  return Math.round(seconds / 3600) + " h";
}

async function refresh() {
  say("");
  try {
    const queue = await call("GET", "/queue");
    $("#totals").textContent =
      queue.pending + " pending of at most " + queue.capacity + ", " + queue.dead + " dead letter(s)";
    const routes = $("#routes tbody");
    routes.replaceChildren();
    for (const [name, r] of Object.entries(queue.routes)) {
      const row = document.createElement("tr");
      cell(row, name);
      cell(row, r.pending);
      cell(row, age(r.oldest_pending_seconds));
      cell(row, r.dead);
      routes.appendChild(row);
    }
    const letters = await call("GET", "/dead-letters");
    const body = $("#letters tbody");
    body.replaceChildren();
    if (letters.data.length === 0) {
      const row = document.createElement("tr");
      const td = cell(row, "No dead letters.");
      td.colSpan = 7;
      td.className = "empty";
      body.appendChild(row);
    }
    for (const d of letters.data) {
      const row = document.createElement("tr");
      row.dataset.id = d.id;
      cell(row, d.id);
      cell(row, d.route);
      cell(row, d.accepted_at);
      cell(row, d.attempts);
      cell(row, (d.last_error || "") + (d.last_error_detail ? ": " + d.last_error_detail : ""));
      const req = cell(row, "");
      const pre = document.createElement("pre");
      pre.textContent = d.path + "\n" + JSON.stringify(d.body, null, 2);
      req.appendChild(pre);
      const actions = cell(row, "");
      for (const [label, method, path] of [
        ["Replay", "POST", "/deliveries/" + encodeURIComponent(d.id) + "/replay"],
        ["Drop", "DELETE", "/deliveries/" + encodeURIComponent(d.id)],
      ]) {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = label;
        b.addEventListener("click", async () => {
          if (label === "Drop" && !confirm("Drop this dead letter for good?")) return;
          try {
            await call(method, path);
            say(label === "Replay" ? "Replayed " + d.id : "Dropped " + d.id);
            setTimeout(refresh, 300);
          } catch (e) {
            say(e.message);
          }
        });
        actions.appendChild(b);
      }
      body.appendChild(row);
    }
  } catch (e) {
    say(e.message);
  }
}

$("#login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("patina-credential", $("#credential").value.trim());
  sessionStorage.setItem("patina-scheme", $("#scheme").value);
  $("#credential").value = "";
  refresh();
});
$("#refresh").addEventListener("click", refresh);
if (sessionStorage.getItem("patina-credential")) refresh();
