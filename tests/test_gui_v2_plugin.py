"""phaeton's page on the GX screen (gui-v2): the committed phaeton.json is the build of the QML
beside it, in the form gui-v2 loads (src/guiplugins.cpp); Qt's qmllint accepts the QML (a broken
copy it refuses); and every D-Bus path the pages bind exists on a running phaeton and on the
settings service. gui-v2 itself cannot run here (no GX, no Victron.VenusOS module), so the pages
are not rendered: see docs/gx-screen.md."""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from phaeton.gui_v2 import build
from phaeton.venus.evcharger_service import PRODUCT_ID

QMLLINT = shutil.which("qmllint") or "/usr/lib/qt6/bin/qmllint"
# gui-v2's own module (Victron.VenusOS) has no qmltypes outside a gui-v2 build: the checks that
# need it are off, the rest (syntax, JavaScript, QtQuick) stay on.
LINT_OFF = ("--import", "--unqualified", "--type", "--property", "--required", "--signal")


def qml_names() -> list[str]:
    return [p.name for p in build.qml_files()]


def test_the_committed_page_is_the_build_of_the_qml_beside_it():
    assert build.OUTPUT.read_text(encoding="utf-8") == build.build(), \
        "phaeton/gui_v2/phaeton.json is stale: run python -m phaeton.gui_v2.build"


def test_the_page_is_what_gui_v2_loads():
    plugin = json.loads(build.OUTPUT.read_text(encoding="utf-8"))
    # populatePlugins(): name, version, resource (base64) and integrations are required
    assert plugin["name"] == "phaeton" and plugin["version"]
    assert plugin["minRequiredVersion"] == "v1.2.14" and plugin["maxRequiredVersion"] == ""
    resource = base64.b64decode(plugin["resource"], validate=True)
    assert resource[:4] == b"qres"                      # a Qt binary resource
    settings, device = plugin["integrations"]
    assert settings == {"type": 1, "url": "qrc:/phaeton/phaeton_PlannerSettings.qml"}
    assert device["type"] == 2 and int(device["productId"], 16) == PRODUCT_ID
    for integration in plugin["integrations"]:
        name = integration["url"].rsplit("/", 1)[1]
        assert name in qml_names()
        assert name.encode("utf-16-be") in resource     # the file is in the resource tree


def _lint(*files: str | Path) -> subprocess.CompletedProcess:
    argv = [QMLLINT]
    for option in LINT_OFF:
        argv += [option, "disable"]
    return subprocess.run([*argv, *map(str, files)], capture_output=True, text=True,
                          timeout=60)


def test_qmllint_accepts_the_pages_and_refuses_a_broken_one(tmp_path):
    result = _lint(*build.qml_files())
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.qml"
    text = build.qml_files()[0].read_text(encoding="utf-8")
    broken.write_text(text.replace("GradientListView {", "GradientListView {{", 1))
    assert _lint(broken).returncode != 0


def bound_paths() -> tuple[set[str], set[str]]:
    """(paths on phaeton's evcharger service, paths under the planner's settings) the pages
    bind, read from the QML."""
    charger, knobs = set(), set()
    for path in build.qml_files():
        text = path.read_text(encoding="utf-8")
        charger |= set(re.findall(r'root\.charger \+ "(/[^"]+)"', text))
        knobs |= set(re.findall(r'root\.knobs \+ "(/[^"]+)"', text))
    return charger, knobs


@pytest.mark.slow
async def test_every_path_the_pages_bind_exists_on_a_running_phaeton(private_bus, tmp_path):
    from dbus_clients import run
    from scripted_gx import NAME, ScriptedGx

    async def value(service: str, path: str) -> str | None:
        code, out, err = await run("dbus-send", "--system", "--print-reply", f"--dest={service}",
                                   path, "com.victronenergy.BusItem.GetValue")
        return out if code == 0 else None

    charger, knobs = bound_paths()
    assert {"/Reason", "/Planner/Reason", "/Carbon/Intensity"} <= charger
    assert {"/Strategy", "/EvTargetSoc", "/EvDepartureTime"} <= knobs
    async with ScriptedGx(private_bus, str(tmp_path)) as gx:
        app = await gx.start_phaeton()
        await gx.until(lambda: app.site.ticks >= 1, 30, "the first tick")
        missing = [path for path in sorted(charger) if await value(NAME, path) is None]
        settings = ["/Settings/Phaeton/Planner" + path for path in sorted(knobs)]
        missing += [path for path in settings
                    if await value("com.victronenergy.settings", path) is None]
        assert missing == []
        # the decision's words, on the bus as in the web UI
        assert f'"{app.status()["reason"]}"' in await value(NAME, "/Reason")
