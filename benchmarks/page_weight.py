"""What each page of the web UI costs a phone to load, now and at another version.

For every page: its HTML (the layout around the page's content, as `phaeton/web/pages.py` puts it
together) and each stylesheet and script it references, in bytes as sent (a file with a `.gz`
beside it is sent compressed to a browser that accepts gzip, as aiohttp does; everything else as
it is) and gzip-compressed (what a compressing proxy would send). Both versions are read from git
(`--reference`, default the commit before the charts came, 9a12a0f~1; and the working tree), so
the figures are measured, not typed in. A repeat visit costs only the HTML: the assets are cached
(`Cache-Control: no-cache` revalidates them, 304 without a body).

Run: .venv/bin/python benchmarks/page_weight.py [--reference REV]
"""
from __future__ import annotations

import argparse
import gzip
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEB = "phaeton/web"
PAGES = {"/": "index.html", "/sessions": "sessions.html", "/schedule": "schedule.html",
         "/settings": "settings.html", "/logs": "logs.html", "/login": "login.html"}


def reader(rev: str | None):
    """read(path) -> bytes | None of the working tree (rev None) or a git revision."""
    def read(path: str) -> bytes | None:
        if rev is None:
            file = ROOT / path
            return file.read_bytes() if file.exists() else None
        done = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"],
                              capture_output=True)
        return done.stdout if done.returncode == 0 else None
    return read


def page_html(read, content: str) -> bytes:
    """The page as pages.py renders it (the chart pages' head included when the version has it)."""
    source = read(f"{WEB}/pages.py").decode()
    layout = read(f"{WEB}/templates/layout.html").decode()
    script = re.search(rf'"{re.escape(content)}", "[^"]+", "([^"]+)"', source).group(1)
    head = ""
    if "CHART_HEAD" in source and script in re.search(r"CHART_PAGES = frozenset\(\{([^}]*)\}",
                                                       source).group(1):
        head = eval(re.search(r"CHART_HEAD = (\([^)]*\))", source, re.S).group(1))  # noqa: S307
    html = (layout.replace("<!--title-->", "x").replace("<!--head-->", head)
            .replace("<!--script-->", script)
            .replace("<!--main-->", read(f"{WEB}/templates/{content}").decode()))
    return html.encode()


def weigh(read, content: str) -> tuple[int, int, int]:
    """(files, bytes as sent, bytes gzipped) of one page and its assets."""
    html = page_html(read, content)
    assets = re.findall(r'(?:src|href)="/static/([^"]+)"', html.decode())
    sent, zipped, files = len(html), len(gzip.compress(html, 9)), 1
    for asset in assets:
        body = read(f"{WEB}/static/{asset}")
        if body is None:
            continue
        precompressed = read(f"{WEB}/static/{asset}.gz")
        files += 1
        sent += len(precompressed) if precompressed is not None else len(body)
        zipped += len(gzip.compress(body, 9))
    return files, sent, zipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default="9a12a0f~1",
                        help="git revision to compare with (default: before the charts)")
    args = parser.parse_args()
    now, then = reader(None), reader(args.reference)
    print(f"page weight, first visit (HTML + CSS + JS); reference {args.reference}\n")
    print(f"{'page':<11}{'files':>7}{'sent KB':>10}{'gzip KB':>10}   "
          f"{'ref sent':>9}{'ref gzip':>9}{'ratio sent':>12}")
    for url, content in PAGES.items():
        files, sent, zipped = weigh(now, content)
        _, ref_sent, ref_zipped = weigh(then, content)
        print(f"{url:<11}{files:>7}{sent / 1024:>10.1f}{zipped / 1024:>10.1f}   "
              f"{ref_sent / 1024:>9.1f}{ref_zipped / 1024:>9.1f}{sent / ref_sent:>12.2f}")


if __name__ == "__main__":
    main()
