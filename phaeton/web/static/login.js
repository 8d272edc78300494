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
      // the first password: set here, then log in with it
      $("first-card").hidden = false;
      $("login-card").hidden = true;
    }
    $("first-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      if ($("first-password").value !== $("first-repeat").value) {
        show($("first-message"), "the two passwords differ", "error");
        return;
      }
      const result = await api("POST", "/api/password", { new_password: $("first-password").value });
      if (!result.ok) { show($("first-message"), explain(result), "error"); return; }
      show($("login-message"), result.data.message, "ok");
      $("first-card").hidden = true;
      $("login-card").hidden = false;
      $("password").focus();
    });
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
