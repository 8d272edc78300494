"""What each page of the web UI costs a phone to load, now and at another version.

For every page: its HTML (rendered by that version's own `phaeton/web/pages.py`) and each
stylesheet and script it references, in bytes as sent (a file with a `.gz` beside it is sent
compressed to a browser that accepts gzip, as aiohttp does; everything else as it is) and
gzip-compressed (what a compressing proxy would send). The reference is a git revision
(`--reference`, default the commit before the charts came, 9a12a0f~1), extracted and measured in
the same run as the working tree, so the figures are measured, not typed in. A repeat visit
costs only the HTML: the assets are cached (`Cache-Control: no-cache` revalidates them, 304
without a body).

Run: .venv/bin/python benchmarks/page_weight.py [--reference REV]
"""
from __future__ import annotations

import argparse
import gzip
import importlib.util
import io
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEB = "phaeton/web"


def web_tree(rev: str | None, into: str) -> Path:
    """`phaeton/web` of the working tree (rev None) or of a git revision (extracted to `into`)."""
    if rev is None:
        return ROOT / WEB
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, WEB],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return Path(into) / WEB


def pages_module(web: Path):
    """That version's own `pages.py` (it renders its pages exactly as its server does)."""
    spec = importlib.util.spec_from_file_location(f"pages_{abs(hash(str(web)))}", web / "pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def weigh(web: Path, pages, url: str) -> tuple[int, int, int]:
    """(files, bytes as sent, bytes gzipped) of one page and its assets."""
    content, title, script = pages.PAGES[url][:3]
    html = pages.render_page(content, title, script)
    sent, zipped, files = len(html), len(gzip.compress(html, 9)), 1
    for asset in re.findall(r'(?:src|href)="/static/([^"]+)"', html.decode()):
        path = web / "static" / asset
        if not path.exists():
            continue
        body = path.read_bytes()
        precompressed = path.with_name(path.name + ".gz")
        files += 1
        sent += precompressed.stat().st_size if precompressed.exists() else len(body)
        zipped += len(gzip.compress(body, 9))
    return files, sent, zipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default="9a12a0f~1",
                        help="git revision to compare with (default: before the charts)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="page-weight-") as into:
        now_web, then_web = web_tree(None, into), web_tree(args.reference, into)
        now, then = pages_module(now_web), pages_module(then_web)
        print(f"page weight, first visit (HTML + CSS + JS); reference {args.reference}\n")
        print(f"{'page':<11}{'files':>7}{'sent KB':>10}{'gzip KB':>10}   "
              f"{'ref sent':>9}{'ref gzip':>9}{'ratio sent':>12}")
        for url in now.PAGES:
            files, sent, zipped = weigh(now_web, now, url)
            _, ref_sent, ref_zipped = weigh(then_web, then, url)
            print(f"{url:<11}{files:>7}{sent / 1024:>10.1f}{zipped / 1024:>10.1f}   "
                  f"{ref_sent / 1024:>9.1f}{ref_zipped / 1024:>9.1f}{sent / ref_sent:>12.2f}")


if __name__ == "__main__":
    main()
