"""Run a test action without root rights (root ignores directory permissions)."""
from __future__ import annotations

import os


def run_unprivileged(action) -> str:
    """Run `action()` in a forked child without root rights (root ignores directory
    permissions); returns what it returned or raised, as text."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_fd)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            result = repr(action())
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            result = f"{type(exc).__name__}: {exc}"
        os.write(write_fd, result.encode())
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        output = pipe.read().decode()
    os.waitpid(pid, 0)
    return output
