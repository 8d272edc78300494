// Settings page: the software update box (GET /api/update, POST /api/update/{check,apply,
// rollback}; docs/update.md). An apply restarts the service: the page keeps polling through it.
"use strict";
(() => {
  const { api, explain, show, fmt } = phaeton;
  const $ = (id) => document.getElementById(id);
  let polling = false;

  function render(state) {
    const parts = ["running " + state.running];
    if (state.previous) parts.push("previous " + state.previous);
    if (state.channel) parts.push("channel " + state.channel);
    if (state.available) parts.push("available " + state.available);
    if (!state.unavailable && !state.key_configured) {
      parts.push("no release key configured (update.public_key)");
    }
    $("update-versions").textContent = parts.join(" · ");
    const progress = state.progress || {};
    const last = state.last_check || {};
    const busy = Boolean(state.busy);
    $("update-check").disabled = busy || Boolean(state.unavailable);
    $("update-apply").disabled = busy || Boolean(state.unavailable) || !state.available
      || !state.key_configured;
    $("update-apply").textContent = state.available ? "Install " + state.available : "Install";
    $("update-rollback").disabled = busy || Boolean(state.unavailable) || !state.previous;
    let text = state.unavailable || progress.message || last.message || "";
    let kind = null;
    if (state.unavailable) kind = "warn";
    else if (busy) kind = null;
    else if (["failed", "rolled_back"].includes(progress.state)) kind = "error";
    else if (progress.state === "done") kind = "ok";
    if (!busy && last.time && progress.message && last.message && progress.message !== last.message) {
      text += " — last check " + fmt.when(last.time) + ": " + last.message;
    }
    show($("update-message"), text, kind);
    $("update-log").textContent = (progress.log || []).join("\n");
    return busy;
  }

  async function refresh() {
    const result = await api("GET", "/api/update");
    if (!result.ok) {
      show($("update-message"), result.status === 0 ? "the service is restarting…" : explain(result),
        result.status === 0 ? null : "error");
      return polling;   // keep polling through a restart
    }
    return render(result.data);
  }

  async function poll() {
    if (polling) return;
    polling = true;
    try {
      while (await refresh()) await new Promise((done) => setTimeout(done, 2000));
    } finally {
      polling = false;
    }
  }

  async function post(url, body) {
    const result = await api("POST", url, body);
    if (!result.ok) { show($("update-message"), explain(result), "error"); return null; }
    return result.data;
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("update-check").addEventListener("click", async () => {
      show($("update-message"), "checking…");
      const data = await post("/api/update/check");
      if (data) await refresh();
      if (data && !data.ok) show($("update-message"), data.message, "error");
    });
    $("update-apply").addEventListener("click", async () => {
      if (await post("/api/update/apply", {})) poll();
    });
    $("update-rollback").addEventListener("click", async () => {
      if (!confirm("Switch back to the previous version? The service restarts.")) return;
      if (await post("/api/update/rollback")) poll();
    });
    poll();
  });
})();
