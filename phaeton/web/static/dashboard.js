// Dashboard: live status over Server-Sent Events, the charger's controls.
"use strict";
(() => {
  const { api, explain, show, fmt, el } = phaeton;
  const $ = (id) => document.getElementById(id);
  let status = null;
  let staleAfterMs = 6000 + 1000;
  let lastEventAt = 0;
  let source = null;
  let sliderBusy = false;

  function setWire(id, watts, towardsHub) {
    const wire = $(id);
    const on = watts !== null && watts !== undefined && Math.abs(watts) >= 10;
    wire.classList.toggle("on", on);
    wire.classList.toggle("rev", on && !towardsHub);
  }

  function sum(list) {
    if (!Array.isArray(list) || list.every((v) => v === null)) return null;
    return list.reduce((a, v) => a + (v || 0), 0);
  }

  function renderFlow(p) {
    $("pv-w").textContent = fmt.power(p.pv_w);
    setWire("wire-pv", p.pv_w, true);
    const grid = sum(p.grid_w);
    $("grid-w").textContent = fmt.power(grid === null ? null : Math.abs(grid));
    $("grid-dir").textContent = grid === null ? "—" : grid >= 10 ? "import" : grid <= -10 ? "export" : "idle";
    setWire("wire-grid", grid, grid >= 0);
    $("house-w").textContent = fmt.power(p.house_w);
    setWire("wire-house", p.house_w, false);
    const bat = p.battery_w;
    $("bat-w").textContent = bat === null || bat === undefined ? "—"
      : fmt.power(Math.abs(bat)) + (bat > 10 ? " in" : bat < -10 ? " out" : "");
    $("bat-soc").textContent = p.battery_soc_pct === null || p.battery_soc_pct === undefined
      ? "" : Math.round(p.battery_soc_pct) + " %";
    setWire("wire-bat", bat, bat < 0);  // positive = the battery charges
    $("ev-w").textContent = fmt.power(p.ev_w);
    setWire("wire-ev", p.ev_w, false);
    const bars = $("phase-bars");
    bars.replaceChildren();
    const currents = p.grid_current_a || [];
    currents.forEach((amps, i) => {
      const share = amps === null || !p.fuse_a ? 0 : Math.min(1, Math.abs(amps) / p.fuse_a);
      const fill = el("span", { class: share >= 1 ? "over" : share >= 0.85 ? "high" : null });
      fill.style.width = (share * 100).toFixed(1) + "%";
      const label = "L" + (i + 1) + ": " + fmt.num(amps, 1, "A") + " of " + fmt.num(p.fuse_a, 0, "A");
      bars.append(el("div", { class: "bar", id: "phase-" + (i + 1), title: label }, fill, el("b", { text: label })));
    });
  }

  function render(s) {
    status = s;
    renderFlow(s.power || {});
    $("status-text").textContent = s.status_text || "—";
    $("reason").textContent = s.reason || "";
    $("bound-by").textContent = s.bound_by || "—";
    for (const mode of [0, 1, 2]) $("mode-" + mode).setAttribute("aria-pressed", String(s.mode === mode));
    $("start-stop").textContent = s.start_stop ? "Stop charging" : "Start charging";
    $("auto-start").checked = !!s.auto_start;
    for (const n of [1, 3]) $("phases-" + n).setAttribute("aria-pressed", String(s.phases === n));
    $("phases-in-use").textContent = s.phases_in_use ? "in use: " + s.phases_in_use : "";
    const slider = $("current");
    slider.min = s.min_current_a ?? 6;
    slider.max = s.max_current_a ?? 16;
    if (!sliderBusy) {
      slider.value = s.set_current_a ?? slider.min;
      $("current-value").textContent = fmt.num(s.set_current_a, 0, "A");
    }
    $("current-range").textContent = "(" + fmt.num(s.min_current_a, 0) + "–" + fmt.num(s.max_current_a, 0, "A") + ")";
    const c = s.charger || {};
    $("charger-info").textContent = c.connected
      ? [c.model, c.serial, c.firmware && "fw " + c.firmware, c.connection].filter(Boolean).join(" · ")
      : "not connected" + (c.error ? ": " + c.error : "");
    const session = s.session || {};
    $("session-state").textContent = session.active ? "charging session running" : "no session";
    $("session-energy").textContent = fmt.num(session.energy_kwh, 2, "kWh");
    $("session-time").textContent = fmt.duration(session.duration_s);
    $("session-cost").textContent = session.cost === null || session.cost === undefined
      ? "—" : Number(session.cost).toFixed(2) + " " + (session.currency || "");
    $("session-solar").textContent = fmt.pct(session.solar_share);
    const readings = $("readings");
    readings.textContent = s.readings_stale ? "GX readings stale" : "GX readings fresh";
    readings.className = "badge " + (s.readings_stale ? "stale" : "live");
    $("updated").textContent = s.time ? "updated " + new Date(s.time * 1000).toLocaleTimeString() : "";
  }

  function checkLive() {
    const live = $("live");
    const fresh = lastEventAt && Date.now() - lastEventAt <= staleAfterMs;
    live.textContent = fresh ? "live" : lastEventAt ? "stale" : "connecting…";
    live.className = "badge " + (fresh ? "live" : lastEventAt ? "stale" : "");
  }

  function connect() {
    if (source) source.close();
    source = new EventSource("/api/events");
    source.addEventListener("hello", (event) => {
      const hello = JSON.parse(event.data);
      staleAfterMs = hello.stale_after_s * 1000 + 1000;
    });
    source.addEventListener("status", (event) => {
      lastEventAt = Date.now();
      render(JSON.parse(event.data));
      checkLive();
    });
    source.onerror = () => {
      checkLive();
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 3000);
    };
  }

  async function send(url, body) {
    const message = $("control-message");
    show(message, "sending…");
    const result = await api("POST", url, body);
    if (result.ok) show(message, "done", "ok");
    else show(message, explain(result), "error");
    return result.ok;
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const mode of [0, 1, 2]) $("mode-" + mode).addEventListener("click", () => send("/api/mode", { mode }));
    for (const phases of [1, 3]) $("phases-" + phases).addEventListener("click", () => send("/api/phases", { phases }));
    $("start-stop").addEventListener("click", () => send("/api/startstop", { start_stop: status && status.start_stop ? 0 : 1 }));
    $("auto-start").addEventListener("change", (event) => send("/api/autostart", { auto_start: event.target.checked ? 1 : 0 }));
    const slider = $("current");
    slider.addEventListener("input", () => { sliderBusy = true; $("current-value").textContent = slider.value + " A"; });
    slider.addEventListener("change", async () => {
      await send("/api/current", { current_a: Number(slider.value) });
      sliderBusy = false;
    });
    connect();
    setInterval(checkLive, 1000);
  });
})();
