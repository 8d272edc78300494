"""The fault tier (issue 11, "Keep the trials"): fault and abuse trials kept as tests.

Every test in this directory gets the `fault` marker (`pytest -m fault` runs the tier alone,
`-m "not fault"` skips it). Plain `pytest` collects it with the rest (testpaths = tests).
Every loop is bounded in count and time, everything listens on loopback, and every test owns
its ports, temporary directories and private bus. `benchmarks/soak.py` runs the same trials
longer and prints figures.
"""
from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
for directory in (HERE, os.path.dirname(HERE)):     # trials/ and tests/ helpers
    if directory not in sys.path:
        sys.path.insert(0, directory)


def pytest_configure(config):
    config.addinivalue_line("markers", "fault: the fault and abuse trials (tests/faults/)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if str(item.fspath).startswith(HERE + os.sep):
            item.add_marker(pytest.mark.fault)
