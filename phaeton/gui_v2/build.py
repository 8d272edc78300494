"""Build phaeton's page for the GX touchscreen (gui-v2): `phaeton/gui_v2/phaeton.json`.

gui-v2 (Victron's Qt 6 GUI of Venus OS, v1.2.14 and later) loads third-party pages from
`/data/apps/enabled/<app>/gui-v2/*.json` (`src/guiplugins.cpp`, read at commit 2ffcc3c): one JSON
object with `name`, `version`, `minRequiredVersion`, `maxRequiredVersion`, `translations`,
`integrations` (type 1: a page under Settings > Integrations > UI Plugins; type 2: a page on the
device page of every device with that product id) and `resource`, a Qt binary resource (`rcc
-binary`, zlib) in base64 whose files live under `qrc:/<name>/`. Victron's own
`tools/gui-v2-plugin-compiler.py` writes that format; this builder writes the same with Qt's
`rcc` from Debian, and nothing else (there are no translations yet, so no lupdate/lrelease).

The QML files are phaeton's own (`phaeton_*.qml` beside this file). The file times inside the
resource are set to a fixed moment, so a build gives the same bytes every time and a test can
tell whether the committed `phaeton.json` is the build of the QML beside it.

Run: python -m phaeton.gui_v2.build [--rcc PATH] [--out PATH]
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from phaeton import __version__

HERE = Path(__file__).resolve().parent
NAME = "phaeton"
OUTPUT = HERE / f"{NAME}.json"
MIN_GUI_VERSION = "v1.2.14"          # the first gui-v2 tag with src/guiplugins.cpp
PRODUCT_ID = "0xFFFF"                 # phaeton's /ProductId (third-party driver)
SETTINGS_PAGE = "phaeton_PlannerSettings.qml"
CHARGER_PAGE = "phaeton_ChargerPage.qml"
FILE_TIME_S = 1_700_000_000           # the file times inside the resource (reproducible)
RCC_CANDIDATES = ("rcc", "/usr/lib/qt6/libexec/rcc", "/usr/libexec/rcc")


def find_rcc(explicit: str | None = None) -> str:
    for candidate in ((explicit,) if explicit else RCC_CANDIDATES):
        found = shutil.which(candidate) or (candidate if os.access(candidate, os.X_OK) else None)
        if found:
            return found
    raise FileNotFoundError("Qt's rcc is needed (Debian: apt install qt6-base-dev-tools)")


def qml_files() -> list[Path]:
    return sorted(HERE.glob("phaeton_*.qml"))


def plugin(resource: bytes) -> dict:
    return {
        "name": NAME,
        "version": __version__,
        "minRequiredVersion": MIN_GUI_VERSION,
        "maxRequiredVersion": "",
        "translations": [],
        "integrations": [
            {"type": 1, "url": f"qrc:/{NAME}/{SETTINGS_PAGE}"},
            {"type": 2, "productId": PRODUCT_ID, "url": f"qrc:/{NAME}/{CHARGER_PAGE}",
             "title": "phaeton"},
        ],
        "resource": base64.b64encode(resource).decode("ascii"),
    }


def compile_resource(rcc: str) -> bytes:
    """The QML files as one Qt binary resource under the prefix /phaeton."""
    with tempfile.TemporaryDirectory(prefix="phaeton-gui-") as work:
        names = []
        for source in qml_files():
            target = Path(work) / source.name
            shutil.copyfile(source, target)
            os.utime(target, (FILE_TIME_S, FILE_TIME_S))
            names.append(source.name)
        entries = "".join(f"<file>{name}</file>" for name in names)
        (Path(work) / f"{NAME}.qrc").write_text(
            f'<!DOCTYPE RCC><RCC version="1.0"><qresource prefix="/{NAME}">{entries}'
            f"</qresource></RCC>\n", encoding="utf-8")
        subprocess.run([rcc, "-binary", "-compress-algo", "zlib", "-o", f"{NAME}.rcc",
                        f"{NAME}.qrc"], cwd=work, check=True, capture_output=True)
        return (Path(work) / f"{NAME}.rcc").read_bytes()


def build(rcc: str | None = None) -> str:
    """The plugin JSON text (as committed)."""
    return json.dumps(plugin(compile_resource(find_rcc(rcc))), indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build phaeton's gui-v2 page (phaeton.json).")
    parser.add_argument("--rcc", help="Qt's rcc (default: found on PATH or in Debian's Qt 6)")
    parser.add_argument("--out", default=str(OUTPUT), help=f"where to write (default {OUTPUT})")
    args = parser.parse_args(argv)
    try:
        text = build(args.rcc)
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        print(f"phaeton gui-v2 build: {exc}", file=sys.stderr)
        return 1
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
