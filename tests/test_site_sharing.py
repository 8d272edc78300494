"""Sharing between several cars: the solar surplus by the owner's priority (equal priorities
share, nobody is handed more than it can take), raises only after the cuts have landed, and
a float32 reading at a limit that is the limit."""
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


def test_no_car_is_raised_before_another_cars_cut_shows_in_its_reading():
    """Break before make: the OCPP car's meter still reads 8.7 A after its cut to 6.6 A, so the
    Alfen socket that was paused is held at 0 A this tick, with the reason; once the reading
    follows, it starts."""
    from phaeton.control.allocation import (GrantedHeadroom, LoadpointShare, SiteShare,
                                            hold_raises_for_cuts)
    from phaeton.control.allocator import Claim, Grant

    def part(amps):
        return LoadpointShare(GrantedHeadroom(Grant(amps, f"{amps} A", "garage", 0)), None, 0.0)
    claims = [Claim(n, MAIN, (0, 1, 2), 6.0, 16.0) for n in ("alfen", "ocpp")]
    share = SiteShare(None, {"alfen": part(6.6), "ocpp": part(6.6)})   # type: ignore[arg-type]
    held = hold_raises_for_cuts(share, claims, {"alfen": 0.0, "ocpp": 8.7},
                                {"alfen": 0.0, "ocpp": 8.7})
    grant = held.loadpoints["alfen"].headroom.grant
    assert grant.current_a == 0.0
    assert grant.reason == "holding 0 A until the cut of ocpp shows in its reading (then 6.6 A)"
    assert held.loadpoints["ocpp"].headroom.grant.current_a == 6.6     # the cut itself goes out
    followed = hold_raises_for_cuts(share, claims, {"alfen": 0.0, "ocpp": 6.6},
                                    {"alfen": 0.0, "ocpp": 6.7})
    assert followed.loadpoints["alfen"].headroom.grant.current_a == 6.6


def test_a_float32_reading_at_the_limit_is_the_limit():
    from phaeton.control.auto import floor_tenth
    assert floor_tenth(13.0999996) == 13.1           # 13.1 A as float32, not a cut to 13.0
    assert floor_tenth(13.0999) == 13.0              # a real 0.1 mA short still rounds down
