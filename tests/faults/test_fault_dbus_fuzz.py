"""A bounded D-Bus fuzz: 1,000 random SetValue writes from another process (python3-dbus) at
phaeton's evcharger service on a scripted GX: no crash, every write answered, refused writes
change nothing, accepted ones only their own path and only to a valid value, nothing logged
as an error (tests/faults/trials/dbus_fuzz.py says what is sent and checked)."""
from __future__ import annotations

from scripted_gx import NAME, ScriptedGx
from trials.dbus_fuzz import WRITABLE, fuzz_findings, run_fuzz
from trials.logs import LogTally

WRITES = 1000
SEED = 11


async def test_a_thousand_random_writes_change_only_what_they_may(private_bus, tmp_path):
    with LogTally() as tally:
        async with ScriptedGx(private_bus, str(tmp_path)) as gx:
            app = await gx.start_phaeton()
            result = await run_fuzz(NAME, WRITES, SEED)
            ticks = app.site.ticks
            await gx.until(lambda: app.site.ticks >= ticks + 3, 60, "the control loop ticking on")
            shown = {path: app.loadpoints[0].evcharger.service[path] for path in WRITABLE}
            chosen = app.loadpoints[0].choices.as_dict()
            persisted = app.loadpoints[0].state_file.load()
            limits = app.loadpoints[0].limits
    print(f"{result.tried} writes in {result.real_s:.1f} s: {result.summary}")
    assert result.tried == WRITES, result.stderr
    findings = fuzz_findings(result, limits.max_current_a, limits.min_current_a)
    findings += [f"logged: {problem}" for problem in tally.since(0).problems]
    assert not findings, "\n".join(findings)
    names = {path: name for path, name in app.loadpoints[0].evcharger.choices.FIELDS.items()}
    assert {names[path]: value for path, value in shown.items()} == chosen
    assert {name: persisted[name] for name in chosen} == chosen
