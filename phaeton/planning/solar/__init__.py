"""Weather-based PV forecasts from online services (docs/tariffs.md, "PV forecast sources").

`planner.pv_forecast.source` names one: `learned` (the default: the offline model of
`planning/forecast_pv.py` alone), `open_meteo`, `forecast_solar` or `solcast`; the kinds are
listed once, in `solar.registry`. Each source fetches the expected PV power of the site's arrays
as a `PvSeries` (kW per slot) and keeps it in a cache, so a GX that boots offline plans with
the last forecast it had. `solar.blend` calibrates the forecast with what this site's meter
measured and puts it in place of the learned forecast where it has values; where it has none
(offline, beyond its horizon) the learned forecast stands.
"""
