"""velib stands alone: it imports where the `phaeton` package is absent, and takes any clock.

The subprocess sees a copy of only the `velib` package and the directory dbus-next is installed
in, with `site` off (`-S`), so the editable install's finder that maps `phaeton` onto this
checkout is never loaded. It first shows that `phaeton` cannot be imported there, then imports
every velib module.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import dbus_next

import velib
from phaeton.clock import REAL_CLOCK as PHAETON_REAL_CLOCK
from phaeton.clock import ScaledClock
from velib.clock import REAL_CLOCK, Clock

VELIB_MODULES = "velib, velib.clock, velib.monitor, velib.settings, velib.service, " \
                "velib.settings_service"


def _run_without_phaeton(tmp_path: Path, code: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter whose only velib is the copy in `tmp_path` and which
    has no way to import phaeton (no site-packages .pth files, no checkout on the path)."""
    copy = tmp_path / "velib"
    if not copy.exists():
        shutil.copytree(Path(velib.__file__).parent, copy,
                        ignore=shutil.ignore_patterns("__pycache__"))
    dbus_next_dir = str(Path(dbus_next.__file__).parent.parent)
    env = {"PYTHONPATH": f"{tmp_path}:{dbus_next_dir}", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-S", "-s", "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


def test_phaeton_is_not_importable_in_the_bare_environment(tmp_path):
    result = _run_without_phaeton(tmp_path, "import phaeton")
    assert result.returncode != 0
    assert "ModuleNotFoundError: No module named 'phaeton'" in result.stderr


def test_every_velib_module_imports_without_phaeton(tmp_path):
    code = (f"import sys\nimport {VELIB_MODULES}\n"
            "assert 'phaeton' not in sys.modules\n"
            "print(velib.__file__)\n"
            "print(velib.clock.REAL_CLOCK.monotonic() > 0)\n")
    result = _run_without_phaeton(tmp_path, code)
    assert result.returncode == 0, result.stderr
    file_line, clock_line = result.stdout.splitlines()
    assert Path(file_line).is_relative_to(tmp_path)
    assert clock_line == "True"


def test_phaeton_clocks_are_velib_clocks():
    """velib's clock is a protocol: phaeton's clocks (and a test's fake) fit it as they are."""

    class FakeClock:
        def __init__(self):
            self.now = 12.5

        def monotonic(self) -> float:
            return self.now

    for clock in (PHAETON_REAL_CLOCK, ScaledClock(speed=100), FakeClock()):
        assert isinstance(clock, Clock)
    assert not isinstance(object(), Clock)


def test_the_default_clock_is_monotonic_time():
    first = REAL_CLOCK.monotonic()
    assert REAL_CLOCK.monotonic() >= first
