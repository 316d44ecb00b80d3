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
