// Charts of the web UI on the vendored uPlot (static/vendor/, MIT): a time axis in local time,
// units on the axes, a legend with the values under the cursor, a "now" marker, and a width
// that follows the card (phone or desktop). Each chart keeps its uPlot on its element
// (`element.chart`) so the page and the browser tests can read what it holds.
"use strict";
const phaetonCharts = (() => {
  const COLORS = { pv: "#e0a800", house: "#7b4fb8", ev: "#0a66c2", battery: "#1a7f37",
    grid: "#5b6b82", soc: "#2e8b57", price: "#b45309", carbon: "#2e8b57", load: "#777" };
  const EV_COLORS = ["#0a66c2", "#00838f", "#6a1b9a", "#ad1457"];

  function width(element) {
    return Math.max(260, Math.floor(element.clientWidth || element.parentElement.clientWidth || 320));
  }

  // A vertical line at `nowS` (unix s) with a "now" label.
  function nowMarker(nowS) {
    return {
      hooks: {
        draw: [(u) => {
          const x = u.valToPos(nowS(), "x", true);
          if (!(x >= u.bbox.left && x <= u.bbox.left + u.bbox.width)) return;
          const ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = "#c62828";
          ctx.lineWidth = 1.5 * devicePixelRatio;
          ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
          ctx.fillStyle = "#c62828";
          ctx.font = 11 * devicePixelRatio + "px system-ui, sans-serif";
          ctx.fillText("now", x + 3 * devicePixelRatio, u.bbox.top + 11 * devicePixelRatio);
          ctx.restore();
        }],
      },
    };
  }

  // Replace the chart in `element` (a fresh uPlot each time: a few hundred points, cheap).
  function draw(element, opts, data) {
    if (element.chart) element.chart.destroy();
    element.replaceChildren();
    const chart = new uPlot({ width: width(element), height: opts.height || 220, ...opts }, data, element);
    element.chart = chart;
    if (!element.dataset.resizes) {
      element.dataset.resizes = "1";
      window.addEventListener("resize", () => {
        if (element.chart) element.chart.setSize({ width: width(element), height: element.chart.height });
      });
    }
    return chart;
  }

  const kw = (u, v) => (v === null || v === undefined ? "—" : (v / 1000).toFixed(2) + " kW");
  const kwAxis = (u, values) => values.map((v) => (v / 1000).toFixed(1));

  return { COLORS, EV_COLORS, draw, nowMarker, kw, kwAxis };
})();
