"""Scheduled mode following the energy plan (ControllerInputs.plan_current_a)."""
from __future__ import annotations

from dataclasses import replace

from phaeton.control.controller import ChargeController
from phaeton.control.settings import ControlSettings

from test_control_controller import NOON, Rig


def decide(plan_current_a, house=(300.0, 300.0, 300.0)):
    rig = Rig(ControlSettings(), mode=2, house=house)
    inputs = replace(rig.inputs(), plan_current_a=plan_current_a)
    return ChargeController(rig.settings).step(inputs, 10.0, NOON)


def test_the_plan_current_is_used_in_scheduled_mode():
    d = decide(10.0)
    assert (d.current_a, d.bound_by) == (10.0, "schedule")
    assert "energy plan" in d.reason


def test_a_plan_slot_below_the_minimum_waits():
    d = decide(2.0)
    assert d.current_a == 0.0
    assert d.status == 6 and "later" in d.reason


def test_without_a_plan_the_windows_decide():
    d = decide(None)                      # no windows configured: waiting
    assert d.current_a == 0.0 and "window" in d.reason


def test_the_fuse_still_caps_the_plan():
    d = decide(16.0, house=(4000.0, 300.0, 300.0))   # 17.4 A on L1 leaves 7.6 A
    assert d.current_a <= 7.6 and d.bound_by == "fuse"


def test_solar_surplus_on_top_of_the_plan():
    rig = Rig(ControlSettings(), mode=2, pv_ac_w=9000.0)     # about 8 kW surplus
    rig.controller.step(rig.inputs(), 0.0, NOON)             # warm the surplus smoothing
    d = None
    for t in range(10, 400, 10):
        d = rig.controller.step(replace(rig.inputs(), plan_current_a=0.0), float(t), NOON)
    assert d.current_a >= 6 and d.bound_by == "surplus"
    assert "on top of the energy plan" in d.reason
    # without surplus the plan's 0 A stands: waiting for the cheaper slots
    dark = Rig(ControlSettings(), mode=2)
    assert dark.controller.step(replace(dark.inputs(), plan_current_a=0.0), 10.0,
                                NOON).current_a == 0.0


def test_manual_phase_choice_switches_through_pause_and_settle():
    from phaeton.chargers.base import Capability

    rig = Rig(ControlSettings(), mode=0, set_current_a=10.0,
              capabilities={Capability.PHASE_SWITCHING})
    rig.run(30)
    assert (rig.amps, rig.phases) == (10.0, 3)
    base = rig.inputs

    def inputs_with_choice():
        return replace(base(), manual_phases=1)

    rig.inputs = inputs_with_choice
    first = rig.step()
    assert first.current_a == 0.0 and first.status == 23      # pause: switching to 1 phase
    decisions = rig.run(120)
    assert decisions[-1].phases == 1 and decisions[-1].current_a == 10.0
