"""Metrics and health from hand-built snapshots: the text format parses back (and Debian's
promtool accepts it), counters only grow, energy is integrated from the ticks' power, a charger
going offline shows in the metrics and makes /health 503, and the routes leave the rest of the
web API alone."""
from __future__ import annotations

import asyncio
import math
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from phaeton.chargers.base import ChargerIdentity, ChargerMeasurement, VehicleState
from phaeton.control.auto import Bound
from phaeton.control.controller import ChargeDecision
from phaeton.control.readings import SiteReadings
from phaeton.metrics import (BOUND_NAMES, CHECKS, MAX_GAP_S, SITE_FLOWS, Metrics, PlannerWatch)
from phaeton.metrics_text import Family, Histogram, render
from phaeton.publisher import SnapshotPublisher
from phaeton.vehicles.garage import CarView
from phaeton.snapshot import LoadpointSnapshot, SessionSummary, SiteSnapshot
from phaeton.store.sessions import SessionTotals
from phaeton.venus.evcharger_service import ChargerLimits, UserChoices

T0 = 1_700_000_000.0
ROOT = Path(__file__).resolve().parent.parent

# ---- a parser of the exposition format (independent of phaeton.metrics_text) ------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), text)


def parse(text: str) -> tuple[dict, dict]:
    """(samples {(name, frozenset(labels)): value}, types {family: type}); asserts the rules
    of the text format on the way (HELP and TYPE first and once, samples of one family
    together, names and label syntax, histogram buckets cumulative and ending at +Inf)."""
    assert text.endswith("\n")
    samples: dict = {}
    types: dict = {}
    helps: set = set()
    current = None
    finished: set = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name not in helps, f"HELP twice for {name}"
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name in helps and name not in types, name
            assert kind in ("counter", "gauge", "histogram", "untyped", "info")
            if current is not None:
                finished.add(current)
            current = name
            types[name] = kind
            continue
        assert not line.startswith("#") and line, line
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, inner, raw = match.groups()
        family = current
        kind = types[family]
        allowed = {"histogram": {family + "_bucket", family + "_sum", family + "_count"}
                   }.get(kind, {family})
        assert name in allowed, f"{name} under the family {family} ({kind})"
        labels = {}
        if inner:
            consumed = 0
            for lm in _LABEL.finditer(inner):
                assert lm.start() == consumed, f"bad labels: {inner!r}"
                labels[lm.group(1)] = _unescape(lm.group(2))
                consumed = lm.end()
            assert consumed == len(inner), f"bad labels: {inner!r}"
        value = float(raw.replace("+Inf", "inf").replace("-Inf", "-inf"))
        key = (name, frozenset(labels.items()))
        assert key not in samples, f"sample twice: {line}"
        samples[key] = value
    for family, kind in types.items():
        if kind != "histogram":
            continue
        series: dict = {}
        for (name, labels), value in samples.items():
            if name == family + "_bucket":
                rest = frozenset((k, v) for k, v in labels if k != "le")
                series.setdefault(rest, []).append((float(dict(labels)["le"].replace(
                    "+Inf", "inf")), value))
        for rest, buckets in series.items():
            buckets.sort()
            counts = [count for _, count in buckets]
            assert counts == sorted(counts) and buckets[-1][0] == math.inf
            assert samples[(family + "_count", rest)] == counts[-1]
    return samples, types


def value(samples: dict, metric: str, /, **labels) -> float | None:
    return samples.get((metric, frozenset(labels.items())))


# ---- snapshots by hand -------------------------------------------------------------------------

def loadpoint(name="0", *, ev_w: float | None = 2300.0, connected=True, bound_by=Bound.USER,
              current_a=10.0, status=2, session_kwh=1.5, active=True, error=None):
    measurement = None
    if connected:
        per_phase = None if ev_w is None else ev_w / 3
        measurement = ChargerMeasurement(
            vehicle_state=VehicleState.CHARGING, voltage_v=(230.0, 230.0, 230.0),
            current_a=(current_a, current_a, current_a - 0.5),
            power_w=(per_phase, per_phase, per_phase), total_power_w=ev_w,
            lifetime_energy_kwh=1234.5, phases=3)
    decision = ChargeDecision(enabled=True, current_a=current_a, phases=3, status=status,
                              reason="because", bound_by=bound_by)
    return LoadpointSnapshot(
        name=name, choices=UserChoices(mode=0, start_stop=1, set_current_a=16.0,
                                       custom_name=f"Car {name}"),
        limits=ChargerLimits(), decision=decision, measurement=measurement,
        connection="Modbus TCP 127.0.0.1", identity=ChargerIdentity("Alfen", "NG910", "ACE1", "6.4"),
        error=error, lifetime_kwh=1234.5,
        session=SessionSummary(active=active, energy_kwh=session_kwh, duration_s=600, cost=0.45,
                               currency="EUR", solar_share=0.2, peak_w=2300.0),
        car=CarView("model3", name, "config", 62.5, 280.0, 0.0, 95.0, False, "mqtt", None, 57.5))


def site(t: float, *, grid_w=(100.0, 100.0, 100.0), pv_w=(0.0, 0.0, 0.0), battery_w=0.0,
         consumption_w=None, age_s: float | None = 1.0, loadpoints=None,
         readings=True) -> SiteSnapshot:
    lps = tuple(loadpoints) if loadpoints is not None else (loadpoint(),)
    ev = sum((lp.measurement.total_power_w or 0.0) for lp in lps if lp.measurement) / 3
    consumption = consumption_w or tuple(300.0 + ev for _ in range(3))
    reading = SiteReadings(grid_w=grid_w, pv_on_grid_w=pv_w, consumption_w=consumption,
                           battery_power_w=battery_w, battery_soc_pct=55.0, age_s=age_s)
    return SiteSnapshot(time_s=t, readings=reading if readings else None, fuse_a=25.0,
                        nominal_voltage_v=230.0, stale_after_s=30.0,
                        planner_state={"/Planner/PlannedCost": 3.21,
                                       "/Planner/PlannedSavings": 0.5, "/Planner/Strategy": 2,
                                       "/Planner/DessConflict": 0, "/Planner/Reason": "cheap"},
                        loadpoints=lps)


class FakeStore:
    def __init__(self, totals: dict[str, SessionTotals]):
        self.by_charger = totals

    def totals(self, since_s=None, until_s=None, *, loadpoint=None):
        return self.by_charger.get(loadpoint, SessionTotals(0, 0.0, 0.0, 0.0, {}))


class FakePlanner:
    """What metrics read of a PlannerService: its count and its last run's time."""
    replan_s = 900.0

    def __init__(self, runtime_s: float = 0.0, clock=None):
        self.plans_made = 0
        self.runtime_s = runtime_s
        self.clock = clock
        self.last_plan_runtime_s = None
        self.last_plan_finished_s = None

    async def tick(self):
        await asyncio.sleep(self.runtime_s)
        self.plans_made += 1
        self.last_plan_runtime_s = self.runtime_s
        self.last_plan_finished_s = self.clock.t if self.clock is not None else T0


class Now:
    def __init__(self, t: float = T0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_metrics(now: Now, *, owned=None, store=None, planner=None) -> Metrics:
    return Metrics(clock_time=now, charger_names=lambda: dict(owned or {"0": True}),
                   sessions=lambda: store, planner=lambda: planner, tick_s=2.0,
                   replan_s=lambda: getattr(planner, "replan_s", None))


# ---- the format ---------------------------------------------------------------------------------

def test_the_text_format_escapes_and_parses_back():
    tricky = 'a "quoted" back\\slash\nnew line'
    gauge = Family("x_value", "gauge", "help with \\ and\nnewline")
    gauge.add(1.5, {"charger": tricky})
    gauge.add(float("nan"), {"charger": "nan"})
    gauge.add(float("inf"), {"charger": "inf"})
    gauge.add(None, {"charger": "unknown"})           # unknown: left out
    gauge.add(0.1 + 0.2, {"charger": "float"})
    counter = Family("x_energy_kwh_total", "counter", "c")
    counter.add(3)
    hist = Family("x_seconds", "histogram", "h")
    h = Histogram((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 7.0, float("nan")):
        h.observe(v)
    h.add_to(hist)
    text = render([gauge, counter, hist])
    samples, types = parse(text)
    assert types == {"x_value": "gauge", "x_energy_kwh_total": "counter", "x_seconds": "histogram"}
    assert value(samples, "x_value", charger=tricky) == 1.5
    assert math.isnan(value(samples, "x_value", charger="nan"))
    assert value(samples, "x_value", charger="inf") == math.inf
    assert value(samples, "x_value", charger="unknown") is None
    assert value(samples, "x_value", charger="float") == 0.1 + 0.2     # exact round trip
    assert value(samples, "x_energy_kwh_total") == 3
    assert value(samples, "x_seconds_bucket", le="0.1") == 2            # le is inclusive
    assert value(samples, "x_seconds_bucket", le="1") == 3
    assert value(samples, "x_seconds_bucket", le="+Inf") == 4
    assert value(samples, "x_seconds_count") == 4
    assert value(samples, "x_seconds_sum") == pytest.approx(7.65)
    assert "# HELP x_value help with \\\\ and\\nnewline" in text


def test_bad_names_are_refused():
    with pytest.raises(ValueError):
        Family("bad-name", "gauge", "")
    with pytest.raises(ValueError):
        Family("x_total", "gauge", "")
    with pytest.raises(ValueError):
        Family("x", "counter", "")
    with pytest.raises(ValueError):
        Family("x", "gauge", "").add(1, {"bad-label": "v"})
    with pytest.raises(ValueError):
        render([Family("x", "gauge", ""), Family("x", "gauge", "")])


def test_every_metric_of_a_running_site_parses_and_is_documented():
    now = Now()
    planner = FakePlanner()
    store = FakeStore({"0": SessionTotals(3, 12.5, 4.0, 7200.0, {"EUR": 3.75})})
    metrics = make_metrics(now, store=store, planner=planner)
    metrics.observe_tick_duration(0.012)
    for i in range(5):
        now.t = T0 + 2 * i
        metrics.observe(site(now.t))
    samples, types = parse(metrics.render())
    documented = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    for family in types:
        assert f"`{family}" in documented, f"{family} is not in docs/metrics.md"
    assert value(samples, "phaeton_charger_setpoint_amperes", charger="0") == 10.0
    assert value(samples, "phaeton_charger_current_amperes", charger="0") == 10.0
    assert value(samples, "phaeton_charger_power_watts", charger="0") == 2300.0
    assert value(samples, "phaeton_charger_status", charger="0") == 2
    assert value(samples, "phaeton_charger_phases", charger="0") == 3
    assert value(samples, "phaeton_charger_connected", charger="0") == 1
    assert value(samples, "phaeton_charger_session_energy_kwh", charger="0") == 1.5
    assert value(samples, "phaeton_sessions_finished", charger="0") == 3
    assert value(samples, "phaeton_sessions_finished_energy_kwh", charger="0") == 12.5
    assert value(samples, "phaeton_sessions_finished_cost", charger="0", currency="EUR") == 3.75
    assert value(samples, "phaeton_planner_planned_cost", currency="EUR") == 3.21
    assert value(samples, "phaeton_dbus_name_owned", charger="0") == 1
    car = {"charger": "0", "car": "model3", "source": "mqtt"}
    assert value(samples, "phaeton_vehicle_soc_percent", **car) == 62.5
    assert value(samples, "phaeton_vehicle_soc_age_seconds", **car) == 95.0
    assert value(samples, "phaeton_vehicle_soc_stale", **car) == 0
    assert value(samples, "phaeton_gx_readings_fresh") == 1
    assert value(samples, "phaeton_gx_readings_age_seconds") == 1.0
    assert value(samples, "phaeton_control_ticks_total") == 5
    assert value(samples, "phaeton_control_tick_duration_seconds_count") == 1
    assert value(samples, "phaeton_charger_decisions_total", charger="0", bound_by="user") == 5
    assert value(samples, "phaeton_charger_info", charger="0", name="Car 0", model="NG910",
                 serial="ACE1", firmware="6.4") == 1
    # no carbon family: not available yet, and nothing fake stands in for it
    assert not [name for name in types if "carbon" in name]


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool (Debian package prometheus) is not installed")
def test_promtool_accepts_the_exposition():
    now = Now()
    metrics = make_metrics(now, store=FakeStore({}), planner=FakePlanner())
    metrics.observe_tick_duration(0.2)
    for i in range(3):
        now.t = T0 + 2 * i
        metrics.observe(site(now.t, loadpoints=[loadpoint("0"), loadpoint("garage", connected=False)]))
    done = subprocess.run(["promtool", "check", "metrics"], input=metrics.render(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


# ---- counting --------------------------------------------------------------------------------

def counters(text: str) -> dict:
    samples, types = parse(text)
    names = {f for f, k in types.items() if k == "counter"}
    assert all(name.endswith("_total") for name in names)
    names |= {f + s for f, k in types.items() if k == "histogram"
              for s in ("_bucket", "_count", "_sum")}
    return {key: v for key, v in samples.items() if key[0] in names}


def test_counters_only_grow_whatever_the_ticks_bring():
    rng = random.Random(7)
    now = Now()
    metrics = make_metrics(now, store=FakeStore({}), planner=FakePlanner())
    before = counters(metrics.render())
    t = T0
    for _ in range(400):
        t += rng.choice([0.5, 2.0, 2.0, 2.0, 90.0, -5.0])        # gaps and a clock step back
        now.t = t
        grid = tuple(rng.choice([None, rng.uniform(-4000, 4000)]) for _ in range(3))
        lps = [loadpoint("0", ev_w=rng.choice([None, 0.0, rng.uniform(0, 11000), -30.0]),
                         connected=rng.random() > 0.2,
                         bound_by=rng.choice(BOUND_NAMES + ("something new",))),
               loadpoint("1", ev_w=rng.uniform(0, 7000), connected=rng.random() > 0.5)]
        metrics.observe(site(t, grid_w=grid, pv_w=(rng.uniform(0, 3000),) * 3,
                             battery_w=rng.choice([None, rng.uniform(-5000, 5000)]),
                             age_s=rng.choice([None, 1.0, 45.0]), loadpoints=lps,
                             readings=rng.random() > 0.1))
        metrics.observe_tick_duration(rng.uniform(0, 3))
        after = counters(metrics.render())
        for key, old in before.items():
            assert after.get(key, -1) >= old, key
        before = after
    assert before[("phaeton_charger_decisions_total",
                   frozenset({"charger": "0", "bound_by": "other"}.items()))] > 0


def test_energy_is_integrated_from_the_ticks_power():
    now = Now()
    metrics = make_metrics(now)
    for i in range(1801):                       # one hour at 2 s
        now.t = T0 + 2 * i
        metrics.observe(site(now.t, grid_w=(-500.0, 200.0, 100.0), pv_w=(1000.0,) * 3,
                             battery_w=-400.0,
                             loadpoints=[loadpoint("0", ev_w=2300.0), loadpoint("1", ev_w=0.0)]))
    energy = metrics.site_energy_kwh
    assert tuple(energy) == SITE_FLOWS
    assert metrics.charger_energy_kwh["0"] == pytest.approx(2.3)
    assert metrics.charger_energy_kwh["1"] == 0.0
    assert energy["grid_import"] == 0.0 and energy["grid_export"] == pytest.approx(0.2)
    assert energy["pv"] == pytest.approx(3.0)
    assert energy["battery_discharge"] == pytest.approx(0.4) and energy["battery_charge"] == 0
    assert energy["house"] == pytest.approx(0.9)            # consumption without the EVs
    # a gap longer than MAX_GAP_S, stale readings and an offline charger add nothing
    now.t += MAX_GAP_S + 1
    metrics.observe(site(now.t, loadpoints=[loadpoint("0"), loadpoint("1")]))
    now.t += 2
    metrics.observe(site(now.t, age_s=31.0, loadpoints=[loadpoint("0", connected=False),
                                                       loadpoint("1")]))
    assert metrics.charger_energy_kwh["0"] == pytest.approx(2.3)
    assert energy["pv"] == pytest.approx(3.0)


def test_decisions_are_counted_by_what_bound_them_with_bounded_labels():
    now = Now()
    metrics = make_metrics(now)
    for bound in (Bound.FUSE, Bound.FUSE, Bound.SURPLUS, "made-up"):
        now.t += 2
        metrics.observe(site(now.t, loadpoints=[loadpoint(bound_by=bound)]))
    samples, _ = parse(metrics.render())
    got = {dict(labels)["bound_by"]: v for (name, labels), v in samples.items()
           if name == "phaeton_charger_decisions_total"}
    assert set(got) == set(BOUND_NAMES) | {"other"}
    assert got["fuse"] == 2 and got["surplus"] == 1 and got["other"] == 1 and got["user"] == 0


def test_currencies_are_capped_per_charger():
    now = Now()
    costs = {c: 1.0 for c in ("CHF", "EUR", "GBP", "NOK", "SEK", "USD")}
    metrics = make_metrics(now, store=FakeStore({"0": SessionTotals(6, 6.0, 0, 0, costs)}))
    metrics.observe(site(now.t))
    samples, _ = parse(metrics.render())
    got = {dict(labels)["currency"]: v for (name, labels), v in samples.items()
           if name == "phaeton_sessions_finished_cost"}
    assert got == {"CHF": 1.0, "EUR": 1.0, "GBP": 1.0, "NOK": 1.0, "other": 2.0}


# ---- health ------------------------------------------------------------------------------------

async def test_health_ready_and_each_check_failing_on_its_own():
    now = Now()
    planner = FakePlanner(clock=now)
    owned = {"0": True}
    metrics = make_metrics(now, owned=owned, planner=planner)
    report = metrics.health()
    assert report["live"] and not report["ready"]
    assert report["failed"] == ["control_loop", "chargers", "gx_readings", "planner"]
    publisher: SnapshotPublisher = SnapshotPublisher()
    metrics.attach_to(publisher)
    publisher.publish(site(now.t))
    await planner.tick()
    publisher.publish(site(now.t))
    report = metrics.health()
    assert report["ready"], report
    assert list(report["checks"]) == list(CHECKS)
    assert metrics.planner_watch.last_runtime_s() is not None

    owned["0"] = False
    assert metrics.health()["failed"] == ["dbus"]
    owned["0"] = True
    publisher.publish(site(now.t, age_s=31.0))
    report = metrics.health()
    assert report["failed"] == ["gx_readings"] and "stale" in report["checks"]["gx_readings"]["detail"]
    publisher.publish(site(now.t))
    now.t += 1801                                         # plan older than 2 x replan_s
    assert metrics.health()["failed"] == ["control_loop", "planner"]
    publisher.publish(site(now.t))
    assert metrics.health()["failed"] == ["planner"]
    await planner.tick()
    assert metrics.health()["ready"]


def test_a_charger_going_offline_shows_in_metrics_and_health():
    now = Now()
    planner = FakePlanner()
    metrics = make_metrics(now, owned={"0": True, "garage": True}, planner=planner)
    planner.plans_made, planner.last_plan_finished_s = 1, now.t     # a plan, made now
    metrics.observe(site(now.t, loadpoints=[loadpoint("0"), loadpoint("garage")]))
    assert metrics.health()["ready"]
    now.t += 2
    metrics.observe(site(now.t, loadpoints=[
        loadpoint("0"), loadpoint("garage", connected=False, error="no answer from 10.0.0.9")]))
    report = metrics.health()
    assert report["ready"] is False and report["failed"] == ["chargers"]
    assert "'garage' not connected (no answer from 10.0.0.9)" in report["checks"]["chargers"]["detail"]
    samples, _ = parse(metrics.render())
    assert value(samples, "phaeton_charger_connected", charger="garage") == 0
    assert value(samples, "phaeton_charger_connected", charger="0") == 1
    assert value(samples, "phaeton_charger_power_watts", charger="garage") is None
    assert value(samples, "phaeton_ready") == 0
    assert value(samples, "phaeton_health_check", check="chargers") == 0
    assert value(samples, "phaeton_health_check", check="dbus") == 1


async def test_the_planner_watch_reads_the_running_planner_and_follows_a_new_one():
    now = Now()
    watch = PlannerWatch(now)
    first = FakePlanner(runtime_s=0.05, clock=now)
    watch.follow(first, now.t)
    now.t += 3
    await first.tick()
    assert watch.last_runtime_s() == 0.05 and watch.last_finished_s() == now.t
    assert watch.plans_made() == 1
    second = FakePlanner()                          # a saved config rebuilt the planner
    watch.follow(second, now.t)
    assert watch.last_runtime_s() is None and watch.plans_made() == 0
    await first.tick()                              # the old one no longer counts
    assert watch.last_runtime_s() is None and watch.plans_made() == 0


def test_the_grafana_dashboard_uses_only_metrics_there_are():
    import json
    dashboard = json.loads((ROOT / "docs" / "grafana-phaeton.json").read_text(encoding="utf-8"))
    now = Now()
    planner = FakePlanner(clock=now)
    planner.plans_made = 1
    metrics = make_metrics(now, store=FakeStore({"0": SessionTotals(1, 1.0, 0.5, 60.0, {"EUR": 1.0})}),
                           planner=planner)
    metrics.observe_tick_duration(0.01)
    metrics.observe(site(now.t))
    samples, types = parse(metrics.render())
    names = {name for name, _ in samples} | set(types)

    def expressions(panels):
        for panel in panels:
            yield from (target["expr"] for target in panel.get("targets", []))
            yield from expressions(panel.get("panels", []))
    used = set()
    for expr in expressions(dashboard["panels"]):
        used |= set(re.findall(r"\bphaeton_[a-z0-9_]+", expr))
    used |= set(re.findall(r"\bphaeton_[a-z0-9_]+", json.dumps(dashboard["templating"])))
    assert used and used <= names, used - names
