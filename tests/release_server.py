"""A local release server for the self-update tests: aiohttp on 127.0.0.1, answering like
GitHub's REST API (`GET /repos/<owner>/<repo>/releases`) and serving the release assets.

    server = ReleaseServer()
    await server.start()                  # or start(port) to come back on a known port
    server.publish("0.2.0", tarball_bytes, signature=sig, digest=hexdigest)
    server.index_url                      # what update.url is set to
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from aiohttp import web

INDEX_PATH = "/repos/phaeton-ev/phaeton/releases"


@dataclass
class Published:
    version: str
    prerelease: bool = False
    draft: bool = False
    assets: dict[str, bytes] = field(default_factory=dict)


class ReleaseServer:
    def __init__(self) -> None:
        self.releases: list[Published] = []
        self.requests: list[str] = []
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    @property
    def index_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{INDEX_PATH}"

    def publish(self, version: str, tarball: bytes, *, signature: bytes,
                digest: str | None = None, prerelease: bool = False,
                draft: bool = False) -> Published:
        """Offer a release (replacing one of the same version) with its three assets."""
        name = f"phaeton-{version}.tar.gz"
        digest = digest if digest is not None else hashlib.sha256(tarball).hexdigest()
        release = Published(version, prerelease, draft, {
            name: tarball, name + ".sha256": f"{digest}  {name}\n".encode(),
            name + ".sig": signature})
        self.releases = [r for r in self.releases if r.version != version] + [release]
        return release

    def _index(self) -> list[dict]:
        base = f"http://127.0.0.1:{self.port}/assets"
        return [{"tag_name": f"v{r.version}", "name": f"phaeton {r.version}",
                 "draft": r.draft, "prerelease": r.prerelease,
                 "published_at": "2026-05-01T12:00:00Z",
                 "assets": [{"name": name, "browser_download_url": f"{base}/{name}",
                             "size": len(data)} for name, data in r.assets.items()]}
                for r in reversed(self.releases)]       # newest first, as GitHub lists them

    async def _get_index(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        return web.json_response(self._index())

    async def _get_asset(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        name = request.match_info["name"]
        for release in self.releases:
            if name in release.assets:
                return web.Response(body=release.assets[name],
                                    content_type="application/octet-stream")
        raise web.HTTPNotFound()

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_get(INDEX_PATH, self._get_index)
        app.router.add_get("/assets/{name}", self._get_asset)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
