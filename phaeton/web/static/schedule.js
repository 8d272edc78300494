// Schedule page: edit the Scheduled mode's windows; show the plan when the planner has one.
"use strict";
(() => {
  const { api, explain, show, el, fmt } = phaeton;
  const $ = (id) => document.getElementById(id);
  const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
  let version = null;  // of the config file the windows come from; a save sends it back

  function windowEditor(win, index) {
    const days = new Set(win.days || DAYS);
    const box = el("div", { class: "window", "data-index": index });
    box.append(
      el("div", { class: "days" }, DAYS.map((d) => el("label", {},
        el("input", { type: "checkbox", value: d, checked: days.has(d) }), " " + d))),
      el("div", { class: "row" },
        el("label", {}, "Start ", el("input", { type: "time", class: "start", value: win.start || "22:00" })),
        el("label", {}, "End ", el("input", { type: "time", class: "end", value: win.end || "06:00" })),
        el("label", {}, "Current (A) ", el("input", { type: "number", class: "current", step: "1", min: "0", max: "80",
          value: win.current_a ?? "", placeholder: "max" })),
        el("button", { type: "button", onclick: () => { box.remove(); } }, "Remove")),
      el("div", { class: "problem" }));
    return box;
  }

  function collect() {
    return [...document.querySelectorAll("#windows .window")].map((box, index) => {
      box.dataset.index = index;  // problems name windows by their place in the list
      const current = box.querySelector(".current").value;
      return {
        days: [...box.querySelectorAll(".days input:checked")].map((i) => i.value),
        start: box.querySelector(".start").value,
        end: box.querySelector(".end").value,
        current_a: current === "" ? null : Number(current),
      };
    });
  }

  async function load() {
    const result = await api("GET", "/api/schedule");
    if (!result.ok) { show($("schedule-message"), explain(result), "error"); return; }
    version = result.data.version;
    $("windows").replaceChildren(...result.data.windows.map(windowEditor));
    document.body.dataset.ready = "1";
    const plan = await api("GET", "/api/plan");
    const inCharge = plan.ok && plan.data.plan && plan.data.plan.strategy !== "off" &&
      Array.isArray(plan.data.plan.slots) && plan.data.plan.slots.length > 0;
    if (inCharge) {
      // say it where the windows are edited: saving them changes nothing while the plan runs
      show($("windows-note"), "The energy plan is in charge: in Scheduled mode the car charges " +
        "in the plan's slots (below), not in these windows. They take over when there is no " +
        "plan (no prices, or the planner strategy off).", "warn");
    }
    if (plan.ok && plan.data.plan) renderPlan(plan.data.plan);
  }

  const number = (v) => (typeof v === "number" ? v : null);

  // The plan over time: the import price (steps, left axis), the EV's planned energy (bars),
  // the PV and house-load forecasts (kWh per slot), the battery's SoC (right axis), the grid's
  // carbon intensity when known (own scale), a now marker; under it, the slot at the cursor
  // with the planner's reason for it.
  function planChart(plan, slots, currency, withCarbon) {
    const C = phaetonCharts.COLORS;
    const unit = (currency || "price") + "/kWh";
    const box = el("div", {});
    const chartBox = el("div", { id: "plan-chart", class: "chart", role: "img", "aria-label": "price curve and plan over time" });
    const why = el("div", { id: "plan-why", class: "muted", text: "Point at the chart for a slot's plan and reason." });
    box.append(chartBox, why);
    const kwh = (u, v) => (v === null || v === undefined ? "—" : fmt.fixed(v, 2) + " kWh");
    const series = [{},
      { label: "Import price", stroke: C.price, width: 2, scale: "price", paths: uPlot.paths.stepped({ align: 1 }),
        value: (u, v) => (v === null || v === undefined ? "—" : fmt.fixed(v, 3) + " " + unit) },
      { label: "EV", stroke: C.ev, fill: "rgba(10,102,194,0.25)", scale: "kWh", paths: uPlot.paths.bars({ size: [0.9], align: 1 }), points: { show: false }, value: kwh },
      { label: "PV forecast", stroke: C.pv, width: 1.5, scale: "kWh", value: kwh },
      { label: "House forecast", stroke: C.load, width: 1.5, dash: [3, 2], scale: "kWh", value: kwh },
      { label: "Battery SoC", stroke: C.battery, width: 1.5, scale: "%", value: (u, v) => (v === null || v === undefined ? "—" : Math.round(v) + " %") }];
    const data = [slots.map((s) => s.start_s), slots.map((s) => number(s.import_eur_per_kwh)),
      slots.map((s) => (typeof s.ev_kwh === "number" ? Math.abs(s.ev_kwh) : null)),
      slots.map((s) => number(s.pv_kwh)), slots.map((s) => number(s.load_kwh)), slots.map((s) => number(s.soc_pct))];
    // a phone has room for two axes: price and energy; SoC and CO2 are in the legend
    const narrow = window.innerWidth < 560;
    const axes = [{}, { scale: "price", label: unit, size: 55, values: (u, vals) => vals.map((v) => fmt.fixed(v, 2)) },
      { scale: "kWh", label: "kWh per slot", side: 1, grid: { show: false }, size: 45 }];
    if (!narrow) axes.push({ scale: "%", label: "SoC %", side: 1, grid: { show: false }, size: 40 });
    if (withCarbon) {
      series.push({ label: "Grid CO2", stroke: C.carbon, width: 1.5, dash: [6, 2], scale: "g",
        value: (u, v) => (v === null || v === undefined ? "—" : Math.round(v) + " g/kWh") });
      data.push(slots.map((s) => number(s.intensity_g_per_kwh)));
      if (!narrow) axes.push({ scale: "g", label: "g CO2/kWh", side: 3, grid: { show: false }, size: 50 });
    }
    const slotAt = (idx) => slots[idx];
    requestAnimationFrame(() => phaetonCharts.draw(chartBox, {
      height: 260, series, axes,
      // to the end of the last slot, so its step and bar are whole
      scales: { x: { time: true, range: (u, min, max) => [min, max + (slots.length > 1 ? slots[1].start_s - slots[0].start_s : 900)] },
        "%": { range: [0, 100] }, kWh: { range: (u, min, max) => [0, Math.max(0.1, max)] } },
      hooks: {
        ...phaetonCharts.nowMarker(() => plan.now_s || Date.now() / 1000).hooks,
        setCursor: [(u) => {
          const s = u.cursor.idx === null || u.cursor.idx === undefined ? null : slotAt(u.cursor.idx);
          if (!s) return;
          const when = new Date(s.start_s * 1000).toLocaleString([], { weekday: "short", hour: "2-digit", minute: "2-digit" });
          why.textContent = when + ": " + [number(s.import_eur_per_kwh) === null ? null : fmt.fixed(s.import_eur_per_kwh, 3) + " " + unit,
            s.ev_kwh ? "EV " + fmt.fixed(s.ev_kwh, 2) + " kWh" : null,
            s.battery_kwh ? "battery " + (s.battery_kwh > 0 ? "+" : "") + fmt.fixed(s.battery_kwh, 2) + " kWh" : null,
            s.why || null].filter(Boolean).join(" · ");
        }],
      },
    }, data));
    return box;
  }

  const OBJECTIVES = { carbon: "CO2", cost_with_carbon_price: "cost plus a carbon price" };

  // The fleet operator's schedules (docs/fleet.md): whose command the battery follows, the
  // broker connection, the schedules and the acks still waiting for the broker.
  function renderFleet(fleet) {
    const running = fleet.source && fleet.source !== "local" ? fleet.source.replace(/^fleet:/, "schedule ") : null;
    const link = fleet.connected ? "connected" : "not connected" + (fleet.error ? ": " + fleet.error : "");
    const schedules = (fleet.schedules || []).map((s) => s.id + " v" + s.version + " " + s.state).join(", ");
    return el("dl", { class: "kv", id: "plan-fleet" },
      el("dt", { text: "Fleet" }), el("dd", { id: "plan-fleet-source", text: running ? "the battery follows the operator's " + running : "the battery follows phaeton's own plan" }),
      el("dt", { text: "Broker" }), el("dd", { id: "plan-fleet-link", class: fleet.connected ? "" : "warn", text: link }),
      schedules ? [el("dt", { text: "Schedules" }), el("dd", { text: schedules })] : null,
      fleet.pending_acks ? [el("dt", { text: "Acks waiting" }), el("dd", { text: String(fleet.pending_acks) })] : null);
  }

  // The planner's plan (phaeton plan --json shape): price curve, PV and house-load forecasts,
  // planned EV energy, and what the planner does with the battery (or why it does not).
  const PV_SOURCES = { learned: "learned from the PV meter", open_meteo: "Open-Meteo", forecast_solar: "Forecast.Solar", solcast: "Solcast" };

  // Where the plan's PV forecast came from: the learned model, or a weather service with its
  // calibration on the meter, and why it is not used when it failed.
  function pvForecastText(pv) {
    const name = PV_SOURCES[pv.source] || pv.source;
    if (pv.source === "learned") return name;
    if (!pv.weather_slots) return name + " unavailable, learned forecast used" + (pv.last_error ? ": " + pv.last_error : "");
    const calibration = typeof pv.calibration === "number" ? ", calibrated × " + pv.calibration.toFixed(2) : "";
    return name + calibration + (pv.last_error ? " (last fetch failed: " + pv.last_error + ")" : "");
  }

  function renderPlan(plan) {
    const slots = Array.isArray(plan.slots) ? plan.slots : [];
    const state = plan.state || {};
    const box = $("plan");
    box.className = "";
    box.replaceChildren();
    const currency = plan.currency || "";
    const money = (v) => (typeof v === "number" ? fmt.fixed(v, 2) + (currency ? " " + currency : "") : "—");
    box.append(el("dl", { class: "kv", id: "plan-summary" },
      el("dt", { text: "Planned cost" }), el("dd", { text: money(plan.total_cost_eur) }),
      el("dt", { text: "Savings" }), el("dd", { text: money(plan.savings_eur) }),
      el("dt", { text: "EV energy" }), el("dd", { text: typeof plan.ev_delivered_kwh === "number" ? plan.ev_delivered_kwh.toFixed(1) + " kWh" : "—" }),
      typeof plan.co2_kg === "number" ? [el("dt", { text: "CO2" }), el("dd", { id: "plan-co2", text: plan.co2_kg.toFixed(1) + " kg" })] : null,
      plan.objective && plan.objective !== "cost" ? [el("dt", { text: "Minimises" }), el("dd", { id: "plan-objective", text: OBJECTIVES[plan.objective] || plan.objective })] : null,
      plan.strategy ? [el("dt", { text: "Strategy" }), el("dd", { text: plan.strategy.replace("_", " ") })] : null,
      plan.pv_forecast ? [el("dt", { text: "PV forecast" }), el("dd", { id: "plan-pv-forecast", text: pvForecastText(plan.pv_forecast) })] : null,
      state["/Planner/Reason"] ? [el("dt", { text: "Battery" }), el("dd", { id: "plan-battery", text: state["/Planner/Reason"] })] : null,
      plan.shortfall ? [el("dt", { text: "Shortfall" }), el("dd", { text: plan.shortfall.ev_kwh + " kWh: " + plan.shortfall.reason })] : null));
    if (state["/Planner/DessConflict"]) {
      box.append(el("div", { class: "message error", id: "plan-conflict", text: "Victron's own Dynamic ESS is active, so phaeton leaves the battery alone: " + (state["/Planner/Reason"] || "") }));
    } else if (plan.ess && plan.ess.owner_off) {
      // the GX owner switched Dynamic ESS off: phaeton waits until it is re-enabled
      box.append(el("div", { class: "message error", id: "plan-owner-off", text: plan.ess.owner_off }));
    }
    if (plan.fleet) box.append(renderFleet(plan.fleet));
    for (const warning of plan.warnings || []) box.append(el("div", { class: "message warn", text: warning }));
    if (!slots.length) return;
    const intensity = (s) => (typeof s.intensity_g_per_kwh === "number" ? s.intensity_g_per_kwh : null);
    const grams = slots.map(intensity).filter((v) => v !== null);
    box.append(planChart(plan, slots, currency, grams.length > 0));
    const time = (s) => new Date(s.start_s * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const num = (v, d) => (typeof v === "number" ? fmt.fixed(v, d) : "—");
    const columns = ["Start", (currency || "price") + "/kWh", grams.length ? "g CO2/kWh" : null, "PV kWh", "House kWh", "EV kWh", "Battery kWh", "SoC", "Why"].filter(Boolean);
    const day = (s) => new Date(s.start_s * 1000).toLocaleDateString([], { weekday: "short", day: "numeric", month: "short" });
    const rows = [];
    let lastDay = null;
    for (const s of slots.slice(0, 192)) {
      if (day(s) !== lastDay) {   // one heading row per day: the times below are that day's
        lastDay = day(s);
        rows.push(el("tr", { class: "day" }, el("th", { colspan: columns.length, text: lastDay })));
      }
      rows.push(el("tr", { class: "slot" },
        el("td", { text: time(s) }), el("td", { class: "num", text: num(s.import_eur_per_kwh, 3) }),
        grams.length ? el("td", { class: "num carbon", text: num(s.intensity_g_per_kwh, 0) }) : null,
        el("td", { class: "num", text: num(s.pv_kwh, 2) }), el("td", { class: "num", text: num(s.load_kwh, 2) }),
        el("td", { class: "num", text: num(s.ev_kwh, 2) }), el("td", { class: "num", text: num(s.battery_kwh, 2) }),
        el("td", { class: "num", text: typeof s.soc_pct === "number" ? Math.round(s.soc_pct) + " %" : "—" }),
        el("td", { text: s.why || "" })));
    }
    box.append(el("div", { class: "scroll" }, el("table", { id: "plan-table" },
      el("thead", {}, el("tr", {}, columns.map((h) => el("th", { text: h })))),
      el("tbody", {}, rows))));
  }

  // What the house paid per day against plain self-consumption (GET /api/realised): the
  // totals, and a bar pair per day (paid, self-consumption).
  function renderRealised(realised) {
    const box = $("realised");
    box.className = "";
    const currency = realised.currency || "";
    const money = (v) => (typeof v === "number" ? fmt.fixed(v, 2) + (currency ? " " + currency : "") : "—");
    const total = realised.total || {};
    const saved = total.saved;
    box.replaceChildren(el("dl", { class: "kv", id: "realised-summary" },
      el("dt", { text: "Paid" }), el("dd", { text: money(total.paid) }),
      el("dt", { text: "Plain self-consumption" }), el("dd", { text: money(total.self_consumption) }),
      el("dt", { text: saved >= 0 ? "Saved by the plan" : "Lost by the plan" }),
      el("dd", { id: "realised-saved", class: saved >= 0 ? "" : "warn", text: money(Math.abs(saved)) })));
    const days = realised.days || [];
    if (!days.length) return;
    const chartBox = el("div", { id: "realised-chart", class: "chart", role: "img", "aria-label": "paid and self-consumption per day" });
    box.append(chartBox);
    const noon = (d) => new Date(d.date + "T12:00:00").getTime() / 1000;
    const value = (u, v) => (v === null || v === undefined ? "—" : money(v));
    const series = [{},
      { label: "Paid", stroke: phaetonCharts.COLORS.grid, fill: "rgba(91,107,130,0.45)", paths: uPlot.paths.bars({ size: [0.35, 40], align: -1 }), points: { show: false }, value },
      { label: "Plain self-consumption", stroke: phaetonCharts.COLORS.battery, fill: "rgba(26,127,55,0.35)", paths: uPlot.paths.bars({ size: [0.35, 40], align: 1 }), points: { show: false }, value }];
    const data = [days.map(noon), days.map((d) => d.paid), days.map((d) => d.self_consumption)];
    requestAnimationFrame(() => phaetonCharts.draw(chartBox, {
      height: 200, series,
      axes: [{}, { label: currency || "money", size: 50, values: (u, vals) => vals.map((v) => fmt.fixed(v, 2)) }],
      scales: { x: { time: true, range: (u, min, max) => [min - 43200, max + 43200] } },
    }, data));
  }

  async function loadRealised() {
    const result = await api("GET", "/api/realised");
    if (result.ok && result.data.realised) renderRealised(result.data.realised);
  }

  async function save() {
    document.querySelectorAll("#windows .problem").forEach((p) => { p.textContent = ""; });
    const result = await api("PUT", "/api/schedule", { windows: collect(), version });
    if (result.ok) { version = result.data.version; show($("schedule-message"), "saved", "ok"); return; }
    show($("schedule-message"), explain(result), "error");
    if (result.status === 409) {
      // the config file changed since this page loaded: nothing was saved; the windows stay as typed
      $("schedule-message").append(" ", el("button", { type: "button", onclick: () => location.reload(),
        text: "Reload the windows (drops the changes made here)" }));
    }
    for (const problem of result.data.problems || []) {
      const match = /^schedule\.windows\[(\d+)\]/.exec(problem.key_path);
      const box = match && document.querySelector('#windows .window[data-index="' + match[1] + '"] .problem');
      if (box) box.textContent += problem.text + " ";
      else $("schedule-message").append(el("div", { text: problem.text }));
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("add-window").addEventListener("click", () => {
      $("windows").append(windowEditor({}, document.querySelectorAll("#windows .window").length));
    });
    $("save-schedule").addEventListener("click", save);
    load();
    loadRealised();
  });
})();
