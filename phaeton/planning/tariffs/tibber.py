"""Tibber: today's and tomorrow's prices from the Tibber GraphQL API.

Import price = import formula applied to Tibber's `total` (energy + tax, what the customer
pays; the default formula passes it through). Export price = export formula applied to
`energy` (the spot part without tax).
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import numpy as np

from phaeton.clock import REAL_CLOCK, Clock
from phaeton.planning.tariffs.base import FetchingTariff, TariffError
from phaeton.planning.tariffs.factory import TariffContext, construct
from phaeton.planning.tariffs.formula import ExportFormula, ImportFormula
from phaeton.planning.tariffs.schedule import RefreshPolicy
from phaeton.planning.tariffs.series import PriceDataError, PriceSeries, price_unit

TIBBER_URL = "https://api.tibber.com/v1-beta/gql"
RESOLUTIONS_S = {"HOURLY": 3600, "QUARTER_HOURLY": 900}

_PRICE_FIELDS = "total energy tax startsAt"


def tibber_query(resolution: str) -> str:
    """The GraphQL query; hourly uses the classic `priceInfo` without arguments."""
    args = "" if resolution == "HOURLY" else f"(resolution: {resolution})"
    return ("{ viewer { homes { id currentSubscription { priceInfo" + args + " { "
            f"today {{ {_PRICE_FIELDS} }} tomorrow {{ {_PRICE_FIELDS} }} }} }} }} }} }}")


@dataclass(frozen=True)
class TibberConfig:
    """Settings of a Tibber tariff. `home_id` None takes the first home with a subscription."""

    token: str
    home_id: str | None = None
    url: str = TIBBER_URL
    resolution: str = "HOURLY"
    import_formula: ImportFormula = field(default_factory=ImportFormula)
    export_formula: ExportFormula = field(default_factory=ExportFormula)

    def __post_init__(self) -> None:
        if not isinstance(self.token, str) or not self.token.strip():
            raise ValueError("tibber token must be a non-empty string")
        if self.resolution not in RESOLUTIONS_S:
            raise ValueError(f"tibber resolution must be one of {sorted(RESOLUTIONS_S)}, "
                             f"got {self.resolution!r}")
        if not str(self.url).startswith(("http://", "https://")):
            raise ValueError(f"tibber url must be http(s), got {self.url!r}")


def parse_tibber_answer(text: str, resolution: str, home_id: str | None,
                        import_formula: ImportFormula, export_formula: ExportFormula,
                        fetched_at_s: float) -> PriceSeries:
    """Turn a Tibber GraphQL answer into a PriceSeries; PriceDataError on anything odd."""
    try:
        answer = json.loads(text)
    except ValueError as exc:
        raise PriceDataError(f"tibber: answer is not JSON: {text.strip()[:80]!r}") from exc
    if not isinstance(answer, dict):
        raise PriceDataError("tibber: answer is not a JSON object")
    if answer.get("errors"):
        messages = "; ".join(str(err.get("message", err)) if isinstance(err, dict) else str(err)
                             for err in answer["errors"])
        raise PriceDataError(f"tibber: API error: {messages}")
    try:
        homes = answer["data"]["viewer"]["homes"]
    except (KeyError, TypeError) as exc:
        raise PriceDataError("tibber: answer lacks data.viewer.homes") from exc
    if not isinstance(homes, list) or not homes:
        raise PriceDataError("tibber: the account has no homes")
    candidates = [h for h in homes if isinstance(h, dict)
                  and (home_id is None or h.get("id") == home_id)]
    if home_id is not None and not candidates:
        raise PriceDataError(f"tibber: no home with id {home_id!r} in this account")
    subscribed = [h for h in candidates if isinstance(h.get("currentSubscription"), dict)]
    if not subscribed:
        raise PriceDataError("tibber: the home has no current subscription")
    try:
        info = subscribed[0]["currentSubscription"]["priceInfo"]
        today = info["today"]
        tomorrow = info.get("tomorrow") or []
    except (KeyError, TypeError) as exc:
        raise PriceDataError("tibber: answer lacks priceInfo.today") from exc
    if not isinstance(today, list) or not isinstance(tomorrow, list):
        raise PriceDataError("tibber: priceInfo.today/tomorrow are not lists")
    slot_s = RESOLUTIONS_S[resolution]
    starts, totals, energies = [], [], []
    for entry in today + tomorrow:
        try:
            start = dt.datetime.fromisoformat(str(entry["startsAt"]).replace("Z", "+00:00"))
            total = float(entry["total"])
            energy = float(entry["energy"])
        except (KeyError, TypeError, ValueError) as exc:
            raise PriceDataError(f"tibber: bad price entry {entry!r}: {exc}") from exc
        if start.tzinfo is None:
            raise PriceDataError(f"tibber: startsAt without UTC offset: {entry['startsAt']!r}")
        starts.append(int(start.timestamp()))
        totals.append(total)
        energies.append(energy)
    if not starts:
        raise PriceDataError("tibber: no prices in the answer")
    start_s = np.array(starts, np.int64)
    if np.any(np.diff(start_s) <= 0):
        raise PriceDataError("tibber: startsAt not strictly increasing")
    if np.any(np.diff(start_s) < slot_s) or np.any(start_s % slot_s):
        raise PriceDataError(f"tibber: slots do not match the {resolution} resolution")
    totals_arr = np.array(totals)
    energies_arr = np.array(energies)
    if not (np.all(np.isfinite(totals_arr)) and np.all(np.isfinite(energies_arr))):
        raise PriceDataError("tibber: answer contains prices that are not numbers")
    return PriceSeries(start_s, np.full(start_s.size, slot_s),
                       import_formula.apply(totals_arr), export_formula.apply(energies_arr),
                       "tibber", fetched_at_s)


class TibberTariff(FetchingTariff):
    """Prices from Tibber, cached, refreshed after ~13:00 CET until tomorrow appears."""

    def __init__(self, config: TibberConfig, *, cache_path=None,
                 policy: RefreshPolicy | None = None, clock: Clock = REAL_CLOCK,
                 timeout_s: float = 20.0, unit: str = price_unit()):
        self.config = config
        super().__init__(source="tibber", cache_path=cache_path, policy=policy, clock=clock,
                         timeout_s=timeout_s, unit=unit)

    def config_key(self) -> str:
        c = self.config
        return (f"tibber|{c.url}|{c.home_id}|{c.resolution}|{c.import_formula!r}|"
                f"{c.export_formula!r}")

    async def _fetch(self, now_s: float) -> PriceSeries:
        body = await self._get_text(
            self.config.url, method="POST",
            json={"query": tibber_query(self.config.resolution)},
            headers={"Authorization": f"Bearer {self.config.token}",
                     "Content-Type": "application/json"})
        series = parse_tibber_answer(body, self.config.resolution, self.config.home_id,
                                     self.config.import_formula, self.config.export_formula,
                                     now_s)
        if series.covered_until_s(now_s) <= now_s:
            raise TariffError("tibber: the answer has no price for the current time")
        return series


def tariff_from_section(settings: dict, context: TariffContext) -> TibberTariff:
    """The builder `tariffs.registry` names: `planner.tariff.tibber` with the shared formulas,
    refresh policy, timeout and cache the factory put in `context`."""
    config = construct(TibberConfig, settings, context.where, **context.formulas)
    return TibberTariff(config, **context.fetching_options())
