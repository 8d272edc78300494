// Settings page: a form generated from the config's JSON Schema; the server validates.
"use strict";
(() => {
  const { api, explain, show, el } = phaeton;
  const $ = (id) => document.getElementById(id);
  const SKIP = new Set(["password_hash"]);
  let config = null;
  let version = null;  // of the config file the form shows; a save sends it back
  const fields = [];  // { path: [...], kind, input, nullable }

  function types(schema) { return [].concat(schema.type || []); }
  function get(obj, path) { return path.reduce((o, k) => (o == null ? undefined : o[k]), obj); }
  function set(obj, path, value) {
    let o = obj;
    path.slice(0, -1).forEach((k) => { if (typeof o[k] !== "object" || o[k] === null) o[k] = {}; o = o[k]; });
    o[path[path.length - 1]] = value;
  }

  function leaf(name, schema, path) {
    const id = "cfg-" + path.join(".");
    const value = get(config, path);
    const t = types(schema);
    const nullable = t.includes("null");
    let input, kind;
    if (schema.enum) {
      kind = "enum";
      input = el("select", { id }, schema.enum.map((v) => el("option", { value: JSON.stringify(v),
        selected: JSON.stringify(v) === JSON.stringify(value), text: v === null ? "(none)" : String(v) })));
    } else if (t.includes("boolean")) {
      kind = "boolean";
      input = el("input", { id, type: "checkbox", checked: value === true });
    } else if (t.includes("array") || t.includes("object")) {
      kind = "json";
      input = el("textarea", { id, rows: 3, cols: 40 });
      input.value = JSON.stringify(value ?? null);
    } else if (t.includes("number") || t.includes("integer")) {
      kind = "number";
      input = el("input", { id, type: "text", inputmode: "decimal", value: value ?? "", placeholder: nullable ? "empty = none" : null });
    } else {
      kind = "string";
      input = el("input", { id, type: "text", value: value ?? "", placeholder: nullable ? "empty = none" : null });
    }
    fields.push({ path, kind, input, nullable });
    const unit = schema["x-unit"] ? " (" + schema["x-unit"] + ")" : "";
    const bounds = [schema.minimum !== undefined ? "≥ " + schema.minimum : null,
      schema.maximum !== undefined ? "≤ " + schema.maximum : null].filter(Boolean).join(", ");
    const label = kind === "boolean"
      ? el("label", { for: id }, input, " ", name)
      : el("label", { for: id, text: name + unit });
    return el("div", { class: "field" }, label, kind === "boolean" ? null : input,
      el("div", { class: "help", text: (schema.description || "") + (bounds ? " [" + bounds + "]" : "") }),
      el("div", { class: "problem", id: "problem-" + path.join(".") }));
  }

  function section(name, schema, path) {
    const box = el("fieldset", { id: "section-" + path.join(".") }, el("legend", { text: name }));
    if (schema.description) box.append(el("div", { class: "help muted", text: schema.description }));
    box.append(el("div", { class: "problem", id: "problem-" + path.join(".") }));
    for (const [key, sub] of Object.entries(schema.properties || {})) {
      if (SKIP.has(key)) continue;
      const subPath = path.concat(key);
      box.append(sub.properties ? section(key, sub, subPath) : leaf(key, sub, subPath));
    }
    return box;
  }

  function collect() {
    const data = JSON.parse(JSON.stringify(config));
    const bad = [];
    for (const f of fields) {
      let value;
      const raw = f.input.value;
      if (f.kind === "boolean") value = f.input.checked;
      else if (f.kind === "enum") value = JSON.parse(raw);
      else if (f.kind === "json") {
        try { value = JSON.parse(raw); } catch (err) { bad.push([f, "not valid JSON: " + err.message]); continue; }
      } else if (raw.trim() === "") {
        if (!f.nullable && get(config, f.path) === undefined) continue;  // a key the file leaves out
        value = f.nullable ? null : "";
      }
      else if (f.kind === "number") value = Number.isFinite(Number(raw)) ? Number(raw) : raw;
      else value = raw;
      set(data, f.path, value);
    }
    return { data, bad };
  }

  function clearProblems() { document.querySelectorAll(".problem").forEach((p) => { p.textContent = ""; }); }

  function place(problem) {
    let key = problem.key_path.replace(/\[\d+\].*$/, "");
    while (key) {
      const box = document.getElementById("problem-" + key);
      if (box) { box.textContent += problem.text + " "; return; }
      key = key.includes(".") ? key.slice(0, key.lastIndexOf(".")) : "";
    }
    $("settings-message").append(el("div", { text: problem.text }));
  }

  async function save() {
    clearProblems();
    const { data, bad } = collect();
    if (bad.length) {
      bad.forEach(([f, text]) => place({ key_path: f.path.join("."), text }));
      show($("settings-message"), "fix the marked fields", "error");
      return;
    }
    const result = await api("PUT", "/api/config", { config: data, version });
    if (result.ok) {
      config = result.data.config;
      version = result.data.version;
      show($("settings-message"), "saved and applied (charger, device, web and logging changes need a restart)", "ok");
      return;
    }
    show($("settings-message"), explain(result), "error");
    if (result.status === 409) {
      // the file changed since this page loaded: nothing was saved; the form keeps what was typed
      $("settings-message").append(" ", el("button", { type: "button", id: "reload-settings",
        onclick: () => location.reload(), text: "Reload the file (drops the changes made here)" }));
    }
    (result.data.problems || []).forEach(place);
    const first = document.querySelector(".problem:not(:empty)");
    if (first) first.scrollIntoView({ block: "center" });
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const [current, schema] = await Promise.all([api("GET", "/api/config"), api("GET", "/api/config/schema")]);
    if (!current.ok || !schema.ok) { show($("settings-message"), explain(current.ok ? schema : current), "error"); return; }
    config = current.data.config;
    version = current.data.version;
    $("config-path").textContent = current.data.path || "(none)";
    if ((current.data.file_problems || []).length) {
      show($("settings-message"), "The file cannot be loaded, so the form shows the running config; saving writes it over the file: " + current.data.file_problems.join("; "), "error");
    }
    const form = $("settings-form");
    for (const [key, sub] of Object.entries(schema.data.properties)) {
      form.append(sub.properties ? section(key, sub, [key]) : el("fieldset", {}, leaf(key, sub, [key])));
    }
    $("save-settings").addEventListener("click", save);
    form.addEventListener("submit", (event) => { event.preventDefault(); save(); });
  });
})();
