// Sessions page: history with totals, filtered by local dates (and charger), CSV export.
// Each session names its charger; the column and the filter show when there are several.
"use strict";
(() => {
  const { api, explain, show, fmt, el } = phaeton;
  const $ = (id) => document.getElementById(id);
  let names = {};    // charger id -> its name, from /api/chargers
  let chargerIds = [];

  function chargerName(id) {
    if (id === null || id === undefined) return "—";
    return names[id] || "Charger " + id;
  }

  // kg CO2; "—" when not known (no carbon source when the session ran)
  function co2(kg) {
    return kg === null || kg === undefined ? "—" : fmt.num(kg, 2, "kg");
  }

  async function loadChargers() {
    const result = await api("GET", "/api/chargers");
    if (!result.ok) return;
    chargerIds = result.data.ids || [];
    for (const c of result.data.chargers || []) names[c.id] = (c.charger && c.charger.name) || "";
    const select = $("charger");
    select.replaceChildren(el("option", { value: "", text: "all" }),
      ...chargerIds.map((id) => el("option", { value: id, text: chargerName(id) })));
  }

  function range() {
    const query = new URLSearchParams();
    const from = $("from").value, to = $("to").value;
    if ($("charger").value) query.set("charger_id", $("charger").value);
    if (from) query.set("since_s", String(new Date(from + "T00:00:00").getTime() / 1000));
    if (to) {
      const end = new Date(to + "T00:00:00");
      end.setDate(end.getDate() + 1);  // the "to" day is included
      query.set("until_s", String(end.getTime() / 1000));
    }
    return query;
  }

  async function load() {
    const query = range();
    $("csv").href = "/api/sessions.csv" + (query.toString() ? "?" + query : "");
    query.set("limit", "1000");
    const result = await api("GET", "/api/sessions?" + query);
    if (!result.ok) { show($("sessions-message"), explain(result), "error"); return; }
    show($("sessions-message"), "");
    const { sessions, totals } = result.data;
    const months = result.data.months || [];
    const seen = new Set(sessions.map((s) => s.charger_id));
    document.body.classList.toggle("multi", chargerIds.length > 1 || seen.size > 1);
    const costs = Object.entries(totals.cost_by_currency).map(([cur, v]) => v.toFixed(2) + " " + cur).join(", ") || "—";
    const solar = totals.energy_kwh ? totals.solar_energy_kwh / totals.energy_kwh : null;
    $("totals").replaceChildren(
      el("dt", { text: "Sessions" }), el("dd", { id: "total-count", text: totals.count }),
      el("dt", { text: "Energy" }), el("dd", { id: "total-energy", text: fmt.num(totals.energy_kwh, 2, "kWh") }),
      el("dt", { text: "Solar" }), el("dd", { text: fmt.num(totals.solar_energy_kwh, 2, "kWh") + " (" + fmt.pct(solar) + ")" }),
      el("dt", { text: "Time" }), el("dd", { text: fmt.duration(totals.duration_s) }),
      el("dt", { text: "Cost" }), el("dd", { text: costs }),
      el("dt", { text: "CO2" }), el("dd", { id: "total-co2", text: co2(totals.co2_kg) +
        (totals.co2_kg === null || totals.co2_kg === undefined || totals.co2_sessions === totals.count
          ? "" : " (" + totals.co2_sessions + " of " + totals.count + " sessions)") }));
    $("rows").replaceChildren(...sessions.map((s) => el("tr", {},
      el("td", { text: fmt.when(s.start_s) }),
      el("td", { class: "multi-only charger", "data-charger": s.charger_id, text: chargerName(s.charger_id) }),
      el("td", { class: "num", text: fmt.num(s.energy_kwh, 2, "kWh") }),
      el("td", { class: "num", text: fmt.duration(s.duration_s) }),
      el("td", { class: "num", text: fmt.power(s.peak_w) }),
      el("td", { class: "num", text: s.cost.toFixed(2) + " " + s.currency }),
      el("td", { class: "num", text: fmt.pct(s.solar_share) }),
      el("td", { class: "num co2", text: co2(s.co2_kg) }))));
    if (!sessions.length) $("rows").append(el("tr", {}, el("td", { colspan: 8, class: "muted", text: "No sessions in this range." })));
    await showRunning();
    drawPeriods(sessions);
    $("months").replaceChildren(...months.map((m) => el("tr", { "data-month": m.month },
      el("td", { text: m.month }),
      el("td", { class: "num", text: m.count }),
      el("td", { class: "num", text: fmt.num(m.energy_kwh, 2, "kWh") }),
      el("td", { class: "num co2", text: co2(m.co2_kg) }))));
  }

  // Energy (solar part inside), cost per day and per month of the sessions shown, by their
  // local start. Bars: energy and its solar part (kWh); line: cost (right axis).
  function periodOf(unix, month) {
    const d = new Date(unix * 1000);
    return (month ? new Date(d.getFullYear(), d.getMonth(), 1) : new Date(d.getFullYear(), d.getMonth(), d.getDate())).getTime() / 1000;
  }

  function sums(sessions, month) {
    const by = new Map();
    for (const s of sessions) {
      const key = periodOf(s.start_s, month);
      const sum = by.get(key) || { energy: 0, solar: 0, cost: 0 };
      sum.energy += s.energy_kwh || 0;
      sum.solar += (s.energy_kwh || 0) * (s.solar_share || 0);
      sum.cost += s.cost || 0;
      by.set(key, sum);
    }
    const keys = [...by.keys()].sort((a, b) => a - b);
    return [keys, keys.map((k) => by.get(k).energy), keys.map((k) => by.get(k).solar), keys.map((k) => by.get(k).cost)];
  }

  function drawPeriods(sessions) {
    const currency = (sessions[0] && sessions[0].currency) || "";
    const C = phaetonCharts.COLORS;
    for (const [id, month] of [["days-chart", false], ["months-chart", true]]) {
      const data = sums(sessions, month);
      const step = month ? 31 * 86400 : 86400;
      phaetonCharts.draw($(id), {
        height: 200,
        series: [{ value: (u, v) => (v === null || v === undefined ? "—" : new Date(v * 1000).toLocaleDateString([], month ? { year: "numeric", month: "short" } : { weekday: "short", day: "numeric", month: "short" })) },
          { label: "Energy", stroke: C.ev, fill: "rgba(10,102,194,0.25)", scale: "kWh", paths: uPlot.paths.bars({ size: [0.8], align: 1 }), points: { show: false },
            value: (u, v) => fmt.num(v, 2, "kWh") },
          { label: "of it solar", stroke: C.pv, fill: "rgba(224,168,0,0.55)", scale: "kWh", paths: uPlot.paths.bars({ size: [0.5], align: 1 }), points: { show: false },
            value: (u, v) => fmt.num(v, 2, "kWh") },
          { label: "Cost", stroke: C.price, width: 1.5, scale: "cost", value: (u, v) => fmt.num(v, 2, currency) }],
        scales: { x: { time: true, range: (u, min, max) => [min, max + step] }, kWh: { range: (u, min, max) => [0, Math.max(1, max)] },
          cost: { range: (u, min, max) => [0, Math.max(0.01, max)] } },
        axes: [{}, { scale: "kWh", label: "kWh", size: 45 }, { scale: "cost", label: currency || "cost", side: 1, grid: { show: false }, size: 45 }],
      }, data);
    }
  }

  // The sessions under way (from the live status) above the finished ones, one per charger;
  // they join the history when the car is unplugged.
  async function showRunning() {
    document.querySelectorAll("#rows tr.running").forEach((row) => row.remove());
    const status = await api("GET", "/api/status");
    if (!status.ok) return;
    const chargers = Array.isArray(status.data.chargers) && status.data.chargers.length
      ? status.data.chargers : [{ ...status.data, id: null }];
    const filter = $("charger").value;
    const running = chargers.filter((c) => c.session && c.session.active && (!filter || c.id === filter));
    $("rows").prepend(...running.map((c) => {
      const s = c.session;
      const since = (status.data.time || Date.now() / 1000) - (s.duration_s || 0);
      return el("tr", { class: "running", "data-charger": c.id ?? "" },
        el("td", { text: fmt.when(since) + " (running)" }),
        el("td", { class: "multi-only charger", text: chargerName(c.id) }),
        el("td", { class: "num", text: fmt.num(s.energy_kwh, 2, "kWh") }),
        el("td", { class: "num", text: fmt.duration(s.duration_s) }),
        el("td", { class: "num", text: fmt.power(s.peak_w) }),
        el("td", { class: "num", text: s.cost === null || s.cost === undefined ? "—" : fmt.fixed(s.cost, 2) + " " + (s.currency || "") }),
        el("td", { class: "num", text: fmt.pct(s.solar_share) }),
        el("td", { class: "num co2", text: "—" }));
    }));
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("filter").addEventListener("submit", (event) => { event.preventDefault(); load(); });
    loadChargers().then(load);
  });
})();
