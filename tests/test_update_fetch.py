"""The updater's HTTP and download checks against a local server: every way of being offline
is one clear line, a file larger than announced is refused, the checks of a download."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import socket

import pytest
from aiohttp import web

from phaeton.update import fetch
from phaeton.update.verify import VerifyError, check_release_file
from tests.test_update_ed25519 import needs_openssl, openssl_key, openssl_sign


@pytest.fixture
async def server():
    """A server with /index (JSON), /big (1 MB) and /slow (never answers in time)."""
    async def index(request):
        return web.json_response([{"tag_name": "v0.2.0"}])

    async def big(request):
        return web.Response(body=b"x" * 1_000_000)

    async def slow(request):
        await asyncio.sleep(1.5)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/index", index)
    app.router.add_get("/big", big)
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_the_index_and_every_way_of_being_offline(server):
    assert await asyncio.to_thread(fetch.get_json, server + "/index") == [{"tag_name": "v0.2.0"}]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    cases = [
        (f"http://127.0.0.1:{closed}/x", 5, f"connection to 127.0.0.1:{closed} refused "
                                            f"(offline, or no server there)"),
        ("http://phaeton-update-test.invalid/x", 5, "cannot resolve phaeton-update-test.invalid "
                                                    "(no DNS: is the GX offline?)"),
        (server + "/slow", 0.5, "no answer from 127.0.0.1:"),
        (server + "/missing", 5, "answered HTTP 404 Not Found for"),
    ]
    for url, timeout_s, expected in cases:
        with pytest.raises(fetch.FetchError) as caught:
            await asyncio.to_thread(fetch.get_json, url, timeout_s)
        assert expected in str(caught.value), url
        assert "\n" not in str(caught.value)
    with pytest.raises(fetch.FetchError, match="not an http"):
        fetch.get_json("file:///etc/passwd")


async def test_a_download_larger_than_announced_is_cut_off(server, tmp_path):
    target = tmp_path / "file"
    size = await asyncio.to_thread(fetch.download, server + "/big", target,
                                   max_bytes=1_000_000)
    assert size == 1_000_000 == target.stat().st_size
    with pytest.raises(fetch.FetchError, match="larger than the 999999 bytes announced"):
        await asyncio.to_thread(fetch.download, server + "/big", target, max_bytes=999_999)


@needs_openssl
def test_a_download_is_checked_for_size_digest_and_signature_in_that_order(tmp_path):
    pem, public = openssl_key(tmp_path)
    release = tmp_path / "phaeton-0.2.0.tar.gz"
    release.write_bytes(b"release bytes " * 1000)
    signature = openssl_sign(pem, release)
    digest = hashlib.sha256(release.read_bytes()).hexdigest()
    size = release.stat().st_size

    def check(**changes) -> None:
        arguments = {"expected_size": size, "digest_text": digest, "signature": signature,
                     "public_key": public, **changes}
        check_release_file(release, **arguments)

    check()
    with pytest.raises(VerifyError, match=f"has {size} bytes, the index announces {size + 1}"):
        check(expected_size=size + 1)
    with pytest.raises(VerifyError, match="digest mismatch"):
        check(digest_text="0" * 64)
    with pytest.raises(VerifyError, match="bad signature: phaeton-0.2.0.tar.gz is not signed"):
        check(signature=signature[:-1] + bytes([signature[-1] ^ 1]))
    with pytest.raises(VerifyError, match="has 88 bytes, an Ed25519 signature has 64"):
        check(signature=base64.b64encode(signature + b"\0" * 2))
    _, stranger = openssl_key(tmp_path, "stranger")
    with pytest.raises(VerifyError, match="bad signature"):
        check(public_key=stranger)
