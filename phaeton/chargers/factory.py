"""Build charger drivers through the registry (`phaeton.chargers.registry`)."""
from __future__ import annotations

from typing import Any, Mapping

from phaeton.chargers.base import Charger
from phaeton.chargers.registry import kind_named
from phaeton.clock import REAL_CLOCK, Clock


def build_charger_for(charger: Mapping[str, Any], config: Mapping[str, Any],
                      clock: Clock = REAL_CLOCK) -> Charger:
    """The driver for ONE charger entry (`charger`: the keys of the `charger:` section,
    defaults applied; other keys such as a loadpoint's id are ignored) within the whole
    `config` (for site facts such as `site.nominal_voltage_v`).

    ValueError for a protocol nobody registered (the message lists the registered ones), or
    for an entry that drives what an earlier built charger drives (e.g. the same OCPP charge
    point id and connector)."""
    return kind_named(charger["protocol"]).build(charger, config, clock)


def build_charger(config: Mapping[str, Any], clock: Clock = REAL_CLOCK) -> Charger:
    """The driver `charger.protocol` names, from the whole config (defaults applied): the
    config's one `charger:` section, i.e. `build_charger_for(config["charger"], config, clock)`."""
    return build_charger_for(config["charger"], config, clock)
