// crier dashboard: small progressive enhancements; every page works without them.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Copy buttons: copy the target field's value, say so for screen readers too.
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const field = document.querySelector(button.dataset.copy);
      const note = button.parentElement.querySelector(".copied");
      field.select();
      try {
        await navigator.clipboard.writeText(field.value);
        if (note) note.textContent = "Copied.";
      } catch (e) {
        document.execCommand("copy");
        if (note) note.textContent = "Copied.";
      }
    });
  }
  // Forms that do something hard to undo ask first.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
  // The workspace switcher submits on change.
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }
  // Scope presets tick their scopes (the server applies the preset either way).
  const presets = document.querySelector("select[data-presets]");
  if (presets) {
    const boxes = [...document.querySelectorAll("#scope-boxes input[type=checkbox]")];
    presets.addEventListener("change", () => {
      const option = presets.selectedOptions[0];
      if (presets.value === "custom") return;
      const scopes = option.dataset.scopes === "*" ? null : option.dataset.scopes.split(" ");
      for (const box of boxes) {
        if (!box.disabled) box.checked = scopes === null || scopes.includes(box.value);
      }
    });
    for (const box of boxes) {
      box.addEventListener("change", () => { presets.value = "custom"; });
    }
  }
});

// The "Try it" console: read-only GETs to this API with a key typed here. The key is held in
// this page's memory only, sent to this origin only (a relative URL; the page's
// Content-Security-Policy allows no other), and never written to storage.
document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("try");
  if (!box) return;
  const key = document.getElementById("try-key");
  const op = document.getElementById("try-op");
  const path = document.getElementById("try-path");
  const status = document.getElementById("try-status");
  const output = document.getElementById("try-output");
  op.addEventListener("change", () => { path.value = op.value; });
  document.getElementById("try-send").addEventListener("click", async () => {
    const target = path.value.trim();
    if (!target.startsWith("/v1/") || target.includes("//") || target.includes("\\")) {
      status.textContent = "The path must start with /v1/ (this API only).";
      return;
    }
    status.textContent = "Sending…";
    output.textContent = "";
    try {
      const response = await fetch(target, {
        method: "GET",
        headers: { "Authorization": "Bearer " + key.value.trim() },
        credentials: "omit",
        cache: "no-store",
        redirect: "error",
      });
      const text = await response.text();
      let shown = text;
      try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON */ }
      status.textContent = response.status + " " + response.statusText + " · " + (response.headers.get("x-request-id") || "");
      output.textContent = shown;
    } catch (e) {
      status.textContent = "The request failed: " + e.message;
    }
  });
});

// The composer: a character counter per chosen network (graphemes or code points, as the
// network counts), and live preflight from the server's own rules (POST /app/posts/validate).
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("composer");
  if (!form) return;
  const body = document.getElementById("body");
  const thread = document.getElementById("thread");
  const counters = document.getElementById("counters");
  const preflight = document.getElementById("preflight");
  const boxes = [...form.querySelectorAll("input[name=account_id]")];
  const segmenter = window.Intl && Intl.Segmenter ? new Intl.Segmenter() : null;
  const count = (text, how) =>
    how === "graphemes" && segmenter ? [...segmenter.segment(text)].length : [...text].length;
  let timer = null;
  let seq = 0;
  const update = () => {
    counters.textContent = "";
    const seen = new Set();
    for (const box of boxes.filter((b) => b.checked)) {
      if (seen.has(box.dataset.platform)) continue;
      seen.add(box.dataset.platform);
      const max = Number(box.dataset.max);
      const n = count(body.value, box.dataset.counting);
      const li = document.createElement("li");
      li.className = n > max ? "over" : "";
      li.dataset.platform = box.dataset.platform;
      li.textContent = box.dataset.platform + ": " + n + " / " + max;
      counters.appendChild(li);
    }
    clearTimeout(timer);
    timer = setTimeout(check, 350);
  };
  const check = async () => {
    const accounts = boxes.filter((b) => b.checked).map((b) => b.value);
    if (accounts.length === 0 || body.value.trim() === "") { preflight.textContent = ""; return; }
    const parts = thread.value.split("\n---\n").map((p) => p.trim()).filter((p) => p);
    const mine = ++seq;
    const response = await fetch("/app/posts/validate", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": form.dataset.csrf },
      body: JSON.stringify({ body: body.value, thread: parts, account_ids: accounts }),
      credentials: "same-origin",
    });
    if (mine !== seq) return;
    const answer = await response.json();
    preflight.textContent = "";
    const p = document.createElement("p");
    if (answer.error) {
      p.className = "alert";
      p.textContent = answer.error.message;
    } else if (answer.valid) {
      p.className = "notice";
      p.textContent = "Every chosen network takes this post.";
    } else {
      p.className = "alert";
      p.textContent = answer.problems.map((x) => x.platform + " (" + x.field + "): " + x.message).join(" ");
      p.dataset.rules = answer.problems.map((x) => x.rule).join(" ");
    }
    preflight.appendChild(p);
  };
  body.addEventListener("input", update);
  thread.addEventListener("input", update);
  for (const box of boxes) box.addEventListener("change", update);
  update();
});
