"""The service's start-up import set (issue 14): what `phaeton run` imports before its D-Bus
name is owned must not bring back the heavy modules that were moved out of its way. Each
check runs in a fresh interpreter, so nothing the test process imported counts."""
from __future__ import annotations

import json
import subprocess
import sys

KEPT_OUT = {
    "jsonschema": "the config is checked by phaeton.config_validate",
    "numpy": "the planner and the energy history are built after the D-Bus name is owned "
             "(phaeton/site.py)",
    "aiohttp": "the web UI loads at its first visit (phaeton/web/on_demand.py); tariffs "
               "import the HTTP client at their first fetch",
}
#: parts the service builds or starts right after its name is owned (phaeton/app.py,
#: phaeton/site.py); each costs milliseconds of start-up here, a GX's CPU is 10-20x slower
AFTER_THE_NAME = {
    "pymodbus": "the Alfen driver loads it with its first connection, which the site starts "
                "after the names are owned (phaeton/chargers/alfen.py)",
    "phaeton.metrics": "built by Phaeton.start once the site has started",
    "phaeton.update": "the update service is built by Phaeton.start once the site has started",
    "tempfile": "phaeton/store/state_file.py loads it at the first write",
    "difflib": "phaeton/config.py loads it for a config with a mistake only",
}


def _modules_after(code: str) -> set[str]:
    probe = code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    return set(json.loads(out.splitlines()[-1]))


def _loaded(modules: set[str], package: str) -> list[str]:
    return sorted(m for m in modules if m == package or m.startswith(package + "."))


def test_importing_the_service_loads_none_of_the_heavy_packages():
    modules = _modules_after("import phaeton.app")
    for package, why in KEPT_OUT.items():
        assert not _loaded(modules, package), f"{package} is imported at start-up ({why})"


def test_building_the_service_before_its_name_is_owned_loads_none_of_them(tmp_path):
    """`phaeton run` builds the whole service (loadpoints, site, carbon feed, metrics) before
    it owns its D-Bus name; with the default config none of the heavy packages is needed yet."""
    built = ("from phaeton.app import Phaeton\n"
             "from phaeton.config import Config, default_config\n"
             "data = default_config()\n"
             f"data['data_dir'] = {str(tmp_path / 'data')!r}\n"
             "data['charger']['alfen']['host'] = '127.0.0.1'\n"
             "app = Phaeton(Config(data))\n")
    modules = _modules_after(built)
    for package, why in {**KEPT_OUT, **AFTER_THE_NAME}.items():
        assert not _loaded(modules, package), f"{package} is loaded before the name ({why})"


def test_loading_and_checking_a_config_does_not_need_jsonschema(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("charger:\n  protocol: alfen\n  alfen:\n    host: 192.168.1.20\n")
    modules = _modules_after(f"from phaeton.config import load_config\n"
                             f"load_config({str(path)!r})")
    assert not _loaded(modules, "jsonschema")


def test_a_fetching_tariff_loads_the_http_client_only_when_it_fetches(tmp_path):
    made = ("from phaeton.config import default_config\n"
            "from phaeton.planner.service import tariff_mapping\n"
            "from phaeton.planning.tariffs.factory import tariff_from_config\n"
            "section = default_config()['planner']['tariff']\n"
            "section['type'] = 'tibber'; section['tibber']['token'] = 'x' * 20\n"
            "mapping = tariff_mapping(section)\n"
            "mapping['url'] = 'http://127.0.0.1:9/'   # nothing listens: a fetch fails\n"
            f"tariff = tariff_from_config(mapping, {str(tmp_path)!r})\n"
            "tariff.series\n")
    assert not _loaded(_modules_after(made), "aiohttp")
    # and the first fetch does load it (and fails: nothing listens there)
    fetched = made + ("import asyncio\n"
                      "from phaeton.planning.tariffs.base import TariffError\n"
                      "try:\n    asyncio.run(tariff.refresh())\n"
                      "except TariffError as exc:\n    assert 'connection failed' in str(exc)\n")
    assert _loaded(_modules_after(fetched), "aiohttp.client")
