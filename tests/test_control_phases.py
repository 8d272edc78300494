"""Automatic 1p/3p switching: thresholds with hysteresis, delay, grace, settle, /Status 22/23."""
from __future__ import annotations

from phaeton.chargers.base import Capability
from phaeton.control.phases import PhaseSwitcher
from phaeton.control.settings import ControlSettings
from phaeton.control.status import ChargerStatus
from tests.test_control_controller import Rig, V

SWITCHING = frozenset({Capability.PHASE_SWITCHING})
P3_MIN_W = 6 * V * 3          # 4140 W


def fast_settings(**overrides) -> ControlSettings:
    values = dict(auto_enable_delay_s=0, auto_smoothing_s=0, phase_switch_delay_s=120, phase_switch_settle_s=30,
                  phase_switch_grace_s=600, phase_switch_hysteresis_w=300)
    values.update(overrides)
    return ControlSettings(**values)


def test_switches_down_when_surplus_stays_below_three_phase_minimum():
    rig = Rig(fast_settings(), capabilities=SWITCHING, pv_ac_w=900 + 2500)   # 2.5 kW: 1 phase territory
    decisions = rig.run(300)
    statuses = [d.status for d in decisions]
    first_switch = statuses.index(ChargerStatus.SWITCHING_TO_1_PHASE)
    assert first_switch * 10 + 10 >= 120                 # only after the 120 s delay
    pausing = [d for d in decisions if d.status == ChargerStatus.SWITCHING_TO_1_PHASE]
    assert all(d.current_a == 0 and d.bound_by == "phase_switch" for d in pausing)
    assert all(d.phases == 3 for d in pausing)           # the switch itself happens after settling
    assert len(pausing) * 10 == 30                        # paused for the settle time
    after = decisions[first_switch + len(pausing):]
    assert after and all(d.phases == 1 for d in after)
    assert after[-1].current_a == 10.8                    # 2500 W / 230 V, rounded down


def test_switches_up_and_respects_the_grace_period():
    rig = Rig(fast_settings(), capabilities=SWITCHING, pv_ac_w=900 + 2500)
    rig.run(400)
    assert rig.phases == 1
    switched_down_at = 130.0                              # delay 120 s from the first step at t=10
    rig.pv_ac_w = 900 + P3_MIN_W + 200                    # above the minimum but inside the hysteresis
    assert all(d.phases == 1 for d in rig.run(600))
    rig.pv_ac_w = 900 + 6000                              # clearly above: up after the delay...
    decisions = rig.run(300)
    up = [i for i, d in enumerate(decisions) if d.status == ChargerStatus.SWITCHING_TO_3_PHASE]
    assert up, "expected a switch to 3 phases"
    assert rig.t - (len(decisions) - up[0]) * 10 + 10 - switched_down_at >= 600   # ...and the grace
    assert decisions[-1].phases == 3
    assert decisions[-1].current_a == 8.6


def test_grace_blocks_a_quick_switch_back():
    rig = Rig(fast_settings(phase_switch_grace_s=3600), capabilities=SWITCHING, pv_ac_w=900 + 2500)
    rig.run(300)
    assert rig.phases == 1
    rig.pv_ac_w = 900 + 8000
    decisions = rig.run(1200)
    assert all(d.phases == 1 for d in decisions)
    assert "next phase switch allowed in" in decisions[-1].reason
    assert decisions[-1].current_a == 16.0


def test_no_switching_without_the_capability_or_on_a_single_phase_charger():
    for settings, caps in ((fast_settings(), frozenset()),
                           (fast_settings(phase_switching_enabled=False), SWITCHING),
                           (fast_settings(charger_phases=1), SWITCHING)):
        rig = Rig(settings, capabilities=caps, pv_ac_w=900 + 2500)
        decisions = rig.run(600)
        assert all(d.status not in (22, 23) for d in decisions)
        assert all(d.phases == settings.charger_phases for d in decisions)


def test_manual_mode_returns_to_three_phases_at_once():
    rig = Rig(fast_settings(), capabilities=SWITCHING, pv_ac_w=900 + 2500)
    rig.run(300)
    assert rig.phases == 1
    rig.mode = 0
    d = rig.step()
    assert (d.status, d.current_a) == (ChargerStatus.SWITCHING_TO_3_PHASE, 0.0)
    later = rig.run(40)
    assert later[-1].phases == 3 and later[-1].current_a == 16.0


def test_switcher_without_surplus_keeps_phases_and_timers_reset():
    switcher = PhaseSwitcher(fast_settings())
    assert switcher.step(0, 1000, True).phases == 3
    assert switcher.step(100, None, True).phases == 3     # readings lost: the timer restarts
    assert switcher.step(200, 1000, True).switching is False
    assert switcher.step(319, 1000, True).switching is False
    assert switcher.step(320, 1000, True).switching is True
