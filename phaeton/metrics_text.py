"""The Prometheus text exposition format (version 0.0.4), written by hand.

Pure: families of samples in, text out. phaeton does not use `prometheus_client`: the format
is a few lines of rules, every value here is built per scrape from the tick's snapshot (the
library's own metric objects would only hold copies), and it keeps a dependency and its
import off a 1 GB GX (docs/metrics.md has the measured figures,
`benchmarks/metrics_import_rss.py`).

The rules kept (https://prometheus.io/docs/instrumenting/exposition_formats/):
- per family one `# HELP` and one `# TYPE` line, then its samples, families not interleaved;
- metric and label names `[a-zA-Z_:][a-zA-Z0-9_:]*` (label names without `:`), checked here;
- label values escape `\\`, `"` and newline; HELP text escapes `\\` and newline;
- values as Go's ParseFloat reads them: `NaN`, `+Inf`, `-Inf`, else Python's repr of the float
  (the shortest text that reads back as the same float, so a value survives the round trip);
- a histogram has cumulative `_bucket{le=...}` samples ending with `le="+Inf"`, then `_sum`
  and `_count`; a counter is named `..._total` (HELP, TYPE and sample alike).
"""
from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
TYPES = ("counter", "gauge", "histogram", "info", "untyped")

Labels = Mapping[str, str]


@dataclass
class Family:
    """One metric family: its name (a counter's ends with `_total`: in the 0.0.4 text format
    the HELP and TYPE lines name the sample itself), type, help and samples (suffix, labels,
    value). Build it with `add` (`Histogram.add_to` for a histogram)."""

    name: str
    type: str
    help: str
    samples: list[tuple[str, tuple[tuple[str, str], ...], float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not _METRIC_NAME.match(self.name):
            raise ValueError(f"not a metric name: {self.name!r}")
        if self.type not in TYPES:
            raise ValueError(f"not a metric type: {self.type!r}")
        if (self.type == "counter") != self.name.endswith("_total"):
            raise ValueError(f"a counter, and only a counter, is named ..._total: {self.name!r}")

    def add(self, value: float | int | bool | None, labels: Labels | None = None, *,
            suffix: str = "") -> None:
        """One sample; `None` (unknown) adds nothing: an unknown value is left out rather
        than shown as a made-up number."""
        if value is None:
            return
        pairs = tuple((str(k), str(v)) for k, v in (labels or {}).items())
        for key, _ in pairs:
            if not _LABEL_NAME.match(key) or key.startswith("__"):
                raise ValueError(f"not a label name: {key!r}")
        self.samples.append((suffix, pairs, float(value)))


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def escape_label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def render(families: Iterable[Family]) -> str:
    """The exposition text of `families` (each name once, in the order given)."""
    out: list[str] = []
    seen: set[str] = set()
    for family in families:
        if family.name in seen:
            raise ValueError(f"metric family {family.name} twice")
        seen.add(family.name)
        out.append(f"# HELP {family.name} {escape_help(family.help)}")
        out.append(f"# TYPE {family.name} {family.type}")
        for suffix, labels, value in family.samples:
            if labels:
                inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels)
                out.append(f"{family.name}{suffix}{{{inner}}} {format_value(value)}")
            else:
                out.append(f"{family.name}{suffix} {format_value(value)}")
    return "\n".join(out) + "\n"


class Histogram:
    """Cumulative buckets of observed values (seconds), as Prometheus keeps them."""

    def __init__(self, bounds: Sequence[float]):
        if list(bounds) != sorted(set(bounds)):
            raise ValueError("histogram bounds must be increasing")
        self.bounds = tuple(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)   # the last: above every bound
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        if not math.isfinite(value):
            return
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def add_to(self, family: Family, labels: Labels | None = None) -> None:
        """Its `_bucket`, `_sum` and `_count` samples into a histogram family."""
        base = dict(labels or {})
        running = 0
        for bound, count in zip(self.bounds, self.counts):
            running += count
            family.add(running, {**base, "le": format_value(bound)}, suffix="_bucket")
        family.add(self.count, {**base, "le": "+Inf"}, suffix="_bucket")
        family.add(self.sum, base, suffix="_sum")
        family.add(self.count, base, suffix="_count")
