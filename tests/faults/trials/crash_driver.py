"""The child of the kill -9 trial: charging sessions written to disk the way phaeton.app does it,
as fast as it can, until it is killed.

    python crash_driver.py DATA_DIR SEED

Same files, same calls as the service: `sessions.sqlite` through SessionStore (load_running and
SessionTracker.restore at start; save_running with the tracker's running record; finish_running
with the finished session built like Phaeton._session_event), `state.json` through StateFile
with the user's choices (UserChoices). A simulated charger's lifetime counter follows the wall
clock, so a session continued after a restart counts what it delivered meanwhile.

After each commit it prints one line (stdout, flushed), so whatever the parent has read was
on disk before the kill:
    ready <sequence of state.json as loaded> <running record as JSON or null>
    R <session id> <started_at_s> <energy_kwh>    the running record was saved
    F <started_at_s> <energy_kwh>                 the session was finished (stored, running cleared)
    S <sequence number>                           state.json was saved with name "n<sequence>"
"""
from __future__ import annotations

import json
import os
import random
import sys
import time

from phaeton.chargers.base import VehicleState
from phaeton.control.readings import EvReadings
from phaeton.control.session import SessionEnded, SessionStarted, SessionTracker
from phaeton.store.sessions import ChargingSession, SessionStore
from phaeton.store.state_file import StateFile
from phaeton.venus.evcharger_service import UserChoices

HISTORY_LIMIT = 100_000       # keep every session: the trial counts them
COUNTER_EPOCH_S = 1_700_000_000.0
COUNTER_KW = 11.0             # what the simulated car draws
STEP_S = 0.002                # at least this long between two readings (distinct start times)


def counter_kwh() -> float:
    return (time.time() - COUNTER_EPOCH_S) * COUNTER_KW / 3600.0


def say(*words) -> None:
    """One line in one write (a pipe takes it whole, also with PYTHONUNBUFFERED set)."""
    sys.stdout.write(" ".join(str(word) for word in words) + "\n")
    sys.stdout.flush()


def finished(event: SessionEnded) -> ChargingSession:
    """As Phaeton._session_event builds it."""
    return ChargingSession(start_s=event.started_at_s, end_s=event.ended_at_s,
                           energy_kwh=event.energy_kwh, duration_s=event.duration_s,
                           peak_w=event.peak_power_w, cost=event.cost, currency=event.currency,
                           solar_share=event.solar_share)


def main(data_dir: str, seed: int) -> None:
    rng = random.Random(seed)
    store = SessionStore(os.path.join(data_dir, "sessions.sqlite"), history_limit=HISTORY_LIMIT)
    state = StateFile(os.path.join(data_dir, "state.json"))
    choices = UserChoices.from_dict(state.load(), UserChoices(custom_name="n0"))
    sequence = int(choices.custom_name[1:]) if choices.custom_name[1:].isdigit() else 0
    tracker = SessionTracker(0.30, "EUR")
    record = store.load_running()
    if record:
        tracker.restore(record)            # as Phaeton.start: continue the running session
    say("ready", sequence, json.dumps(record))

    def save_running() -> None:
        record = tracker.running_record()
        store.save_running(record)
        say("R", record["session_id"], repr(record["started_at_s"]), repr(tracker.energy_kwh))

    plugged = EvReadings(vehicle_state=VehicleState.CHARGING, total_power_w=COUNTER_KW * 1000)
    while True:
        steps = rng.randint(1, 12)
        for _ in range(steps):
            time.sleep(STEP_S)
            reading = EvReadings(vehicle_state=plugged.vehicle_state,
                                 total_power_w=plugged.total_power_w,
                                 lifetime_energy_kwh=counter_kwh())
            for event in tracker.update(reading, None, time.time()):
                assert isinstance(event, SessionStarted)
            save_running()
        if rng.random() < 0.3:
            sequence += 1
            choices.custom_name = f"n{sequence}"
            choices.set_current_a = float(6 + sequence % 11)
            state.save(choices.as_dict())
            say("S", sequence)
        time.sleep(STEP_S)
        for event in tracker.update(EvReadings(vehicle_state=VehicleState.NO_VEHICLE), None,
                                    time.time()):
            assert isinstance(event, SessionEnded)
            store.finish_running(finished(event))
            say("F", repr(event.started_at_s), repr(event.energy_kwh))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
