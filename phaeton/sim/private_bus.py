"""A private dbus-daemon, for the tests and `phaeton demo` (never the machine's system bus).

Venus services live on the system bus; dbus-next honours DBUS_SYSTEM_BUS_ADDRESS, so pointing
that variable at this daemon makes every part of phaeton (and python3-dbus, dbus-send, busctl)
use it. The policy lets anyone own any name, like root on a GX.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow eavesdrop="true"/>
  </policy>
  <limit name="max_match_rules_per_connection">100000</limit>
  <limit name="max_connections_per_user">10000</limit>
  <limit name="max_replies_per_connection">100000</limit>
</busconfig>
"""


class PrivateBus:
    """Start with `start()`, read `.address`, stop with `stop()` (also a context manager)."""

    def __init__(self, directory: str | None = None):
        self._own_dir = directory is None
        self.directory = directory or tempfile.mkdtemp(prefix="phaeton-bus-")
        self.address = ""
        self._process: subprocess.Popen | None = None

    def start(self) -> "PrivateBus":
        daemon = shutil.which("dbus-daemon")
        if daemon is None:
            raise RuntimeError("dbus-daemon is not installed (Debian package dbus-daemon)")
        socket = os.path.join(self.directory, "system_bus_socket")
        config = os.path.join(self.directory, "bus.conf")
        with open(config, "w", encoding="utf-8") as f:
            f.write(_CONFIG.format(socket=socket))
        # Its own session: a Ctrl-C in the terminal reaches only our process, which then
        # shuts down over this bus and stops the daemon last (see stop()).
        self._process = subprocess.Popen(
            [daemon, "--nofork", "--nopidfile", "--nosyslog", "--print-address",
             f"--config-file={config}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        line = self._process.stdout.readline().strip()
        if not line:
            err = self._process.stderr.read() if self._process.poll() is not None else ""
            raise RuntimeError(f"dbus-daemon did not start: {err.strip()}")
        self.address = line
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            for stream in (self._process.stdout, self._process.stderr):
                if stream:
                    stream.close()
            self._process = None
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "PrivateBus":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
