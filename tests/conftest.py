"""Shared fixtures. D-Bus tests run on a private dbus-daemon, never the machine's system bus."""
from __future__ import annotations

import os

import pytest

from phaeton.sim.private_bus import PrivateBus


@pytest.fixture
def private_bus(monkeypatch):
    """A fresh private system bus per test; DBUS_SYSTEM_BUS_ADDRESS points at it.

    Yields the address. Subprocesses (dbus-send, busctl, python3-dbus) inherit the variable.
    """
    with PrivateBus() as bus:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", bus.address)
        # Make sure no test can fall back to a real session bus either.
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", bus.address)
        yield bus.address
