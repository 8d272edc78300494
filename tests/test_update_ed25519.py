"""phaeton's pure-Python Ed25519 verifier against RFC 8032's test vectors and against
signatures made by an independent implementation, the `openssl` command line."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from phaeton.update import ed25519

# RFC 8032, section 7.1: TEST 1, TEST 2, TEST 3 (public key, message, signature)
RFC_8032_VECTORS = [
    ("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970"
     "1cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613"
     "d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760"
     "984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]


@pytest.mark.parametrize("public, message, signature", RFC_8032_VECTORS)
def test_rfc_8032_vectors_verify_and_any_change_is_refused(public, message, signature):
    key, msg, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    assert ed25519.verify(key, msg, sig)
    assert not ed25519.verify(key, msg + b"\0", sig)
    for position in (0, 31, 32, 63):                  # in R and in S
        bad = bytearray(sig)
        bad[position] ^= 0x01
        assert not ed25519.verify(key, msg, bytes(bad))
    other_key = bytes.fromhex(RFC_8032_VECTORS[(RFC_8032_VECTORS.index(
        (public, message, signature)) + 1) % 3][0])
    assert not ed25519.verify(other_key, msg, sig)


def test_malformed_keys_and_signatures_are_refused_not_crashed_on():
    key, _, sig_hex = RFC_8032_VECTORS[1]
    key, sig, msg = bytes.fromhex(key), bytes.fromhex(sig_hex), b"\x72"
    assert not ed25519.verify(key[:31], msg, sig)
    assert not ed25519.verify(key, msg, sig[:63])
    assert not ed25519.verify(key, msg, sig + b"\0")
    # S + L is the same scalar modulo L but not canonical: RFC 8032 says refuse
    s = int.from_bytes(sig[32:], "little") + ed25519.L
    assert not ed25519.verify(key, msg, sig[:32] + s.to_bytes(32, "little"))
    # y >= p is no canonical point encoding
    assert ed25519.decode_point((2**255 - 1).to_bytes(32, "little")) is None
    assert not ed25519.verify((2**255 - 1).to_bytes(32, "little"), msg, sig)


def test_the_base_point_has_the_order_l():
    assert ed25519.same_point(ed25519.multiply(ed25519.L, ed25519.BASE), ed25519.NEUTRAL)
    assert not ed25519.same_point(ed25519.multiply(ed25519.L - 1, ed25519.BASE),
                                  ed25519.NEUTRAL)


needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")


def openssl_key(directory: Path, name: str = "key") -> tuple[Path, bytes]:
    """A new Ed25519 private key (PEM) and its raw 32-byte public key, made by openssl."""
    pem = directory / f"{name}.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(pem)],
                   check=True, capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", str(pem), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    return pem, der[-32:]       # SubjectPublicKeyInfo: a 12-byte header, then the raw key


def openssl_sign(pem: Path, path: Path) -> bytes:
    """The raw 64-byte signature of the file's bytes, as a maintainer makes it."""
    out = path.with_name(path.name + ".sig")
    subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", str(pem), "-in", str(path),
                    "-out", str(out)], check=True, capture_output=True)
    return out.read_bytes()


@needs_openssl
@pytest.mark.parametrize("size", [1, 63, 64, 1000, 300_000])
def test_signatures_made_by_openssl_verify(tmp_path, size):
    pem, public = openssl_key(tmp_path)
    message = tmp_path / "release.tar.gz"
    message.write_bytes(os.urandom(size))
    signature = openssl_sign(pem, message)
    assert len(signature) == 64
    data = message.read_bytes()
    assert ed25519.verify(public, data, signature)
    chunks = [data[i:i + 4096] for i in range(0, len(data), 4096)]
    assert ed25519.verify_chunks(public, chunks, signature)
    assert not ed25519.verify(public, data[:-1] + bytes([data[-1] ^ 1]), signature)
    _, stranger = openssl_key(tmp_path, "stranger")
    assert not ed25519.verify(stranger, data, signature)
