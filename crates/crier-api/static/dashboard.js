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
