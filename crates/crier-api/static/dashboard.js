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
  const mediaIds = () => [...form.querySelectorAll("input[name=media_id]:checked")].map((b) => b.value);
  const check = async () => {
    const accounts = boxes.filter((b) => b.checked).map((b) => b.value);
    if (accounts.length === 0 || body.value.trim() === "") { preflight.textContent = ""; return; }
    const parts = thread.value.split("\n---\n").map((p) => p.trim()).filter((p) => p);
    const mine = ++seq;
    const response = await fetch("/app/posts/validate", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": form.dataset.csrf },
      body: JSON.stringify({ body: body.value, thread: parts, account_ids: accounts, media_ids: mediaIds() }),
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
  form.addEventListener("change", (event) => { if (event.target.name === "media_id") update(); });
  update();

  // Uploads: each chosen file gets an upload URL (POST /app/media/upload-url), its bytes go
  // straight to that signed URL with a progress bar, then it is confirmed and attached.
  const picker = document.getElementById("media-file");
  if (!picker) return;
  const uploads = document.getElementById("uploads");
  const library = document.getElementById("media-list");
  const call = async (path, payload) => {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": form.dataset.csrf },
      body: payload === undefined ? "" : JSON.stringify(payload),
      credentials: "same-origin",
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error ? answer.error.message : "HTTP " + response.status);
    return answer;
  };
  const send = (upload, file, bar) => new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(upload.method, upload.url);
    // The browser sets Content-Length from the file itself.
    for (const [name, value] of Object.entries(upload.headers)) {
      if (name.toLowerCase() !== "content-length") xhr.setRequestHeader(name, value);
    }
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) bar.value = Math.round((e.loaded / e.total) * 100);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) return resolve();
      let message = "the upload failed (HTTP " + xhr.status + ")";
      try { message = JSON.parse(xhr.responseText).error.message; } catch (_) { /* not JSON */ }
      reject(new Error(message));
    });
    xhr.addEventListener("error", () => reject(new Error("the upload was interrupted")));
    xhr.send(file);
  });
  const uploadOne = async (file) => {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = file.name + " ";
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", "Uploading " + file.name);
    const state = document.createElement("span");
    state.className = "upload-state";
    state.textContent = "uploading";
    li.append(name, bar, " ", state);
    uploads.appendChild(li);
    try {
      const media = await call("/app/media/upload-url", { filename: file.name, content_type: file.type, size: file.size });
      await send(media.upload, file, bar);
      const ready = await call("/app/media/" + encodeURIComponent(media.id) + "/confirm");
      bar.value = 100;
      state.textContent = "ready";
      li.dataset.mediaId = ready.id;
      const item = document.createElement("li");
      const label = document.createElement("label");
      label.className = "check";
      const box = document.createElement("input");
      box.type = "checkbox";
      box.name = "media_id";
      box.value = ready.id;
      box.checked = true;
      const kind = document.createElement("span");
      kind.className = "muted";
      kind.textContent = ready.content_type;
      label.append(box, " " + ready.filename + " ", kind);
      item.appendChild(label);
      library.appendChild(item);
      update();
    } catch (e) {
      li.classList.add("failed");
      state.textContent = e.message;
    }
  };
  picker.addEventListener("change", async () => {
    const files = [...picker.files];
    picker.value = "";
    await Promise.all(files.map(uploadOne));
  });
});
