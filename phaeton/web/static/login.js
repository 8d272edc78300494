// Login page: POST /api/login, then back to where the user came from.
"use strict";
(() => {
  const { api, explain, show } = phaeton;
  const $ = (id) => document.getElementById(id);

  function nextPage() {
    const next = new URLSearchParams(location.search).get("next") || "/";
    return next.startsWith("/") && !next.startsWith("//") ? next : "/";
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const state = await phaeton.loadSession();
    if (!state.password_set) {
      show($("login-message"), "No web password is set, so the UI is read-only. Set one on the GX with: python -m phaeton.web.set_password --config /data/phaeton/config.yaml", "error");
    }
    if (state.logged_in) $("change-card").hidden = false;
    $("login-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const result = await api("POST", "/api/login", { password: $("password").value });
      if (result.ok) {
        show($("login-message"), "logged in", "ok");
        location.href = nextPage();
      } else {
        show($("login-message"), explain(result).replace(" — log in first.", ""), "error");
        $("password").select();
      }
    });
    $("change-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const result = await api("POST", "/api/password", {
        current_password: $("current-password").value, new_password: $("new-password").value });
      show($("change-message"), result.ok ? result.data.message : explain(result), result.ok ? "ok" : "error");
    });
  });
})();
