// Logs page: recent log records, level filter, follow, download.
"use strict";
(() => {
  const { api, explain, show, el } = phaeton;
  const $ = (id) => document.getElementById(id);

  async function load() {
    const level = $("level").value;
    $("download").href = "/api/logs.txt?level=" + level + "&limit=2000";
    const result = await api("GET", "/api/logs?level=" + level + "&limit=500");
    if (!result.ok) { show($("logs-message"), explain(result), "error"); return; }
    show($("logs-message"), result.data.records.length ? "" : "No log lines at this level yet.");
    $("log-rows").replaceChildren(...result.data.records.slice().reverse().map((r) => el("tr", { class: "level-" + r.level },
      el("td", { class: "num", text: new Date(r.time * 1000).toLocaleTimeString() }),
      el("td", { text: r.level }),
      el("td", {}, el("pre", { class: "log", text: r.logger + ": " + r.message })))));
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("level").addEventListener("change", load);
    $("refresh").addEventListener("click", load);
    setInterval(() => { if ($("follow").checked) load(); }, 5000);
    load();
  });
})();
