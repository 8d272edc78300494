"""Is a downloaded release the one the maintainer signed? Size, SHA-256, then signature.

The size and the digest catch a broken or cut-off download (they come from the same server as
the file, so they prove nothing about who made it); the Ed25519 signature over the tarball's
bytes, checked against `update.public_key`, does. Each refusal is a `VerifyError` whose text
says which check failed.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from phaeton.update import ed25519

CHUNK_BYTES = 256 * 1024


class VerifyError(Exception):
    """The download is not the signed release; str() says why."""


def _chunks(path: Path):
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            yield chunk


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    for chunk in _chunks(path):
        digest.update(chunk)
    return digest.hexdigest()


def parse_digest(text: str) -> str:
    """The hex SHA-256 of a .sha256 asset: the digest alone, or sha256sum's "<hex>  <name>"."""
    first = text.strip().split()[0].lower() if text.strip() else ""
    if not re.fullmatch(r"[0-9a-f]{64}", first):
        raise VerifyError("the release's .sha256 file holds no SHA-256 (64 hex digits)")
    return first


def check_release_file(path: Path, *, expected_size: int | None, digest_text: str,
                       signature: bytes, public_key: bytes) -> None:
    """Raise VerifyError unless `path` has the announced size, the published SHA-256 and a
    valid signature by `public_key` (raw 64 bytes, as `openssl pkeyutl -sign -rawin` writes)."""
    name = path.name.removesuffix(".part")
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        raise VerifyError(f"corrupt download: {name} has {size} bytes, the index announces "
                          f"{expected_size}")
    expected = parse_digest(digest_text)
    actual = sha256_of(path)
    if actual != expected:
        raise VerifyError(f"corrupt download: the SHA-256 of {name} is {actual[:16]}…, the "
                          f"release says {expected[:16]}… (digest mismatch)")
    if len(signature) != ed25519.SIGNATURE_BYTES:
        raise VerifyError(f"bad signature: {name}.sig has {len(signature)} bytes, an Ed25519 "
                          f"signature has 64 (raw, as openssl writes it)")
    if not ed25519.verify_chunks(public_key, _chunks(path), signature):
        raise VerifyError(f"bad signature: {name} is not signed by the key in "
                          f"update.public_key")
