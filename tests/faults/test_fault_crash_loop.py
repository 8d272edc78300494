"""kill -9 during session writes, 20 times: the session database and state.json always open
cleanly, no session is stored twice, and nothing is lost beyond the running record's last save
(tests/faults/trials/crash.py checks after every kill)."""
from __future__ import annotations

from trials.crash import run_crash_loop

KILLS = 20
SEED = 7


async def test_twenty_kills_during_session_writes_lose_and_duplicate_nothing(tmp_path):
    result = await run_crash_loop(str(tmp_path), KILLS, SEED)
    print(f"{result.kills} kills, {result.sessions} sessions finished, "
          f"{result.writes_reported} commits reported")
    assert not result.findings, "\n".join(result.findings)
    assert result.kills == KILLS
    assert result.sessions >= KILLS // 2       # the child did write sessions between kills


def test_the_check_finds_a_session_stored_and_still_running(tmp_path):
    """The crash loop's own check: what the two-transaction finish left behind after a crash
    (the session stored, its running record not cleared) is reported."""
    from phaeton.store.sessions import ChargingSession, SessionStore
    from trials.crash import Reported, check_files

    started = 1_767_225_600.0
    with SessionStore(tmp_path / "sessions.sqlite") as store:
        store.save_running({"session_id": "1", "started_at_s": started, "energy_kwh": 2.0})
        store.add(ChargingSession(start_s=started, end_s=started + 60, energy_kwh=2.0,
                                  duration_s=60, peak_w=0, cost=0, currency="EUR",
                                  solar_share=0))
    reported = Reported(finished={started: 2.0})
    assert any("stored and still running" in text
               for text in check_files(str(tmp_path), reported))
