// Schedule page: edit the Scheduled mode's windows; show the plan when the planner has one.
"use strict";
(() => {
  const { api, explain, show, el } = phaeton;
  const $ = (id) => document.getElementById(id);
  const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

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
    $("windows").replaceChildren(...result.data.windows.map(windowEditor));
    document.body.dataset.ready = "1";
    const plan = await api("GET", "/api/plan");
    if (plan.ok && plan.data.plan) renderPlan(plan.data.plan);
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    return node;
  }

  // The planner's plan (phaeton plan --json shape): price curve, planned EV and battery energy.
  function renderPlan(plan) {
    const slots = Array.isArray(plan.slots) ? plan.slots : [];
    const box = $("plan");
    box.className = "";
    box.replaceChildren();
    const money = (v) => (typeof v === "number" ? v.toFixed(2) + " €" : "—");
    box.append(el("dl", { class: "kv", id: "plan-summary" },
      el("dt", { text: "Planned cost" }), el("dd", { text: money(plan.total_cost_eur) }),
      el("dt", { text: "Savings" }), el("dd", { text: money(plan.savings_eur) }),
      el("dt", { text: "EV energy" }), el("dd", { text: typeof plan.ev_delivered_kwh === "number" ? plan.ev_delivered_kwh.toFixed(1) + " kWh" : "—" }),
      plan.shortfall ? [el("dt", { text: "Shortfall" }), el("dd", { text: plan.shortfall.ev_kwh + " kWh: " + plan.shortfall.reason })] : null));
    for (const warning of plan.warnings || []) box.append(el("div", { class: "message error", text: warning }));
    if (!slots.length) return;
    const prices = slots.map((s) => s.import_eur_per_kwh).filter((v) => typeof v === "number");
    const top = Math.max(0.01, ...prices), low = Math.min(0, ...prices);
    const width = 360, height = 140, step = width / slots.length;
    const y = (price) => height - 20 - ((price - low) / (top - low)) * (height - 42);
    const chart = svg("svg", { viewBox: "0 0 " + width + " " + height, class: "flow", id: "plan-chart", role: "img", "aria-label": "price curve and plan" });
    const maxEv = Math.max(0.01, ...slots.map((s) => Math.abs(s.ev_kwh || 0)));
    slots.forEach((s, i) => {
      if (s.ev_kwh) {
        const h = (Math.abs(s.ev_kwh) / maxEv) * (height - 30);
        chart.append(svg("rect", { x: i * step, y: height - 20 - h, width: Math.max(1, step - 1), height: h, class: "plan-ev" }));
      }
    });
    const points = slots.map((s, i) => typeof s.import_eur_per_kwh === "number" ? (i * step + step / 2).toFixed(1) + "," + y(s.import_eur_per_kwh).toFixed(1) : null).filter(Boolean);
    chart.append(svg("polyline", { points: points.join(" "), class: "plan-price" }));
    const label = svg("text", { x: 2, y: 12 });
    label.textContent = "price " + low.toFixed(2) + "–" + top.toFixed(2) + " €/kWh; bars: EV";
    chart.append(label);
    box.append(chart);
    const time = (s) => new Date(s.start_s * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const num = (v, d) => (typeof v === "number" ? v.toFixed(d) : "—");
    box.append(el("div", { class: "scroll" }, el("table", { id: "plan-table" },
      el("thead", {}, el("tr", {}, ["Start", "€/kWh", "EV kWh", "Battery kWh", "SoC", "Why"].map((h) => el("th", { text: h })))),
      el("tbody", {}, slots.slice(0, 192).map((s) => el("tr", {},
        el("td", { text: time(s) }), el("td", { class: "num", text: num(s.import_eur_per_kwh, 3) }),
        el("td", { class: "num", text: num(s.ev_kwh, 2) }), el("td", { class: "num", text: num(s.battery_kwh, 2) }),
        el("td", { class: "num", text: typeof s.soc_pct === "number" ? Math.round(s.soc_pct) + " %" : "—" }),
        el("td", { text: s.why || "" })))))));
  }

  async function save() {
    document.querySelectorAll("#windows .problem").forEach((p) => { p.textContent = ""; });
    const result = await api("PUT", "/api/schedule", { windows: collect() });
    if (result.ok) { show($("schedule-message"), "saved", "ok"); return; }
    show($("schedule-message"), explain(result), "error");
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
  });
})();
