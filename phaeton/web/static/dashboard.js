// Dashboard: live status over Server-Sent Events, the chargers' controls.
// One charger: the page as always, its writes to /api/<control>. Several: one card per charger
// (a copy of the first card), each writing to /api/chargers/<id>/<control>.
"use strict";
(() => {
  const { api, explain, show, fmt, el } = phaeton;
  const $ = (id) => document.getElementById(id);
  let staleAfterMs = 6000 + 1000;
  let lastEventAt = 0;
  let source = null;
  let pristine = null;     // the first charger card as the page came, copied for further chargers
  let cards = [];          // one per charger; cards[0] is the page's own card
  let layoutKey = null;    // the charger ids the cards were made for
  let multi = false;       // more than one charger

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

  function chargerName(c) {
    return (c.charger && c.charger.name) || "Charger " + c.id;
  }

  function renderFlow(p, chargers) {
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
    // several chargers: each one's power under the flow (the EV box has their sum)
    $("ev-chargers").replaceChildren(...(multi ? chargers.flatMap((c, i) => [
      el("dt", { text: "EV · " + chargerName(c) }),
      el("dd", { id: "ev-w-" + i, "data-charger": c.id, text: fmt.power(c.ev_w) })]) : []));
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

  // ---- one charger's card ---------------------------------------------------------------

  // A card: its root <section>, the charger's id, its last status; parts are found by
  // data-part (the first card's parts are its elements' ids, a copy's ids get "--<index>").
  function makeCard(root, index) {
    const card = { root, index, id: null, status: null, sliderBusy: false };
    card.part = (name) => root.querySelector('[data-part="' + name + '"]');
    bind(card);
    return card;
  }

  function nameParts(root, suffix) {
    for (const node of root.querySelectorAll("[id]")) {
      node.dataset.part = node.id;
      if (suffix) node.id = node.id + suffix;
    }
    if (suffix) for (const label of root.querySelectorAll("label[for]")) label.htmlFor += suffix;
  }

  function controlUrl(card, control) {
    return multi ? "/api/chargers/" + encodeURIComponent(card.id) + "/" + control : "/api/" + control;
  }

  async function send(card, control, body) {
    const message = card.part("control-message");
    show(message, "sending…");
    const result = await api("POST", controlUrl(card, control), body);
    if (result.ok) show(message, "done", "ok");
    else show(message, explain(result), "error");
    return result.ok;
  }

  function bind(card) {
    for (const mode of [0, 1, 2]) card.part("mode-" + mode).addEventListener("click", () => send(card, "mode", { mode }));
    for (const phases of [1, 3]) card.part("phases-" + phases).addEventListener("click", () => send(card, "phases", { phases }));
    card.part("start-stop").addEventListener("click", () => send(card, "startstop", { start_stop: card.status && card.status.start_stop ? 0 : 1 }));
    card.part("car-soc-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = card.part("car-soc-input");
      if (await send(card, "vehicle_soc", { soc_pct: Number(input.value) })) input.value = "";
    });
    card.part("auto-start").addEventListener("change", (event) => send(card, "autostart", { auto_start: event.target.checked ? 1 : 0 }));
    const slider = card.part("current");
    slider.addEventListener("input", () => { card.sliderBusy = true; card.part("current-value").textContent = slider.value + " A"; });
    slider.addEventListener("change", async () => {
      await send(card, "current", { current_a: Number(slider.value) });
      card.sliderBusy = false;
    });
  }

  // What the car really takes, beside what it is offered: the setpoint alone hides a car that
  // draws less (its own limit, a cold battery) or nothing at all (full).
  function carDraws(s) {
    const offered = s.offered_current_a;
    const offer = offered === null || offered === undefined ? "" : "of " + fmt.num(offered, 1, "A") + " offered";
    const soc = s.car || s.vehicle_soc_pct === null || s.vehicle_soc_pct === undefined ? "" : "car at " + fmt.num(s.vehicle_soc_pct, 0, "%");
    if (s.car_full) return ["car full: takes no current", offer ? "(" + offer + ")" : "", soc].filter(Boolean).join(" ");
    const amps = (s.current_a || []).map((a, i) => (a === null || a === undefined ? null : "L" + (i + 1) + " " + fmt.num(a, 1))).filter(Boolean);
    if (!amps.length) return [offer && "— " + offer, soc].filter(Boolean).join(" · ") || "—";
    const top = Math.max(...(s.current_a || []).filter((a) => typeof a === "number").map(Math.abs));
    return [fmt.num(top, 1, "A") + " (" + amps.join(" · ") + ")", fmt.power(s.ev_w), offer, soc].filter(Boolean).join(" · ");
  }

  // The car at this charger: its own SoC, how old the reading is and where it came from; a
  // stale reading is shown as such (the planner does not use it).
  function carText(car) {
    if (!car) return "—";
    if (car.soc_pct === null || car.soc_pct === undefined) {
      return car.name + ": SoC unknown" + (car.problem ? " (" + car.problem + ")" : "");
    }
    const parts = [car.name + " at " + fmt.num(car.soc_pct, 0, "%")];
    if (car.range_km !== null && car.range_km !== undefined) parts.push(fmt.num(car.range_km, 0, "km"));
    parts.push((car.stale ? "stale, " : "") + fmt.duration(car.age_s) + " ago from " + car.source
      + (car.charged_since_kwh >= 0.05 ? " +" + fmt.num(car.charged_since_kwh, 1, "kWh") + " charged since" : ""));
    if (car.problem) parts.push(car.problem);
    return parts.join(" · ");
  }

  // The planned car's goal (the first charger's car) from the plan: target by departure and
  // whether the plan gets there. Re-read every minute; a re-plan is at most that stale.
  async function loadGoal() {
    const result = await api("GET", "/api/plan");
    const goal = result.ok && result.data.plan ? result.data.plan.ev : null;
    cards[0].part("car-goal").textContent = goalText(goal);
  }

  function goalText(goal) {
    if (!goal) return "—";
    const target = goal.target_kwh !== null && goal.target_kwh !== undefined
      ? "+" + fmt.num(goal.target_kwh, 1, "kWh") : fmt.num(goal.target_soc_pct, 0, "%");
    const soc = goal.soc_pct !== null && goal.soc_pct !== undefined
      ? "car at " + fmt.num(goal.soc_pct, 0, "%") : "car SoC unknown, assumed " + fmt.num(goal.assumed_soc_pct, 0, "%");
    const state = goal.late
      ? "late: " + fmt.num(goal.short_kwh, 1, "kWh") + " short" + (goal.late_reason ? " (" + goal.late_reason + ")" : "")
      : "on track: " + fmt.num(goal.planned_kwh, 1, "kWh") + " planned";
    return target + " by " + goal.departure + " · " + state + " · " + soc;
  }

  // The last 24/48 h from phaeton's own history (a row a minute): PV, house, each EV,
  // battery (+ charging) and grid (+ import) in kW, the battery's SoC on the right.
  let historyHours = 24;
  async function loadHistory() {
    for (const hours of [24, 48]) $("history-" + hours).setAttribute("aria-pressed", String(hours === historyHours));
    const result = await api("GET", "/api/history?hours=" + historyHours);
    if (!result.ok) { $("history-note").textContent = explain(result); return; }
    const h = result.data;
    const C = phaetonCharts.COLORS;
    const evIds = Object.keys(h.ev_w || {});
    const series = [{},
      { label: "PV", stroke: C.pv, width: 1.5, value: phaetonCharts.kw },
      { label: "House", stroke: C.house, width: 1.5, value: phaetonCharts.kw },
      ...evIds.map((id, i) => ({ label: evIds.length > 1 ? "EV " + chargerNameOf(id) : "EV",
        stroke: phaetonCharts.EV_COLORS[i % phaetonCharts.EV_COLORS.length], width: 1.5, value: phaetonCharts.kw })),
      { label: "Battery (+ charging)", stroke: C.battery, width: 1, value: phaetonCharts.kw },
      { label: "Grid (+ import)", stroke: C.grid, width: 1, dash: [4, 3], value: phaetonCharts.kw },
      { label: "Battery SoC", stroke: C.soc, width: 1, dash: [2, 2], scale: "%",
        value: (u, v) => (v === null || v === undefined ? "—" : Math.round(v) + " %") }];
    const data = [h.time_s, h.pv_w, h.house_w, ...evIds.map((id) => h.ev_w[id]), h.battery_w, h.grid_w, h.soc_pct];
    $("history-note").textContent = h.time_s.length ? "" : "no history yet: phaeton records a row a minute";
    phaetonCharts.draw($("history-chart"), {
      series,
      // the whole window asked for, up to now (a young history does not stretch to fill it)
      scales: { x: { time: true, range: () => [h.now_s - h.hours * 3600, h.now_s + 60] },
        "%": { range: [0, 100] } },
      axes: [{}, { label: "kW", values: phaetonCharts.kwAxis, size: 50 },
        { side: 1, scale: "%", label: "SoC %", grid: { show: false }, size: 45 }],
      ...phaetonCharts.nowMarker(() => h.now_s),
    }, data);
  }

  function chargerNameOf(id) {
    const card = cards.find((c) => c.id === id);
    const name = card && card.status && card.status.charger && card.status.charger.name;
    return name || id;
  }

  function renderCard(card, s) {
    const part = card.part;
    card.status = s;
    card.root.dataset.charger = s.id ?? "";
    part("charger-title").textContent = multi ? chargerName(s) : "Charger";
    part("status-text").textContent = s.status_text || "—";
    part("reason").textContent = s.reason || "";
    part("bound-by").textContent = s.bound_by || "—";
    for (const mode of [0, 1, 2]) part("mode-" + mode).setAttribute("aria-pressed", String(s.mode === mode));
    part("start-stop").textContent = s.start_stop ? "Stop charging" : "Start charging";
    part("auto-start").checked = !!s.auto_start;
    for (const n of [1, 3]) part("phases-" + n).setAttribute("aria-pressed", String(s.phases === n));
    part("phases-in-use").textContent = s.phases_in_use ? "in use: " + s.phases_in_use : "";
    const slider = part("current");
    slider.min = s.min_current_a ?? 6;
    slider.max = s.max_current_a ?? 16;
    if (!card.sliderBusy) {
      slider.value = s.set_current_a ?? slider.min;
      part("current-value").textContent = fmt.num(s.set_current_a, 0, "A");
    }
    part("current-range").textContent = "(" + fmt.num(s.min_current_a, 0) + "–" + fmt.num(s.max_current_a, 0, "A") + ")";
    const c = s.charger || {};
    part("charger-info").textContent = c.connected
      ? [c.model, c.serial, c.firmware && "fw " + c.firmware, c.connection].filter(Boolean).join(" · ")
      : "not connected" + (c.error ? ": " + c.error : "");
    part("charger-ev-w").textContent = fmt.power(s.ev_w);
    part("car-draws").textContent = carDraws(s);
    part("car-soc").textContent = carText(s.car);
    part("car-soc").classList.toggle("stale", !!(s.car && s.car.stale));
    part("car-soc-form").hidden = !s.car;
    const session = s.session || {};
    part("charger-session").textContent = !session.active ? "no session" : [
      fmt.num(session.energy_kwh, 2, "kWh"), fmt.duration(session.duration_s),
      session.cost === null || session.cost === undefined ? null
        : Number(session.cost).toFixed(2) + " " + (session.currency || ""),
      fmt.pct(session.solar_share) + " solar"].filter(Boolean).join(" · ");
  }

  // Make one card per charger (the page's own card for the first); again when the ids change.
  function layout(chargers) {
    const key = JSON.stringify(chargers.map((c) => c.id));
    if (key === layoutKey) return;
    layoutKey = key;
    multi = chargers.length > 1;
    document.body.classList.toggle("multi", multi);
    for (const card of cards.slice(1)) card.root.remove();
    cards = cards.slice(0, 1);
    let after = cards[0].root;
    chargers.slice(1).forEach((c, i) => {
      const root = pristine.cloneNode(true);
      nameParts(root, "--" + (i + 1));
      after.after(root);
      after = root;
      cards.push(makeCard(root, i + 1));
    });
    chargers.forEach((c, i) => { cards[i].id = c.id; });
  }

  function render(s) {
    const chargers = Array.isArray(s.chargers) && s.chargers.length ? s.chargers : [{ ...s, id: null, ev_w: (s.power || {}).ev_w }];
    layout(chargers);
    renderFlow(s.power || {}, chargers);
    if (multi) chargers.forEach((c, i) => renderCard(cards[i], c));
    else renderCard(cards[0], { ...s, id: chargers[0].id, ev_w: chargers[0].ev_w });
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
    renderCarbon(s.carbon);
    $("updated").textContent = s.time ? "updated " + new Date(s.time * 1000).toLocaleTimeString() : "";
  }

  // The site's carbon: intensity now, today's and the month's kg, the budget (banner when a
  // budget is at its warning or critical level). Hidden without a carbon source.
  function renderCarbon(carbon) {
    $("carbon-card").hidden = !carbon;
    const banner = $("carbon-banner");
    if (!carbon) { banner.hidden = true; return; }
    $("carbon-intensity").textContent = fmt.num(carbon.intensity_g_per_kwh, 0, "g/kWh");
    const kg = (p) => p ? fmt.num(p.total_kg, 1, "kg") + " (EV " + fmt.num(p.car_kg, 1, "kg") + ")" : "—";
    $("carbon-today").textContent = kg(carbon.today);
    $("carbon-month").textContent = kg(carbon.month);
    const budget = carbon.budget || {};
    const budgets = budget.budgets || [];
    $("carbon-budget").textContent = budgets.length ? budgets.map((b) =>
      (b.scope === "car" ? "EV " : "site ") + b.period + ": " + fmt.num(b.usage_pct, 0, "%") +
      " of " + fmt.num(b.budget_kg, 0, "kg") +
      (b.forecast_kg === null || b.forecast_kg === undefined ? "" : ", heading for " + fmt.num(b.forecast_kg, 0, "kg"))).join(" · ")
      : "none set";
    const over = budgets.filter((b) => b.level >= 1).sort((a, b) => b.level - a.level);
    banner.hidden = !over.length;
    if (over.length) {
      const worst = over[0];
      banner.className = "message banner " + (worst.level >= 2 ? "error" : "warn");
      banner.dataset.level = String(budget.state);
      banner.textContent = "Carbon budget " + worst.level_text + ": " + over.map((b) =>
        (b.scope === "car" ? "EV charging" : "the site") + " used " + fmt.num(b.usage_pct, 0, "%") +
        " of its " + b.period + "ly " + fmt.num(b.budget_kg, 0, "kg") + " CO2 budget (" + b.key + ")").join("; ");
    }
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

  document.addEventListener("DOMContentLoaded", () => {
    const first = document.querySelector(".charger-card");
    pristine = first.cloneNode(true);
    nameParts(first, "");
    cards = [makeCard(first, 0)];
    connect();
    setInterval(checkLive, 1000);
    loadGoal();
    setInterval(loadGoal, 60000);
    for (const hours of [24, 48]) $("history-" + hours).addEventListener("click", () => { historyHours = hours; loadHistory(); });
    loadHistory();
    setInterval(loadHistory, 60000);
  });
})();
