// phaeton web UI: helpers shared by every page (no framework, no build step).
"use strict";
const phaeton = (() => {
  let csrf = null;
  let state = { logged_in: false, password_set: false };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) {
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
    }
    return node;
  }

  async function api(method, url, body) {
    const options = { method, headers: {}, credentials: "same-origin" };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    if (csrf && method !== "GET") options.headers["X-CSRF-Token"] = csrf;
    let response;
    try {
      response = await fetch(url, options);
    } catch (err) {
      return { ok: false, status: 0, data: { error: "phaeton is not reachable: " + err.message } };
    }
    let data = null;
    try { data = await response.json(); } catch (err) { data = { error: response.statusText }; }
    return { ok: response.ok, status: response.status, data };
  }

  function explain(result) {
    const error = (result.data && result.data.error) || ("error " + result.status);
    if (result.status === 401 && !/log in/i.test(error)) return error + " — log in first.";
    return error;
  }

  function show(node, text, kind) {
    node.textContent = text || "";
    node.className = "message" + (kind ? " " + kind : "");
    if (kind === "error" && /log in/.test(text || "")) {
      node.append(" ", el("a", { href: "/login?next=" + encodeURIComponent(location.pathname),
                                 text: "Log in" }));
    }
  }

  async function loadSession() {
    const result = await api("GET", "/api/session");
    if (result.ok) { state = result.data; csrf = result.data.csrf_token; }
    const link = document.getElementById("auth-link");
    if (link) {
      if (state.logged_in) {
        link.textContent = "Log out";
        link.href = "#";
        link.onclick = async (event) => {
          event.preventDefault();
          await api("POST", "/api/logout");
          location.reload();
        };
      } else {
        link.textContent = "Log in";
        link.href = "/login?next=" + encodeURIComponent(location.pathname);
      }
    }
    return state;
  }

  function markNav() {
    for (const a of document.querySelectorAll("header nav a[data-page]")) {
      if (a.getAttribute("href") === location.pathname) a.classList.add("here");
    }
  }

  // toFixed without a sign on a value that rounds to zero ("-0.0 A" is not a reading)
  function fixed(value, digits) {
    const text = Number(value).toFixed(digits);
    return /^-0(\.0*)?$/.test(text) ? text.slice(1) : text;
  }

  const fmt = {
    fixed,
    power(w) {
      if (w === null || w === undefined) return "—";
      const abs = Math.abs(w);
      return abs >= 1000 ? (w / 1000).toFixed(abs >= 10000 ? 1 : 2) + " kW" : Math.round(w) + " W";
    },
    num(value, digits, unit) {
      if (value === null || value === undefined) return "—";
      return fixed(value, digits) + (unit ? " " + unit : "");
    },
    duration(s) {
      if (s === null || s === undefined) return "—";
      const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
      return h ? h + " h " + String(m).padStart(2, "0") + " min" : m + " min";
    },
    pct(share) { return share === null || share === undefined ? "—" : Math.round(share * 100) + " %"; },
    when(unix) {
      return unix ? new Date(unix * 1000).toLocaleString([], { dateStyle: "short", timeStyle: "short" }) : "—";
    },
  };

  document.addEventListener("DOMContentLoaded", () => { markNav(); loadSession(); });
  return { el, api, explain, show, loadSession, fmt, get state() { return state; } };
})();
