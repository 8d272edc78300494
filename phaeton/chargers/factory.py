"""Build the configured charger driver through the registry (`phaeton.chargers.registry`)."""
from __future__ import annotations

from typing import Any, Mapping

from phaeton.chargers.base import Charger
from phaeton.chargers.registry import kind_named
from phaeton.clock import REAL_CLOCK, Clock


def build_charger(config: Mapping[str, Any], clock: Clock = REAL_CLOCK) -> Charger:
    """The driver `charger.protocol` names, from the whole config (defaults applied).

    ValueError for a protocol nobody registered (the message lists the registered ones)."""
    return kind_named(config["charger"]["protocol"]).build(config, clock)
