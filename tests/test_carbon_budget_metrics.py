"""The carbon metric families: none without carbon in the snapshot; with it, bounded labels,
the budget, and the sessions' kg CO2 per charger (a session without co2 counts nothing)."""
from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

from phaeton.metrics import carbon_families
from phaeton.metrics_text import render
from tests.test_web_carbon import _view


class Store:
    def list_sessions(self, limit=100, loadpoint=None):
        return [SimpleNamespace(co2_kg=1.5), SimpleNamespace(co2_kg=None),
                SimpleNamespace(co2_kg=0.25)]


def test_carbon_families():
    snapshot = SimpleNamespace(carbon=None, loadpoints=(SimpleNamespace(name="0"),))
    families = carbon_families(lambda: Store())
    assert families(snapshot) == []
    text = render(families(replace_carbon(snapshot)))
    assert "phaeton_grid_carbon_intensity_grams_per_kwh 312" in text
    assert 'phaeton_carbon_budget_usage_percent{scope="site",period="month"} 83.333' in text
    assert "phaeton_carbon_budget_state 1" in text
    assert 'phaeton_sessions_finished_co2_kg{charger="0"} 1.75' in text
    assert 'phaeton_carbon_emissions_kg{consumer="car",period="day"} 1.5' in text


def replace_carbon(snapshot):
    return SimpleNamespace(carbon=replace(_view(), accounted_kg=(1.0, 2.0, 3.0)),
                           loadpoints=snapshot.loadpoints)
