#!/usr/bin/env python3
"""Turn an OPSD household file and a day-ahead price file into replay inputs.

    python3 benchmarks/data/prepare_opsd.py HOUSEHOLD_CSV PRICE_CSV \
        [--household DE_KN_residential4] [--year 2016] [--start 2015-10-12] [--out-dir DIR]

HOUSEHOLD_CSV is Open Power System Data's household_data_60min_singleindex.csv (or the
15min file). PRICE_CSV is either Energinet's "Elspot Prices" export (HourUTC, PriceArea,
SpotPriceEUR; the PriceArea DE rows are used) or OPSD's time_series_60min_singleindex*.csv
(DE_AT_LU_price_day_ahead until 2018-09-30, DE_LU_price_day_ahead from 2018-10-01).

Writes, for every interval from --start (00:00 UTC) to the end of --year (UTC):
  opsd_<household>_<year>.csv   start_s,load_kwh,pv_kwh   (start_s = unix seconds UTC)
  prices_de_<year>.csv          start,spot_eur_per_kwh    (hourly, ISO 8601 UTC)
An empty field means "not known"; nothing is filled in or spread out.

How the household counters are read:
- OPSD's columns are cumulative kWh counters. A row labelled L holds the last reading inside
  [L, L + step) (OPSD resampled with pandas .resample().last()), so it is the counter at the
  END of that interval; the energy of an interval is reading(end) - reading(start).
- OPSD releases before 2019 (they have an `interpolated_values` column) wrote local
  Europe/Berlin time into `utc_timestamp` (upstream fix: isc-konstanz/household_data commit
  5c9670b, "fix time change error in datetime index"). With --labels auto such files are read
  as Berlin local time; labels that do not exist (spring forward) or occur twice (fall back)
  are dropped, so the intervals around them become empty.
- load = grid_import + pv - grid_export (valid for a house without a battery).

Gap treatment (each case counted in the summary):
- a counter empty at either end of an interval -> that quantity is unknown;
- a counter going backwards (reset, meter swap) -> unknown for that interval;
- an implied mean power above MAX_KW on any counter -> unknown (absurd);
- load is empty when any of its three counters is unknown, or when it comes out negative
  (the meters were not read at the same instant); pv is kept if its own counter is fine;
- a missing price hour stays empty.
Totals only add intervals whose value is known; the summary says how many are not.
"""

import argparse
import csv
import sys
from datetime import datetime, timedelta, timezone

MAX_KW = 30.0          # above this mean power over an interval a difference is "absurd"
COUNTERS = ("grid_import", "grid_export", "pv")
UTC = timezone.utc


def last_sunday(year, month):
    day = datetime(year, month, 31)      # March and October both have 31 days
    return day - timedelta(days=(day.weekday() + 1) % 7)


def berlin_local_to_utc(local):
    """Naive Europe/Berlin wall time -> aware UTC, or None if the time is skipped or repeated.

    EU rule (since 1996): summer time from the last Sunday of March 02:00 (-> 03:00) to the
    last Sunday of October 03:00 (-> 02:00).
    """
    spring = last_sunday(local.year, 3).replace(hour=2)
    autumn = last_sunday(local.year, 10).replace(hour=2)
    if spring <= local < spring + timedelta(hours=1):
        return None                      # does not exist
    if autumn <= local < autumn + timedelta(hours=1):
        return None                      # happens twice, cannot tell which
    offset = 2 if spring + timedelta(hours=1) <= local < autumn else 1
    return (local - timedelta(hours=offset)).replace(tzinfo=UTC)


def parse_naive(text):
    return datetime.strptime(text[:19].replace(" ", "T"), "%Y-%m-%dT%H:%M:%S")


def to_wh(text):
    return None if text.strip() == "" else round(float(text) * 1000)


def read_household(path, household, labels):
    """Return (step, {UTC instant: {counter: Wh or None}}, instants whose reading OPSD flagged)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    header = rows[0].keys()
    missing = [c for c in COUNTERS if f"{household}_{c}" not in header]
    if missing:
        sys.exit(f"{path}: no column(s) {', '.join(household + '_' + c for c in missing)}")
    if labels == "auto":
        labels = "berlin" if "interpolated_values" in header else "utc"
    marker = "interpolated_values" if "interpolated_values" in header else "interpolated"
    step = parse_naive(rows[1]["utc_timestamp"]) - parse_naive(rows[0]["utc_timestamp"])
    readings, flagged, dropped = {}, set(), 0
    for row in rows:
        label = parse_naive(row["utc_timestamp"])
        start = berlin_local_to_utc(label) if labels == "berlin" else label.replace(tzinfo=UTC)
        if start is None:
            dropped += 1
            continue
        end = start + step
        readings[end] = {c: to_wh(row[f"{household}_{c}"]) for c in COUNTERS}
        if any(f"{household}_{c}" in (row.get(marker) or "") for c in COUNTERS):
            flagged.add(end)
    print(f"household: {path}: {len(rows)} rows, step {step}, labels read as {labels}, "
          f"{dropped} label(s) dropped at clock changes")
    return step, readings, flagged


def interval_energy(readings, start, step, counts):
    """Wh per counter for [start, start + step); None where unknown (reason counted)."""
    limit_wh = MAX_KW * 1000 * step.total_seconds() / 3600
    a, b = readings.get(start), readings.get(start + step)
    out = {}
    for c in COUNTERS:
        va = a[c] if a else None
        vb = b[c] if b else None
        if va is None or vb is None:
            counts["missing counter"] += 1
            out[c] = None
        elif vb < va:
            counts["counter went backwards"] += 1
            out[c] = None
        elif vb - va > limit_wh:
            counts[f"above {MAX_KW:g} kW"] += 1
            out[c] = None
        else:
            out[c] = vb - va
    return out


def read_prices(path):
    """Return {utc hour start: EUR/MWh in cents} from an Elspot or an OPSD file."""
    with open(path, newline="") as f:
        first = f.readline()
        delimiter = ";" if first.count(";") > first.count(",") else ","
        f.seek(0)
        rows = list(csv.DictReader(f, delimiter=delimiter))
    prices = {}

    def put(hour, text):
        text = text.strip().replace(",", ".") if delimiter == ";" else text.strip()
        if text:
            prices[hour] = round(float(text) * 100)

    if "HourUTC" in rows[0]:                                   # Energinet Elspot Prices
        for row in rows:
            if row["PriceArea"] == "DE":
                put(parse_naive(row["HourUTC"][:16] + ":00").replace(tzinfo=UTC),
                    row["SpotPriceEUR"])
        source = "Energinet Elspot, PriceArea DE"
    elif "utc_timestamp" in rows[0]:                           # OPSD time_series
        split = datetime(2018, 10, 1, tzinfo=UTC) - timedelta(hours=2)  # 00:00 CEST
        for row in rows:
            hour = parse_naive(row["utc_timestamp"]).replace(tzinfo=UTC)
            column = "DE_AT_LU_price_day_ahead" if hour < split else "DE_LU_price_day_ahead"
            put(hour, row.get(column) or "")
        source = "OPSD time_series, DE_AT_LU / DE_LU_price_day_ahead"
    else:
        sys.exit(f"{path}: neither an Elspot (HourUTC) nor an OPSD (utc_timestamp) file")
    print(f"prices: {path}: {source}, {len(prices)} hours with a price")
    return prices


def kwh(wh):
    return "" if wh is None else f"{wh / 1000:.3f}"


def runs(starts, step):
    """Group sorted datetimes into (first, count) runs of consecutive intervals."""
    out = []
    for s in starts:
        if out and out[-1][0] + out[-1][1] * step == s:
            out[-1][1] += 1
        else:
            out.append([s, 1])
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("household_csv")
    p.add_argument("price_csv")
    p.add_argument("--household", default="DE_KN_residential4")
    p.add_argument("--year", type=int, default=2016)
    p.add_argument("--start", default="2015-10-12", help="first day (UTC) incl. warm-up")
    p.add_argument("--labels", choices=("auto", "berlin", "utc"), default="auto")
    p.add_argument("--out-dir", default=".")
    args = p.parse_args()

    step, readings, flagged = read_household(args.household_csv, args.household, args.labels)
    prices = read_prices(args.price_csv)
    start = datetime.strptime(args.start, "%Y-%m-%d").replace(tzinfo=UTC)
    year_start = datetime(args.year, 1, 1, tzinfo=UTC)
    end = datetime(args.year + 1, 1, 1, tzinfo=UTC)
    name = args.household.replace("DE_KN_", "")

    counts = {"missing counter": 0, "counter went backwards": 0, f"above {MAX_KW:g} kW": 0,
              "negative load": 0}
    energy_path = f"{args.out_dir}/opsd_{name}_{args.year}.csv"
    rows = empty_load = empty_pv = year_flagged = 0
    load_wh = {False: 0, True: 0}      # key: inside the year
    pv_wh = {False: 0, True: 0}
    peak_pv = (0, None)
    no_load = []
    with open(energy_path, "w", newline="") as f:
        f.write("start_s,load_kwh,pv_kwh\n")
        t = start
        while t < end:
            e = interval_energy(readings, t, step, counts)
            load = None
            if None not in e.values():
                load = e["grid_import"] + e["pv"] - e["grid_export"]
                if load < 0:
                    counts["negative load"] += 1
                    load = None
            in_year = t >= year_start
            if load is None:
                empty_load += 1
                no_load.append(t)
            else:
                load_wh[in_year] += load
            if e["pv"] is None:
                empty_pv += 1
            else:
                pv_wh[in_year] += e["pv"]
                if in_year and e["pv"] > peak_pv[0]:
                    peak_pv = (e["pv"], t)
            if in_year and t + step in flagged:
                year_flagged += 1
            f.write(f"{int(t.timestamp())},{kwh(load)},{kwh(e['pv'])}\n")
            rows += 1
            t += step

    price_path = f"{args.out_dir}/prices_de_{args.year}.csv"
    hour = timedelta(hours=1)
    price_rows, missing_prices, year_prices = 0, [], []
    with open(price_path, "w", newline="") as f:
        f.write("start,spot_eur_per_kwh\n")
        t = start
        while t < end:
            cents = prices.get(t)
            if cents is None:
                missing_prices.append(t)
            elif t >= year_start:
                year_prices.append(cents / 100)
            f.write(f"{t.isoformat()},{'' if cents is None else f'{cents / 100000:.5f}'}\n")
            price_rows += 1
            t += hour

    step_h = step.total_seconds() / 3600
    print(f"\nwrote {energy_path}: {rows} rows of {step_h:g} h from {start:%Y-%m-%d %H:%M} "
          f"to {end:%Y-%m-%d %H:%M} UTC")
    print(f"  empty load: {empty_load}, empty pv: {empty_pv}; cases (per counter and interval, "
          "negative load per interval): " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    gaps = runs(no_load, step)
    print(f"  load gaps: {len(gaps)} run(s): " + "; ".join(
        f"{s:%Y-%m-%d %H:%M} x{n}" for s, n in gaps))
    print(f"  intervals in {args.year} whose end reading OPSD marked interpolated: "
          f"{year_flagged}")
    print(f"  {args.year}: load {load_wh[True] / 1000:.1f} kWh, pv {pv_wh[True] / 1000:.1f} kWh; "
          f"warm-up before {args.year}: load {load_wh[False] / 1000:.1f} kWh, "
          f"pv {pv_wh[False] / 1000:.1f} kWh (known intervals only)")
    if peak_pv[1]:
        print(f"  pv peak: {peak_pv[0] / 1000:.3f} kWh in the {step_h:g} h from "
              f"{peak_pv[1]:%Y-%m-%d %H:%M} UTC = {peak_pv[0] / 1000 / step_h:.2f} kW mean")
    print(f"wrote {price_path}: {price_rows} hourly rows, {len(missing_prices)} without price")
    if year_prices:
        print(f"  {args.year}: min {min(year_prices):.2f}, mean "
              f"{sum(year_prices) / len(year_prices):.2f}, max {max(year_prices):.2f} EUR/MWh; "
              f"{sum(1 for x in year_prices if x < 0)} hours below zero, "
              f"{sum(1 for x in year_prices if x == 0)} at zero")


if __name__ == "__main__":
    main()
