// The admin backup page. Plain script, no framework and no build step. Everything shown from
// the server (backup names, labels, problem texts) is written with textContent: names come
// from a backup root that may hold anything, and the page's policy (Trusted Types) refuses
// every HTML-parsing sink anyway.
"use strict";

(() => {
  const API = "../v1/admin/";
  const TOKEN_KEY = "coffer.admin.token";
  // A followed job's event stream is reopened at most this many times (e.g. through a
  // proxy that cuts long responses) before the page gives up and says so.
  const MAX_RECONNECTS = 20;
  const CONFIRM_WORD = "restore";

  const $ = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  let token = sessionStorage.getItem(TOKEN_KEY);
  let maxUploadBytes = null;
  // The backup job the table shows as a row of its own while it runs.
  let backupJob = null;
  // The ids of jobs whose events are being followed.
  const following = new Set();
  // The backup a job of this page just made, and how that job ended.
  let justMade = null;
  let deleting = null;
  // The token's role as the list reports it; admin-only actions are hidden (not merely
  // disabled) until it is known to be "admin".
  let role = null;

  class Unauthorized extends Error {}

  // --- the API ---------------------------------------------------------------------------

  async function api(path, options = {}) {
    const headers = new Headers(options.headers || {});
    headers.set("Authorization", "Bearer " + token);
    const response = await fetch(API + path, {
      ...options,
      headers,
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
    if (response.status === 401) {
      signOut("The server refused the token (401): paste a valid one.");
      throw new Unauthorized();
    }
    return response;
  }

  // The problem document (RFC 9457) of a failed response, or a stand-in.
  async function problemOf(response) {
    const text = await response.text();
    try {
      const doc = JSON.parse(text);
      if (doc && typeof doc === "object" && typeof doc.title === "string") {
        return doc;
      }
    } catch (_) {
      // Not JSON: described below.
    }
    return { title: `The server answered ${response.status}`, detail: text.slice(0, 500) };
  }

  function fillProblem(prefix, problem) {
    $(prefix + "-title").textContent = problem.title || "Something failed";
    $(prefix + "-detail").textContent = problem.detail || "";
    const list = $(prefix + "-reasons");
    list.replaceChildren(
      ...(Array.isArray(problem.reasons) ? problem.reasons : []).map((reason) => {
        const item = document.createElement("li");
        item.textContent = String(reason);
        return item;
      }),
    );
    $(prefix).hidden = false;
  }

  function showProblem(problem) {
    fillProblem("problem", problem);
    $("problem-close").focus();
  }

  function clearProblem() {
    $("problem").hidden = true;
  }

  function networkProblem(error) {
    return { title: "The server cannot be reached", detail: String(error && error.message || error) };
  }

  function setStatus(text) {
    $("status").textContent = text;
  }

  // --- formatting ------------------------------------------------------------------------

  function formatBytes(bytes) {
    if (typeof bytes !== "number" || !isFinite(bytes) || bytes < 0) return "—";
    // Decimal units, as the stacks announce the upload limit ("10 GB").
    const units = ["B", "kB", "MB", "GB", "TB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1000 && unit < units.length - 1) {
      value /= 1000;
      unit += 1;
    }
    return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
  }

  function formatDate(text) {
    if (typeof text !== "string") return "—";
    const date = new Date(text);
    return isNaN(date.getTime()) ? text : date.toLocaleString();
  }

  function formatRevision(head) {
    if (typeof head === "string") return head;
    if (Array.isArray(head)) return head.length ? head.join(", ") : "(none)";
    return "—";
  }

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function cell(label, ...children) {
    const td = document.createElement("td");
    td.setAttribute("data-label", label);
    td.append(...children);
    return td;
  }

  function badge(text, kind) {
    return element("span", text, "badge " + (kind || text));
  }

  // --- the table -------------------------------------------------------------------------

  // The library's step says what runs (checks, dumping, manifest, renaming, pruning,
  // syncing, hooks); while artifacts stream their bytes say more, and once all are done the
  // step says what the job is finishing with.
  function progressText(job) {
    const step = job.step ? String(job.step) : null;
    const artifacts = Object.entries(job.artifacts || {});
    if (!artifacts.length) return step ? `${step}…` : "starting…";
    const parts = artifacts.map(
      ([role, artifact]) => `${role} ${formatBytes(artifact.bytes)}${artifact.done ? " ✓" : ""}`,
    );
    if (!isFinal(job.state) && artifacts.every(([, artifact]) => artifact.done)) {
      parts.push(step ? `${step}…` : "finishing…");
    }
    return parts.join(" · ");
  }

  // The bar counts finished artifacts (their sizes are not known in advance); before the
  // first one starts it is indeterminate.
  function updateBar(bar, job) {
    const artifacts = Object.values(job.artifacts || {});
    if (job.state === "succeeded") {
      bar.max = 1;
      bar.value = 1;
    } else if (artifacts.length) {
      bar.max = Math.max(2, artifacts.length);
      bar.value = artifacts.filter((a) => a.done).length + 0.5;
    } else {
      bar.removeAttribute("value");
    }
  }

  function jobRow(job) {
    const row = document.createElement("tr");
    row.className = "job";
    row.dataset.job = job.id;
    row.dataset.state = job.state;
    const title = element("span", "New manual backup");
    const bar = document.createElement("progress");
    bar.setAttribute("aria-label", "Backup progress");
    updateBar(bar, job);
    const text = element("span", progressText(job), "progress-text");
    text.setAttribute("aria-live", "polite");
    row.append(
      cell("NAME", title, badge(job.state, job.state), bar, text),
      cell("KIND", "manual"),
      cell("CREATED", formatDate(job.created)),
      cell("SIZE", "—"),
      cell("DB REVISION", "—"),
      cell("ACTIONS", element("span", "—")),
    );
    return row;
  }

  function backupRow(backup) {
    const row = document.createElement("tr");
    row.dataset.name = String(backup.name);
    const name = cell("NAME", element("span", backup.name, "backup-name"));
    name.className = "name";
    if (backup.label) name.append(element("span", backup.label, "label"));
    const status = backup.status && backup.status.status;
    if (justMade && justMade.name === backup.name) {
      row.dataset.state = justMade.state;
      name.append(badge(justMade.state));
    }
    if (status && status !== "complete") {
      const b = badge(status);
      if (backup.status.reason) b.title = String(backup.status.reason);
      name.append(b);
    }
    if (backup.future_dated) name.append(badge("future-dated", "failed"));

    const actions = cell("ACTIONS");
    const actionBox = element("div", null, "actions");
    actions.append(actionBox);
    if (status === "complete" || status === "legacy") {
      const download = element("button", "Download", "secondary download");
      download.type = "button";
      download.setAttribute("aria-label", `Download ${backup.name}`);
      download.addEventListener("click", () => downloadBackup(backup.name, download));
      actionBox.append(download);
    }
    if (backup.kind === "manual") {
      // A viewer's token may not delete: no button to meet a 403 with.
      if (isAdmin()) {
        const remove = element("button", "Delete", "secondary delete");
        remove.type = "button";
        remove.setAttribute("aria-label", `Delete ${backup.name}`);
        remove.addEventListener("click", () => askDelete(backup.name, remove));
        actionBox.append(remove);
      }
    } else {
      const lock = element("span", null, "lock");
      lock.title = "Removed by the retention rules only";
      lock.append(element("span", "Locked, removed by ", "visually-hidden"), "retention");
      actionBox.append(lock);
    }
    row.append(
      name,
      cell("KIND", backup.kind || "unknown"),
      cell("CREATED", formatDate(backup.created)),
      cell("SIZE", formatBytes(backup.size_bytes)),
      cell("DB REVISION", formatRevision(backup.alembic_head)),
      actions,
    );
    return row;
  }

  let lastBackups = [];

  function render() {
    const rows = [];
    if (backupJob && !isFinal(backupJob.state)) rows.push(jobRow(backupJob));
    for (const backup of lastBackups) rows.push(backupRow(backup));
    $("rows").replaceChildren(...rows);
    $("backups").hidden = rows.length === 0;
    $("empty").hidden = rows.length !== 0;
  }

  function isAdmin() {
    return role === "admin";
  }

  // Shows the admin-only controls for an admin token and hides them for any other.
  function applyRole(newRole) {
    role = newRole === "admin" || newRole === "viewer" ? newRole : null;
    for (const id of ["run", "upload-open", "empty-run"]) $(id).hidden = !isAdmin();
  }

  function isFinal(state) {
    return state === "succeeded" || state === "failed";
  }

  async function refresh() {
    let response;
    try {
      response = await api("backup/list");
    } catch (error) {
      if (!(error instanceof Unauthorized)) showProblem(networkProblem(error));
      return false;
    }
    if (!response.ok) {
      showProblem(await problemOf(response));
      return false;
    }
    const data = await response.json();
    if (typeof data.max_upload_bytes === "number") maxUploadBytes = data.max_upload_bytes;
    applyRole(data.role);
    lastBackups = Array.isArray(data.backups) ? data.backups : [];
    const running = data.running_job;
    if (running && running.operation === "backup" && !isFinal(running.state)) {
      backupJob = running;
      followBackup(running);
    }
    render();
    return true;
  }

  // --- following a job over Server-Sent Events -------------------------------------------
  // EventSource cannot send the Authorization header, so the stream is read with fetch().

  async function follow(id, onUpdate) {
    for (let attempt = 0; attempt <= MAX_RECONNECTS; attempt += 1) {
      try {
        const response = await api(`jobs/${encodeURIComponent(id)}/events`, {
          headers: { Accept: "text/event-stream" },
        });
        if (!response.ok) return { state: "failed", error: await problemOf(response) };
        const outcome = await readEvents(response.body, onUpdate);
        if (outcome) return outcome;
      } catch (error) {
        if (error instanceof Unauthorized) throw error;
      }
      // The stream ended without the outcome: reconnect (the server sends the current state).
      await sleep(Math.min(500 * 2 ** attempt, 5000));
    }
    return {
      state: "failed",
      error: { title: "Lost the job's progress", detail: `Job ${id}: reload the page to see how it ended.` },
    };
  }

  // Parses the event stream; calls onUpdate with every job snapshot and returns the one of
  // the `outcome` event, or null when the stream ends before it.
  async function readEvents(body, onUpdate) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let name = "message";
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return null;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        let line = buffer.slice(0, end);
        buffer = buffer.slice(end + 1);
        if (line.endsWith("\r")) line = line.slice(0, -1);
        if (line === "") {
          if (data.length) {
            const job = JSON.parse(data.join("\n"));
            onUpdate(job);
            if (name === "outcome") {
              reader.cancel().catch(() => {});
              return job;
            }
          }
          name = "message";
          data = [];
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const rest = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") name = rest;
          else if (field === "data") data.push(rest);
        }
      }
    }
  }

  function updateJobRow(job) {
    const row = document.querySelector(`tr.job[data-job="${CSS.escape(job.id)}"]`);
    if (!row) return render();
    row.dataset.state = job.state;
    const b = row.querySelector(".badge");
    b.textContent = job.state;
    b.className = "badge " + job.state;
    updateBar(row.querySelector("progress"), job);
    row.querySelector(".progress-text").textContent = progressText(job);
  }

  async function followBackup(job) {
    if (following.has(job.id)) return;
    following.add(job.id);
    try {
      const outcome = await follow(job.id, (view) => {
        backupJob = view;
        updateJobRow(view);
      });
      backupJob = null;
      const path = outcome.result && outcome.result.report && outcome.result.report.path;
      if (outcome.state === "succeeded" && typeof path === "string") {
        justMade = { name: path.split("/").pop(), state: "succeeded" };
        setStatus(`Backup ${justMade.name} succeeded.`);
      } else {
        justMade = null;
        setStatus("The backup failed.");
        showProblem(outcome.error || { title: "The backup failed" });
      }
      await refresh();
    } catch (error) {
      if (!(error instanceof Unauthorized)) showProblem(networkProblem(error));
    } finally {
      following.delete(job.id);
    }
  }

  // --- actions ---------------------------------------------------------------------------

  async function runBackup() {
    clearProblem();
    const button = $("run");
    button.disabled = true;
    try {
      const response = await api("backup/trigger", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ kind: "manual" }),
      });
      if (response.status !== 202) {
        showProblem(await problemOf(response));
        return;
      }
      const job = await response.json();
      backupJob = job;
      justMade = null;
      setStatus("Backup started.");
      render();
      followBackup(job);
    } catch (error) {
      if (!(error instanceof Unauthorized)) showProblem(networkProblem(error));
    } finally {
      button.disabled = false;
    }
  }

  function filenameOf(response, fallback) {
    const disposition = response.headers.get("Content-Disposition") || "";
    const match = /filename="([A-Za-z0-9._-]+)"/.exec(disposition);
    return match ? match[1] : fallback;
  }

  async function downloadBackup(name, button) {
    clearProblem();
    button.disabled = true;
    setStatus(`Downloading ${name}…`);
    try {
      const response = await api(`backup/${encodeURIComponent(name)}/download`);
      if (!response.ok) {
        showProblem(await problemOf(response));
        setStatus("");
        return;
      }
      const file = filenameOf(response, "backup.tar");
      const url = URL.createObjectURL(await response.blob());
      const link = document.createElement("a");
      link.href = url;
      link.download = file;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      setStatus(`Downloaded ${file}.`);
    } catch (error) {
      if (!(error instanceof Unauthorized)) showProblem(networkProblem(error));
    } finally {
      button.disabled = false;
    }
  }

  function askDelete(name, button) {
    deleting = { name, button };
    $("delete-name").textContent = name;
    $("delete-dialog").showModal();
    $("delete-cancel").focus();
  }

  async function confirmDelete() {
    const target = deleting;
    $("delete-dialog").close();
    if (!target) return;
    clearProblem();
    try {
      const response = await api(`backup/${encodeURIComponent(target.name)}`, { method: "DELETE" });
      if (!response.ok) {
        showProblem(await problemOf(response));
        return;
      }
      setStatus(`Deleted ${target.name}.`);
      await refresh();
      $("run").focus();
    } catch (error) {
      if (!(error instanceof Unauthorized)) showProblem(networkProblem(error));
    }
  }

  // --- upload and restore ----------------------------------------------------------------

  function uploadReady() {
    const file = $("upload-file").files[0];
    $("upload-restore").disabled = !(file && $("upload-confirm").value === CONFIRM_WORD);
  }

  function openUpload() {
    clearProblem();
    $("upload-file").value = "";
    $("upload-confirm").value = "";
    $("upload-problem").hidden = true;
    $("upload-progress-box").hidden = true;
    $("upload-limit").textContent =
      maxUploadBytes === null
        ? "The server sets the largest upload it accepts."
        : `At most ${formatBytes(maxUploadBytes)}.`;
    uploadReady();
    $("upload-dialog").showModal();
    $("upload-file").focus();
  }

  function uploadStep(text, fraction) {
    $("upload-progress-box").hidden = false;
    $("upload-step").textContent = text;
    const bar = $("upload-progress");
    if (fraction === null) bar.removeAttribute("value");
    else bar.value = fraction;
  }

  // XMLHttpRequest rather than fetch: it reports upload progress, and streams the file.
  function send(file) {
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open("POST", API + "backup/restore");
      request.setRequestHeader("Authorization", "Bearer " + token);
      request.setRequestHeader("X-Confirm-Restore", "yes");
      request.setRequestHeader("Content-Type", "application/octet-stream");
      request.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) {
          uploadStep(`Uploading: ${formatBytes(event.loaded)} of ${formatBytes(event.total)}`, event.loaded / event.total);
        }
      });
      request.addEventListener("load", () => resolve(request));
      request.addEventListener("error", () => reject(new Error("the upload was interrupted")));
      request.addEventListener("abort", () => reject(new Error("the upload was cancelled")));
      request.send(file);
    });
  }

  async function uploadAndRestore() {
    const file = $("upload-file").files[0];
    if (!file || $("upload-confirm").value !== CONFIRM_WORD) return;
    $("upload-problem").hidden = true;
    if (maxUploadBytes !== null && file.size > maxUploadBytes) {
      fillProblem("upload-problem", {
        title: "The file is too large",
        detail: `${file.name} is ${formatBytes(file.size)}; the server accepts at most ${formatBytes(maxUploadBytes)}.`,
      });
      return;
    }
    $("upload-restore").disabled = true;
    $("upload-confirm").value = "";
    try {
      uploadStep("Uploading…", 0);
      const request = await send(file);
      if (request.status === 401) {
        $("upload-dialog").close();
        signOut("The server refused the token (401): paste a valid one.");
        return;
      }
      if (request.status !== 202) {
        let problem;
        try {
          problem = JSON.parse(request.responseText);
        } catch (_) {
          problem = { title: `The server answered ${request.status}`, detail: request.responseText.slice(0, 500) };
        }
        fillProblem("upload-problem", problem);
        $("upload-progress-box").hidden = true;
        return;
      }
      const job = JSON.parse(request.responseText);
      uploadStep("Restoring…", null);
      const outcome = await follow(job.id, (view) => {
        if (!isFinal(view.state)) uploadStep(`Restoring: ${progressText(view)}`, null);
      });
      if (outcome.state === "succeeded") {
        uploadStep("Restore succeeded.", 1);
        $("upload-dialog").dataset.outcome = "succeeded";
        setStatus(`Restored from ${file.name}.`);
        await refresh();
      } else {
        $("upload-progress-box").hidden = true;
        $("upload-dialog").dataset.outcome = "failed";
        fillProblem("upload-problem", outcome.error || { title: "The restore failed" });
      }
    } catch (error) {
      if (!(error instanceof Unauthorized)) {
        $("upload-progress-box").hidden = true;
        fillProblem("upload-problem", networkProblem(error));
      }
    } finally {
      uploadReady();
    }
  }

  // --- signing in and out ----------------------------------------------------------------

  function signOut(message) {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    applyRole(null);
    for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
    $("app").hidden = true;
    $("sign-out").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("token").value = "";
    $("token").focus();
  }

  async function signIn(candidate) {
    token = candidate;
    $("login-error").textContent = "";
    $("login").hidden = true;
    $("app").hidden = false;
    $("sign-out").hidden = false;
    if (await refresh()) {
      sessionStorage.setItem(TOKEN_KEY, candidate);
      $("main").focus();
    }
  }

  function start() {
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("token").value.trim();
      if (!value) {
        $("login-error").textContent = "Paste a token first.";
        return;
      }
      signIn(value);
    });
    $("sign-out").addEventListener("click", () => signOut(""));
    $("run").addEventListener("click", runBackup);
    $("problem-close").addEventListener("click", () => {
      clearProblem();
      (isAdmin() ? $("run") : $("main")).focus();
    });
    $("delete-cancel").addEventListener("click", () => {
      const target = deleting;
      $("delete-dialog").close();
      if (target) target.button.focus();
    });
    $("delete-confirm").addEventListener("click", confirmDelete);
    $("upload-open").addEventListener("click", openUpload);
    $("upload-file").addEventListener("change", uploadReady);
    $("upload-confirm").addEventListener("input", uploadReady);
    $("upload-restore").addEventListener("click", uploadAndRestore);
    $("upload-cancel").addEventListener("click", () => {
      $("upload-dialog").close();
      $("upload-open").focus();
    });
    if (token) signIn(token);
    else signOut("");
  }

  start();
})();
