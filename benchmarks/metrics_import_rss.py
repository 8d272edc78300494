"""What importing a Prometheus client costs in memory: RSS of a fresh interpreter with and
without `prometheus_client`, and with phaeton's own exposition (`phaeton.metrics`).

Each figure is a fresh interpreter (`python -c ...`) reading its own VmRSS from /proc after
the imports; the median of `--runs` runs. Two bases: a bare interpreter, and one that has
already imported what the running service has (`phaeton.app`, which includes phaeton's own
metrics, and the web UI's aiohttp), since modules both need are only paid once.

    python benchmarks/metrics_import_rss.py
    python benchmarks/metrics_import_rss.py --python /tmp/venv/bin/python   # one that has
                                                                            # prometheus_client

The interpreter must be able to import phaeton (run from the repository, or the venv with
phaeton installed) for the service base; prometheus_client is measured only where it is
installed (phaeton does not depend on it).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = r"""
import gc
{imports}
gc.collect()
for line in open("/proc/self/status"):
    if line.startswith("VmRSS:"):
        print(int(line.split()[1]))
"""

SERVICE = "import phaeton.app, phaeton.web.app"
CASES = {
    "bare interpreter": "",
    "bare + prometheus_client": "import prometheus_client",
    "bare + phaeton.metrics_text": "import phaeton.metrics_text",
    "service (phaeton.app + web)": SERVICE,
    "service + prometheus_client": SERVICE + "\nimport prometheus_client",
}


def rss_kib(python: str, imports: str) -> int | None:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([python, "-c", PROBE.format(imports=imports)], capture_output=True,
                          text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        return None
    return int(done.stdout.split()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter to measure (default: this one)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    figures: dict[str, float | None] = {}
    for name, imports in CASES.items():
        runs = [rss_kib(args.python, imports) for _ in range(args.runs)]
        good = [r for r in runs if r is not None]
        figures[name] = statistics.median(good) if good else None
    print(f"python: {args.python}")
    for name, kib in figures.items():
        text = "not importable here" if kib is None else f"{kib / 1024:6.1f} MiB"
        print(f"  {name:45s} {text}")

    def delta(with_: str, without: str) -> str:
        a, b = figures[with_], figures[without]
        if a is None or b is None:
            return "n/a"
        return f"{(a - b) / 1024:+.1f} MiB"
    print("cost of prometheus_client, bare interpreter:  "
          + delta("bare + prometheus_client", "bare interpreter"))
    print("cost of prometheus_client, in the service:    "
          + delta("service + prometheus_client", "service (phaeton.app + web)"))
    print("cost of phaeton.metrics_text, bare:           "
          + delta("bare + phaeton.metrics_text", "bare interpreter"))
    print("(the service base already holds phaeton.metrics and the /metrics route: "
          "phaeton.app imports them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
