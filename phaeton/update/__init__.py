"""Self-update: check, verify, install beside, switch, health check, roll back (docs/update.md).

The modules, each with one job:
- `version`, `releases`, `window`: pure decisions (version order, which release a channel
  offers, whether now is inside the automatic-update window);
- `ed25519`: a pure-Python Ed25519 signature verifier (RFC 8032);
- `settings`: the `update:` section and the few other config keys the updater needs, as plain
  values;
- `fetch` (HTTP), `verify` (size, SHA-256, signature of a download), `layout` (the install's
  directories and its `current`/`previous` links), `pending` (the marker of an update in
  progress), `stage` (unpack a release and build its venv beside the running one), `health`
  (is the new version on the D-Bus and does its web UI answer /health), `supervise` (svc,
  svstat), `status` (the progress file the web UI polls): the edges;
- `engine`: the steps of check, apply, rollback and recovery, in order, with their refusals;
- `cli`: `phaeton update check | apply | rollback | status | recover`;
- `in_service`: what the running service does: answer the web UI, start a detached apply or
  rollback, the daily automatic update.

Nothing here imports the web UI: the web's `update_api` reaches this package through the
service object (`phaeton.app.Phaeton.updates`), as `/metrics` reaches `phaeton.metrics`.
"""
