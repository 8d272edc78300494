"""The planner knobs read from localsettings: a stored value a knob cannot use (NaN, inf, out of
range) counts as "not set": the config's default applies, and the log says so once."""
from __future__ import annotations

import asyncio
import logging
import math

import pytest

from phaeton.planning.knobs import PlannerKnobs
from phaeton.venus.planner_settings import PREFIX, PlannerSettings

DEFAULTS = PlannerKnobs(minimum_soc_pct=10.0, ev_target_soc_pct=80.0)
LOGGER = "phaeton.venus.planner_settings"


class FakeSettings:
    """What PlannerSettings uses of velib's SettingsClient: AddSettings (existing values win)
    and change notifications."""

    def __init__(self, stored: dict | None = None):
        self.stored = dict(stored or {})
        self.callbacks: dict[str, list] = {}

    async def add_settings(self, specs):
        return {spec.path: self.stored.setdefault(spec.path, spec.default) for spec in specs}

    def subscribe(self, path, callback):
        self.callbacks.setdefault(path, []).append(callback)
        return lambda: self.callbacks[path].remove(callback)

    def change(self, name: str, value) -> None:
        self.stored[PREFIX + name] = value
        for callback in list(self.callbacks.get(PREFIX + name, [])):
            callback(PREFIX + name, value)


def warnings_about(caplog, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER
            and r.levelno == logging.WARNING and PREFIX + name in r.getMessage()]


def started(stored=None):
    settings = FakeSettings(stored)
    seen: list[PlannerKnobs] = []
    planner = PlannerSettings(settings, DEFAULTS, on_change=seen.append)
    asyncio.run(planner.start())
    return settings, planner, seen


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 250.0, -5.0])
def test_an_unusable_stored_value_at_start_is_not_set_and_said_once(caplog, bad):
    caplog.set_level(logging.WARNING, LOGGER)
    _, planner, _ = started({PREFIX + "MinimumSoc": bad, PREFIX + "EvTargetSoc": 60.0})
    assert planner.knobs.minimum_soc_pct == 10.0          # the config's default
    assert planner.knobs.ev_target_soc_pct == 60.0        # a usable neighbour still counts
    (message,) = warnings_about(caplog, "MinimumSoc")
    assert "not set" in message and "config default 10.0" in message and "0..100" in message
    asyncio.run(planner.add())                            # the settings service came back
    assert len(warnings_about(caplog, "MinimumSoc")) == 1


@pytest.mark.parametrize("bad", [math.nan, math.inf, 101.0])
def test_an_unusable_value_written_later_reverts_to_the_config_default(caplog, bad):
    caplog.set_level(logging.WARNING, LOGGER)
    settings, planner, seen = started()
    settings.change("MinimumSoc", 30.0)                   # the owner's choice ...
    assert planner.knobs.minimum_soc_pct == 30.0
    settings.change("MinimumSoc", bad)                    # ... then localsettings holds junk
    assert planner.knobs.minimum_soc_pct == 10.0          # not set: the default, not 30
    assert seen[-1].minimum_soc_pct == 10.0               # and the planner hears of it
    settings.change("MinimumSoc", bad)
    settings.change("MinimumSoc", math.nan)
    assert len(warnings_about(caplog, "MinimumSoc")) == 1  # said once, not at every change
    settings.change("MinimumSoc", 40.0)                   # usable again ...
    assert planner.knobs.minimum_soc_pct == 40.0
    settings.change("MinimumSoc", math.nan)               # ... so new junk is said again
    assert planner.knobs.minimum_soc_pct == 10.0
    assert len(warnings_about(caplog, "MinimumSoc")) == 2


def test_integer_and_boolean_knobs_treat_nan_as_not_set(caplog):
    caplog.set_level(logging.WARNING, LOGGER)
    settings, planner, _ = started({PREFIX + "EvDepartureTime": 9 * 60})
    assert planner.knobs.ev_departure_min == 9 * 60
    settings.change("EvDepartureTime", math.nan)
    settings.change("AllowExport", math.inf)
    assert planner.knobs.ev_departure_min == DEFAULTS.ev_departure_min
    assert planner.knobs.allow_export is DEFAULTS.allow_export
    assert len(warnings_about(caplog, "EvDepartureTime")) == 1
    assert len(warnings_about(caplog, "AllowExport")) == 1
