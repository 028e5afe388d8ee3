// orbitdock dashboard: folder upload with progress, the operation editor (validate, save,
// execute) through the ground's own API, and an execution's page followed live by server-sent
// events. Every write sends the page's CSRF token.
"use strict";

function csrf() {
  const m = document.querySelector('meta[name="csrf-token"]');
  return m ? m.content : "";
}

function api(method, path, body, type) {
  const headers = { "X-CSRF-Token": csrf() };
  if (type) headers["Content-Type"] = type;
  return fetch(path, { method, headers, body, credentials: "same-origin" }).then(async (r) => {
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch (_) { /* not JSON */ }
    return { ok: r.ok, status: r.status, json, text };
  });
}

function show(list, items) {
  list.replaceChildren(...items.map(([cls, text]) => {
    const li = document.createElement("li");
    li.className = cls;
    li.textContent = text;
    return li;
  }));
}

// Every file under a dropped entry, with its path relative to what was dropped.
async function walk(entry, prefix, out) {
  if (entry.isFile) {
    const file = await new Promise((ok, fail) => entry.file(ok, fail));
    out.push([file, prefix + file.name]);
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
      if (batch.length === 0) break;
      for (const e of batch) await walk(e, `${prefix}${entry.name}/`, out);
    }
  }
}

function setupUpload(form) {
  const ns = form.dataset.namespace;
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const send = (files) => {
    if (files.length === 0) { status.textContent = "Choose a folder or files first."; return; }
    const data = new FormData();
    for (const [f, path] of files) data.append("file", f, path);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/v1/namespaces/${encodeURIComponent(ns)}/files?to=${encodeURIComponent(form.to.value || "/")}`);
    xhr.setRequestHeader("X-CSRF-Token", csrf());
    bar.hidden = false;
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) { bar.max = e.total; bar.value = e.loaded; }
      status.textContent = `${e.loaded} of ${e.total} bytes`;
    };
    xhr.onload = () => {
      if (xhr.status === 201) { status.textContent = `Uploaded ${files.length} files.`; location.reload(); }
      else {
        let msg = xhr.responseText;
        try { msg = JSON.parse(xhr.responseText).error.message; } catch (_) { /* raw text */ }
        status.textContent = `Refused (${xhr.status}): ${msg}`;
      }
    };
    xhr.onerror = () => { status.textContent = "The upload failed: the ground is unreachable."; };
    xhr.send(data);
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    send([...form.folder.files, ...form.files.files].map((f) => [f, f.webkitRelativePath || f.name]));
  });
  form.addEventListener("dragover", (ev) => { ev.preventDefault(); form.classList.add("over"); });
  form.addEventListener("dragleave", () => form.classList.remove("over"));
  form.addEventListener("drop", async (ev) => {
    ev.preventDefault();
    form.classList.remove("over");
    const out = [];
    const entries = [...ev.dataTransfer.items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry());
    for (const e of entries) if (e) await walk(e, "", out);
    send(out);
  });
}

function setupEditor(form) {
  const list = document.getElementById("diagnostics");
  const yaml = () => form.yaml.value;
  const diagnostics = (r) => {
    const d = (r.json && (r.json.diagnostics || (r.json.error && r.json.error.diagnostics))) || [];
    const p = (r.json && (r.json.preflight || (r.json.error && r.json.error.preflight))) || [];
    const t = (r.json && r.json.triggers) || [];
    const onboard = (x) => (x.decided_onboard && x.decided_onboard.length)
      ? `; decided onboard, not predicted: ${x.decided_onboard.join(", ")} (the times are when the rest holds)` : "";
    const fires = (x) => (x.error ? `cannot predict: ${x.error}`
      : x.firings.length ? `fires ${x.firings[0].start} (holds until ${x.firings[0].end})`
      : `never before ${x.until}: the task would fail`) + onboard(x);
    return [
      ...d.map((x) => [x.severity, `line ${x.line}, column ${x.column}: ${x.message}`]),
      ...p.map((x) => [x.severity, `${x.task}: ${x.file}:${x.line}:${x.column}: ${x.code}: ${x.message}`]),
      ...t.map((x) => [x.error ? "warning" : "info", `trigger of ${x.task} on ${x.system} (${x.condition}): ${fires(x)}`]),
    ];
  };
  document.getElementById("validate").addEventListener("click", async () => {
    const r = await api("POST", "/api/v1/operations/validate", yaml(), "application/yaml");
    const items = diagnostics(r);
    if (r.ok && r.json && r.json.valid) items.unshift(["info", "Valid."]);
    show(list, items.length ? items : [["info", r.text]]);
  });
  document.getElementById("save").addEventListener("click", async () => {
    const r = await api("POST", "/api/v1/operations", yaml(), "application/yaml");
    if (r.ok && r.json) {
      location.href = `/operations/${encodeURIComponent(r.json.namespace)}/${encodeURIComponent(r.json.id)}`;
    } else {
      const items = diagnostics(r);
      show(list, items.length ? items : [["error", (r.json && r.json.error && r.json.error.message) || r.text]]);
    }
  });
  const exec = document.getElementById("execute");
  if (exec) exec.addEventListener("click", async () => {
    const [namespace, operation] = form.dataset.operation.split("/");
    const force = form.force.checked;
    if (force && !confirm("Start even though preflight found errors?")) return;
    const body = { namespace, operation, force };
    if (form.system.value) body.system = form.system.value;
    const r = await api("POST", "/api/v1/executions", JSON.stringify(body), "application/json");
    if (r.ok && r.json) { location.href = `/executions/${encodeURIComponent(r.json.id)}`; return; }
    const items = diagnostics(r);
    show(list, [["error", (r.json && r.json.error && r.json.error.message) || r.text], ...items]);
  });
}

// Puts `next`'s children in place of `old`'s where they differ: a table row by row, anything
// else whole, so that what did not change stays as it is (and is not read out again).
function patch(old, next) {
  const before = [...old.children];
  const after = [...next.children];
  after.forEach((n, i) => {
    const o = before[i];
    if (!o) old.appendChild(n);
    else if (o.isEqualNode(n)) return;
    else if (o.tagName === n.tagName && (o.tagName === "TABLE" || o.tagName === "TBODY")) patch(o, n);
    else o.replaceWith(n);
  });
  for (const o of before.slice(after.length)) o.remove();
}

const FINAL = new Set(["SUCCESS", "COMPLETED", "FAILED", "REJECTED", "CANCELLED"]);

// An execution's page: each of its server-sent events says it changed; the live region, rendered
// anew by the ground, then takes the old one's place. The page itself never reloads.
function follow(region, wait = 5000) {
  const source = new EventSource(region.dataset.events);
  // Refused (too many listeners, signed out) the source closes for good: try again later,
  // waiting longer each time. A stream the ground ended is taken up by the source itself.
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      setTimeout(() => follow(region, Math.min(wait * 2, 60000)), wait);
    }
  };
  let busy = false;
  let again = false;
  const refresh = async () => {
    if (busy) { again = true; return; }
    busy = true;
    try {
      do {
        again = false;
        const r = await fetch(region.dataset.region, { credentials: "same-origin", cache: "no-store" });
        if (!r.ok) break;
        const next = document.createElement("div");
        next.innerHTML = await r.text();
        patch(region, next);
      } while (again);
    } catch (_) {
      // The ground is unreachable: the next event tries again.
    } finally {
      busy = false;
    }
  };
  source.addEventListener("execution", (ev) => {
    let state = "";
    try { state = JSON.parse(ev.data).state; } catch (_) { /* not JSON: refresh anyway */ }
    if (FINAL.has(state)) source.close();
    refresh();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const upload = document.getElementById("upload");
  if (upload) setupUpload(upload);
  const editor = document.getElementById("editor");
  if (editor) setupEditor(editor);
  const live = document.getElementById("live");
  if (live && live.dataset.events) follow(live);
});

// Buttons that ask first; delegated, so those of a region put in place later ask too.
document.addEventListener("click", (ev) => {
  const b = ev.target.closest && ev.target.closest("button[data-confirm]");
  if (b && !confirm(b.dataset.confirm)) ev.preventDefault();
});
