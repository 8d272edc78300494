"""The solar surplus between several cars in Auto: the owner's priority decides who charges
on the sun first; equal priorities share; nobody is handed more than it can take."""
from __future__ import annotations

import math
import random

import pytest

from phaeton.control.allocation import LoadpointDraw, split_surplus
from phaeton.control.circuit import Circuit
from phaeton.control.readings import EvReadings

MAIN = Circuit("main", 25)


def draw(priority=0, max_w=math.inf) -> LoadpointDraw:
    return LoadpointDraw(MAIN, EvReadings(), sharing=True, priority=priority, max_w=max_w)


def test_the_higher_priority_car_takes_the_sun_first_up_to_its_maximum():
    parts = split_surplus(9000.0, {"boss": draw(1, 7360.0), "guest": draw(0, 11040.0)})
    assert parts == {"boss": 7360.0, "guest": pytest.approx(1640.0)}


def test_equal_priorities_share_and_what_one_cannot_take_goes_to_the_other():
    parts = split_surplus(9000.0, {"a": draw(0, 1380.0), "b": draw(0, 11040.0)})
    assert parts == {"a": 1380.0, "b": pytest.approx(7620.0)}
    assert split_surplus(6000.0, {"a": draw(), "b": draw()}) == {"a": 3000.0, "b": 3000.0}


def test_a_deficit_slows_every_car_alike_and_one_car_gets_everything():
    assert split_surplus(-900.0, {"a": draw(2), "b": draw(0)}) == {"a": -450.0, "b": -450.0}
    assert split_surplus(5000.0, {"a": draw(0, 1000.0)}) == {"a": 5000.0}


def test_the_parts_always_add_up_and_respect_priority_and_maxima():
    rng = random.Random(7)
    for _ in range(500):
        draws = {f"c{i}": draw(rng.randint(0, 2), rng.choice([1380.0, 4140.0, 11040.0]))
                 for i in range(rng.randint(1, 6))}
        total = rng.uniform(-3000, 30000)
        parts = split_surplus(total, draws)
        assert sum(parts.values()) == pytest.approx(total)
        if total <= 0 or total >= sum(d.max_w for d in draws.values()):
            continue
        for name, part in parts.items():
            assert part <= draws[name].max_w + 1e-6
            lower = [n for n in draws if draws[n].priority < draws[name].priority]
            if part < draws[name].max_w - 1e-6:     # not full: no lower priority got anything
                assert all(parts[n] == pytest.approx(0.0, abs=1e-6) for n in lower)
