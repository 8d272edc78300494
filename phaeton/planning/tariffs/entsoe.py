"""ENTSO-E Transparency Platform: day-ahead spot prices (documentType A44) for a bidding zone.

The REST API answers a GET with the token as `securityToken` query parameter and returns a
Publication_MarketDocument: TimeSeries / Period (timeInterval, resolution PT60M or PT15M) /
Point (position, price.amount in €/MWh). With curve type A03 a missing position repeats the
previous price. When there is no data it answers an Acknowledgement_MarketDocument.
"""
from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np

from phaeton.clock import REAL_CLOCK, Clock
from phaeton.planning.tariffs.base import FetchingTariff, TariffError
from phaeton.planning.tariffs.factory import TariffContext, construct
from phaeton.planning.tariffs.formula import ExportFormula, ImportFormula
from phaeton.planning.tariffs.schedule import RefreshPolicy, local_day_bounds_s
from phaeton.planning.tariffs.series import PriceDataError, PriceSeries, price_unit

ENTSOE_URL = "https://web-api.tp.entsoe.eu/api"
DE_LU_EIC = "10Y1001A1001A82H"
_RESOLUTION_S = {"PT15M": 900, "PT30M": 1800, "PT60M": 3600, "PT1H": 3600}
_EIC = re.compile(r"^[0-9]{2}[A-Z0-9-]{14}$")


@dataclass(frozen=True)
class EntsoeConfig:
    """Settings of an ENTSO-E tariff; `area` is the bidding zone's EIC code."""

    token: str
    area: str = DE_LU_EIC
    url: str = ENTSOE_URL
    import_formula: ImportFormula = field(default_factory=ImportFormula)
    export_formula: ExportFormula = field(default_factory=ExportFormula)

    def __post_init__(self) -> None:
        if not isinstance(self.token, str) or not self.token.strip():
            raise ValueError("entsoe token must be a non-empty string")
        if not isinstance(self.area, str) or not _EIC.match(self.area):
            raise ValueError(f"entsoe area must be a 16-character EIC code like {DE_LU_EIC}, "
                             f"got {self.area!r}")
        if not str(self.url).startswith(("http://", "https://")):
            raise ValueError(f"entsoe url must be http(s), got {self.url!r}")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(elem: ET.Element, name: str) -> ET.Element | None:
    for child in elem:
        if _local(child.tag) == name:
            return child
    return None


def _children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in elem if _local(child.tag) == name]


def _text(elem: ET.Element, name: str, where: str) -> str:
    child = _child(elem, name)
    if child is None or child.text is None or not child.text.strip():
        raise PriceDataError(f"entsoe: {where} lacks <{name}>")
    return child.text.strip()


def _utc_s(text: str) -> int:
    """ENTSO-E times look like 2026-03-28T23:00Z."""
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise PriceDataError(f"entsoe: bad time {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return int(moment.timestamp())


def parse_entsoe_spot(text: str) -> PriceSeries:
    """Spot prices (€/kWh, in the import column; export zero) from an A44 document.

    Where several periods cover the same time (hourly and 15-min publications), the finer
    resolution wins. Raises PriceDataError on garbage and TariffError on an acknowledgement.
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise PriceDataError(f"entsoe: answer is not XML: {text.strip()[:80]!r}") from exc
    kind = _local(root.tag)
    if kind == "Acknowledgement_MarketDocument":
        reasons = [(_child(r, "text").text or "").strip() for r in root.iter()
                   if _local(r.tag) == "Reason" and _child(r, "text") is not None]
        raise TariffError("entsoe: no prices: " + ("; ".join(reasons) or "acknowledgement"))
    if kind != "Publication_MarketDocument":
        raise PriceDataError(f"entsoe: unexpected document <{kind}>")
    periods = []
    for series_elem in _children(root, "TimeSeries"):
        currency = _child(series_elem, "currency_Unit.name")
        unit = _child(series_elem, "price_Measure_Unit.name")
        if currency is not None and (currency.text or "").strip() != "EUR":
            raise PriceDataError(f"entsoe: prices in {currency.text!r}, expected EUR")
        if unit is not None and (unit.text or "").strip() != "MWH":
            raise PriceDataError(f"entsoe: prices per {unit.text!r}, expected MWH")
        curve = _child(series_elem, "curveType")
        curve_type = (curve.text or "").strip() if curve is not None else "A01"
        for period in _children(series_elem, "Period"):
            periods.append(_parse_period(period, curve_type))
    if not periods:
        raise PriceDataError("entsoe: document has no TimeSeries/Period")
    merged = PriceSeries.empty("entsoe")
    # coarse periods first, so a finer publication of the same hours replaces them
    periods = [p for p in periods if p[0].size]
    for start_s, duration_s, spot in sorted(periods, key=lambda p: -int(p[1][0])):
        zeros = np.zeros(start_s.size)
        merged = merged.merged_with(PriceSeries(start_s, duration_s, spot, zeros, "entsoe", 0))
    return merged


def _parse_period(period: ET.Element, curve_type: str):
    interval = _child(period, "timeInterval")
    if interval is None:
        raise PriceDataError("entsoe: Period lacks <timeInterval>")
    start = _utc_s(_text(interval, "start", "timeInterval"))
    end = _utc_s(_text(interval, "end", "timeInterval"))
    resolution = _text(period, "resolution", "Period")
    if resolution not in _RESOLUTION_S:
        raise PriceDataError(f"entsoe: unsupported resolution {resolution!r}")
    step = _RESOLUTION_S[resolution]
    if end <= start or (end - start) % step:
        raise PriceDataError(f"entsoe: period {start}..{end} is not a whole number of {resolution}")
    count = (end - start) // step
    by_position: dict[int, float] = {}
    for point in _children(period, "Point"):
        try:
            position = int(_text(point, "position", "Point"))
            price = float(_text(point, "price.amount", "Point"))
        except ValueError as exc:
            raise PriceDataError(f"entsoe: bad Point: {exc}") from exc
        if not 1 <= position <= count:
            raise PriceDataError(f"entsoe: position {position} outside 1..{count}")
        if not np.isfinite(price):
            raise PriceDataError(f"entsoe: price at position {position} is not a number")
        by_position[position] = price / 1000.0  # €/MWh → €/kWh
    if not by_position:
        raise PriceDataError("entsoe: Period has no Points")
    positions = []
    prices = []
    last = None
    for position in range(1, count + 1):
        if position in by_position:
            last = by_position[position]
        elif curve_type != "A03" or last is None:
            continue  # A01: a missing point is a gap
        positions.append(position)
        prices.append(last)
    pos = np.array(positions, np.int64)
    return start + (pos - 1) * step, np.full(pos.size, step, np.int64), np.array(prices)


class EntsoeTariff(FetchingTariff):
    """Day-ahead prices from ENTSO-E with import/export formulas applied."""

    def __init__(self, config: EntsoeConfig, *, cache_path=None,
                 policy: RefreshPolicy | None = None, clock: Clock = REAL_CLOCK,
                 timeout_s: float = 20.0, unit: str = price_unit()):
        self.config = config
        super().__init__(source="entsoe", cache_path=cache_path, policy=policy, clock=clock,
                         timeout_s=timeout_s, unit=unit)

    def config_key(self) -> str:
        c = self.config
        return f"entsoe|{c.url}|{c.area}|{c.import_formula!r}|{c.export_formula!r}"

    def query_params(self, now_s: float) -> dict[str, str]:
        """Today and tomorrow in the market's local time (the API wants UTC yyyyMMddHHmm)."""
        start, _ = local_day_bounds_s(now_s, self.policy.zone)
        _, end = local_day_bounds_s(now_s, self.policy.zone, days_ahead=1)

        def fmt(t: int) -> str:
            return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y%m%d%H%M")

        return {"securityToken": self.config.token, "documentType": "A44",
                "in_Domain": self.config.area, "out_Domain": self.config.area,
                "periodStart": fmt(start), "periodEnd": fmt(end)}

    async def _fetch(self, now_s: float) -> PriceSeries:
        body = await self._get_text(self.config.url, params=self.query_params(now_s))
        spot = parse_entsoe_spot(body)
        if spot.covered_until_s(now_s) <= now_s:
            raise TariffError("entsoe: the answer has no price for the current time")
        values = spot.import_eur_per_kwh
        return PriceSeries(spot.start_s, spot.duration_s,
                           self.config.import_formula.apply(values),
                           self.config.export_formula.apply(values), "entsoe", now_s)


def tariff_from_section(settings: dict, context: TariffContext) -> EntsoeTariff:
    """The builder `tariffs.registry` names: `planner.tariff.entsoe` with the shared formulas,
    refresh policy, timeout and cache the factory put in `context`."""
    config = construct(EntsoeConfig, settings, context.where, **context.formulas)
    return EntsoeTariff(config, **context.fetching_options())
