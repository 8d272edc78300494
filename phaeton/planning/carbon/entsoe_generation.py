"""ENTSO-E Transparency Platform: actual generation per production type (documentType A75,
processType A16 "realised") turned into a carbon intensity with lifecycle factors per type
(`factors.py`, docs/carbon.md).

GET {url}?securityToken=..&documentType=A75&processType=A16&in_Domain=<EIC>
          &periodStart=yyyyMMddHHmm&periodEnd=yyyyMMddHHmm   (UTC)
answers a GL_MarketDocument: TimeSeries, each with MktPSRType/psrType (B01..B25), an
inBiddingZone_Domain.mRID (generation) or an outBiddingZone_Domain.mRID (consumption, e.g.
pumping; left out), quantity_Measure_Unit.name MAW, and Periods (timeInterval, resolution
PT15M/PT30M/PT60M, Points of position and quantity in MW). Curve type A03 repeats a missing
position's previous value; A01 leaves a gap. No data: an Acknowledgement_MarketDocument.

The intensity of a 15-minute slot is sum(MW x factor) / sum(MW) over the production types,
storage left out. A slot for which any production type of the answer has no value (the types
are published with different delays) is left out rather than computed from part of the mix.
History only: ENTSO-E publishes no forecast of the whole mix.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

from phaeton.clock import REAL_CLOCK, Clock
from phaeton.planning.carbon.base import CarbonError, FetchingCarbonSource
from phaeton.planning.carbon.factors import PSR_TYPES, mix_intensity
from phaeton.planning.carbon.factory import CarbonContext, construct
from phaeton.planning.interval_refresh import IntervalRefresh
from phaeton.planning.carbon.series import (QUARTER_HOUR_S, CarbonDataError, CarbonSeries,
                                            finite_number)
from phaeton.planning.tariffs.series import TimeSeries

log = logging.getLogger(__name__)

ENTSOE_URL = "https://web-api.tp.entsoe.eu/api"
DE_LU_EIC = "10Y1001A1001A82H"
NAME = "entsoe_generation"
HISTORY_S = 86400
_RESOLUTION_S = {"PT15M": 900, "PT30M": 1800, "PT60M": 3600, "PT1H": 3600}
_EIC = re.compile(r"^[0-9]{2}[A-Z0-9-]{14}$")


@dataclass(frozen=True)
class EntsoeGenerationConfig:
    """`area`: the EIC code of a bidding zone or control area."""

    token: str
    area: str = DE_LU_EIC
    url: str = ENTSOE_URL

    def __post_init__(self) -> None:
        if not isinstance(self.token, str) or not self.token.strip():
            raise ValueError("token must be a non-empty string")
        if not isinstance(self.area, str) or not _EIC.match(self.area):
            raise ValueError(f"area must be a 16-character EIC code like {DE_LU_EIC}, got "
                             f"{self.area!r}")
        if not str(self.url).startswith(("http://", "https://")):
            raise ValueError(f"url must be http(s), got {self.url!r}")


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
        raise CarbonDataError(f"{NAME}: {where} lacks <{name}>")
    return child.text.strip()


def _utc_s(text: str) -> int:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CarbonDataError(f"{NAME}: bad time {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return int(moment.timestamp())


def parse_generation(text: str) -> dict[str, TimeSeries]:
    """Generation in MW per production type (psrType) from an A75 document, each a one-column
    ("mw") series; consumption series left out. CarbonDataError on garbage, CarbonError on an
    acknowledgement (no data)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise CarbonDataError(f"{NAME}: answer is not XML: {text.strip()[:80]!r}") from exc
    kind = _local(root.tag)
    if kind == "Acknowledgement_MarketDocument":
        reasons = [(_child(r, "text").text or "").strip() for r in root.iter()
                   if _local(r.tag) == "Reason" and _child(r, "text") is not None]
        raise CarbonError(f"{NAME}: no data: " + ("; ".join(reasons) or "acknowledgement"))
    if kind != "GL_MarketDocument":
        raise CarbonDataError(f"{NAME}: unexpected document <{kind}>")
    by_type: dict[str, TimeSeries] = {}
    for series_elem in _children(root, "TimeSeries"):
        if _child(series_elem, "outBiddingZone_Domain.mRID") is not None:
            continue                                   # consumption (pumping, charging)
        psr_elem = _child(series_elem, "MktPSRType")
        if psr_elem is None:
            raise CarbonDataError(f"{NAME}: TimeSeries lacks <MktPSRType>")
        psr = _text(psr_elem, "psrType", "MktPSRType")
        if psr not in PSR_TYPES:
            log.warning("%s: unknown production type %s counted as 'other'", NAME, psr)
        unit = _child(series_elem, "quantity_Measure_Unit.name")
        if unit is not None and (unit.text or "").strip() != "MAW":
            raise CarbonDataError(f"{NAME}: quantities in {unit.text!r}, expected MAW (MW)")
        curve = _child(series_elem, "curveType")
        curve_type = (curve.text or "").strip() if curve is not None else "A01"
        for period in _children(series_elem, "Period"):
            start, duration, mw = _parse_period(period, curve_type, psr)
            if not start.size:
                continue
            piece = TimeSeries(start, duration, {"mw": mw}, unit="MW", source=NAME,
                               fetched_at_s=0)
            previous = by_type.get(psr)
            by_type[psr] = piece if previous is None else previous.merged_with(piece)
    if not by_type:
        raise CarbonDataError(f"{NAME}: document has no generation TimeSeries")
    return by_type


def _parse_period(period: ET.Element, curve_type: str, psr: str):
    interval = _child(period, "timeInterval")
    if interval is None:
        raise CarbonDataError(f"{NAME}: Period lacks <timeInterval>")
    start = _utc_s(_text(interval, "start", "timeInterval"))
    end = _utc_s(_text(interval, "end", "timeInterval"))
    resolution = _text(period, "resolution", "Period")
    if resolution not in _RESOLUTION_S:
        raise CarbonDataError(f"{NAME}: unsupported resolution {resolution!r}")
    step = _RESOLUTION_S[resolution]
    if end <= start or (end - start) % step:
        raise CarbonDataError(f"{NAME}: period {start}..{end} is not a whole number of "
                              f"{resolution}")
    count = (end - start) // step
    by_position: dict[int, float] = {}
    for point in _children(period, "Point"):
        try:
            position = int(_text(point, "position", "Point"))
        except ValueError as exc:
            raise CarbonDataError(f"{NAME}: bad Point position: {exc}") from exc
        quantity = finite_number(_text(point, "quantity", "Point"),
                                 f"{NAME}: {psr} quantity at position {position}")
        if quantity < 0:
            raise CarbonDataError(f"{NAME}: negative generation {quantity:g} MW for {psr} at "
                                  f"position {position}")
        if not 1 <= position <= count:
            raise CarbonDataError(f"{NAME}: position {position} outside 1..{count}")
        by_position[position] = quantity
    positions, values, last = [], [], None
    for position in range(1, count + 1):
        if position in by_position:
            last = by_position[position]
        elif curve_type != "A03" or last is None:
            continue
        positions.append(position)
        values.append(last)
    pos = np.array(positions, np.int64)
    return start + (pos - 1) * step, np.full(pos.size, step, np.int64), np.array(values, float)


def intensity_from_generation(by_type: dict[str, TimeSeries], fetched_at_s: float,
                              slot_s: int = QUARTER_HOUR_S) -> CarbonSeries:
    """The mix's intensity per `slot_s` slot where every production type has a value and
    something (other than storage) generates; CarbonDataError when no slot qualifies."""
    first = min(int(series.start_s[0]) for series in by_type.values())
    end = max(int(series.end_s) for series in by_type.values())
    gridded = {psr: series.on_grid(first, end - first, slot_s).values["mw"]
               for psr, series in by_type.items()}
    complete = np.all([~np.isnan(mw) for mw in gridded.values()], axis=0)
    if not np.any(complete):
        raise CarbonDataError(f"{NAME}: no slot has every production type's generation")
    g_per_kwh = mix_intensity({psr: np.where(complete, mw, 0.0)
                               for psr, mw in gridded.items()})
    keep = complete & np.isfinite(g_per_kwh)
    if not np.any(keep):
        raise CarbonDataError(f"{NAME}: the answer has no slot with generation")
    starts = (first // slot_s * slot_s) + slot_s * np.flatnonzero(keep).astype(np.int64)
    return CarbonSeries(starts, np.full(starts.size, slot_s), g_per_kwh[keep], NAME,
                        fetched_at_s)


class EntsoeGeneration(FetchingCarbonSource):
    """The realised generation mix of the last 24 h from ENTSO-E, as g CO2-eq/kWh."""

    def __init__(self, config: EntsoeGenerationConfig, *, cache_path=None,
                 refresh: IntervalRefresh | None = None, clock: Clock = REAL_CLOCK,
                 timeout_s: float = 20.0):
        self.config = config
        super().__init__(source=NAME, cache_path=cache_path, refresh=refresh, clock=clock,
                         timeout_s=timeout_s)

    def config_key(self) -> str:
        return f"{NAME}|{self.config.url}|{self.config.area}"

    def query_params(self, now_s: float) -> dict[str, str]:
        """The last 24 h up to the end of the current hour (UTC yyyyMMddHHmm)."""
        end = (int(now_s) // 3600 + 1) * 3600

        def fmt(t: int) -> str:
            return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y%m%d%H%M")

        return {"securityToken": self.config.token, "documentType": "A75",
                "processType": "A16", "in_Domain": self.config.area,
                "periodStart": fmt(end - HISTORY_S - 3600), "periodEnd": fmt(end)}

    async def _fetch(self, now_s: float) -> CarbonSeries:
        body = await self._get_text(self.config.url, params=self.query_params(now_s))
        return intensity_from_generation(parse_generation(body), now_s)


def source_from_section(settings: dict, context: CarbonContext) -> EntsoeGeneration:
    """The builder `carbon.registry` names: `carbon.entsoe_generation`."""
    config = construct(EntsoeGenerationConfig, settings, context.where)
    return EntsoeGeneration(config, **context.fetching_options())
