"""Modbus faults between phaeton and the charger (the fault proxy in front of the Alfen
simulator): phaeton keeps running and publishing, says the charger is not usable, logs no
traceback, and has the setpoint back on register 1210 soon after the charger answers again,
with the session energy counted right (tests/faults/trials/modbus.py does the measuring)."""
from __future__ import annotations

import pytest

from trials.logs import LogTally
from trials.modbus import FAULT_KINDS, FaultRig, fault_findings, run_fault


@pytest.mark.parametrize("kind", FAULT_KINDS)
async def test_a_modbus_fault_for_45_s_then_normal_answers(private_bus, tmp_path, kind,
                                                            record_property):
    with LogTally() as tally:
        async with FaultRig(private_bus, str(tmp_path)) as rig:
            result = await run_fault(rig, tally, kind)
    record_property("reconnect_simulated_s", result.reconnect_s)
    record_property("reconnect_real_s", result.reconnect_real_s)
    print(f"{kind}: setpoint back {result.reconnect_s:.2f} s simulated "
          f"({result.reconnect_real_s:.3f} s real) after the charger answered again; "
          f"{result.ticks_during} ticks and {result.log_lines} log lines during the fault")
    findings = fault_findings(result, rig.speed)
    assert not findings, "\n".join(findings)


async def test_an_answer_with_an_unknown_function_code_logs_no_traceback():
    """The driver alone, through the proxy damaging only the function code of every answer."""
    import asyncio

    from phaeton.chargers.alfen import AlfenCharger, AlfenConfig
    from phaeton.chargers.base import ChargerUnavailable
    from phaeton.sim.alfen import AlfenSimulator
    from phaeton.sim.modbus_fault_proxy import ModbusFaultProxy

    with LogTally() as tally:
        async with AlfenSimulator() as station, ModbusFaultProxy(
                upstream_port=station.port, garbles=("function",)) as proxy:
            charger = AlfenCharger(AlfenConfig("127.0.0.1", proxy.port, timeout_s=1.0))
            await charger.start()
            try:
                for _ in range(500):
                    if charger.connected:
                        break
                    await asyncio.sleep(0.01)
                assert charger.connected
                await proxy.set_mode("garble")
                with pytest.raises(ChargerUnavailable):
                    await charger.read()
            finally:
                await charger.stop()
    window = tally.since(0)
    assert window.problems == [] and window.library_problems == []
