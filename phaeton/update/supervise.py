"""daemontools, as on a GX: restart the service (`svc -t`), ask how it is (`svstat`)."""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServiceState:
    up: bool
    pid: int | None
    seconds: int | None
    text: str                          # svstat's line


def restart(service_dir: Path) -> str | None:
    """`svc -t`: supervise stops the service (TERM) and starts it again with the run script,
    which runs whatever `current` names now. None when done, else why not."""
    try:
        result = subprocess.run(["svc", "-t", str(service_dir)], capture_output=True,
                                text=True, timeout=15)
    except FileNotFoundError:
        return "svc (daemontools) is not installed"
    except subprocess.TimeoutExpired:
        return f"svc -t {service_dir} did not return"
    if result.returncode != 0:
        return (f"svc -t {service_dir} failed: "
                f"{(result.stderr or result.stdout).strip() or result.returncode}")
    return None


def state(service_dir: Path) -> ServiceState:
    try:
        text = subprocess.run(["svstat", str(service_dir)], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return ServiceState(False, None, None, "svstat is not available")
    match = re.search(r": up \(pid (\d+)\) (\d+) seconds", text)
    if match is None:
        return ServiceState(False, None, None, text)
    return ServiceState(True, int(match[1]), int(match[2]), text)
