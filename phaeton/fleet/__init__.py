"""The fleet: operators send a site charge/discharge schedules over their MQTT broker, the site
executes them and acknowledges (contract: docs/fleet.md, docs/fleet.schema.json).

`contract` is the pure message format (envelopes, schedules, acks), `store` the site's SQLite
copy of its schedules and outbox, `slots` the pure execution rules, `mqtt_link` the broker
connection, `site_client` the site's daemon part, `operator` the `phaeton fleet` commands.
"""
