"""Hashing the web UI password for the config file (stdlib scrypt with a random salt).

The stored form is `scrypt$N$r$p$<salt hex>$<hash hex>`: self-describing, so the cost can be
raised later without breaking stored hashes. Verification takes constant time per hash.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

SCRYPT_N = 2 ** 14
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # scrypt time grows with input; refuse megabyte "passwords"


class PasswordHashError(ValueError):
    """A stored password hash that cannot be used (wrong format or parameters)."""


def hash_password(password: str) -> str:
    """The storable hash of `password`; raises ValueError for a too short or too long one."""
    if not isinstance(password, str):
        raise ValueError("the password must be text")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_hash_format(stored: str) -> None:
    """Raise PasswordHashError naming what is wrong with a stored hash."""
    _parse(stored)


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches the stored hash. A malformed hash raises PasswordHashError;
    a password that is not text or is too long is simply wrong."""
    n, r, p, salt, expected = _parse(stored)
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p, len(expected)), expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int,
            length: int = _HASH_BYTES) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * 1024 * 1024, dklen=length)


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    if not isinstance(stored, str):
        raise PasswordHashError("the password hash must be text")
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise PasswordHashError("the password hash must look like scrypt$N$r$p$salt$hash "
                                "(made by `python -m phaeton.web.set_password`)")
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, digest = bytes.fromhex(parts[4]), bytes.fromhex(parts[5])
    except ValueError:
        raise PasswordHashError("the password hash has a non-numeric parameter or non-hex "
                                "salt/hash") from None
    if n < 2 or n & (n - 1) or n > 2 ** 20 or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise PasswordHashError(f"the password hash has unusable scrypt parameters "
                                f"N={n} r={r} p={p}")
    if len(salt) < 8 or len(digest) < 16:
        raise PasswordHashError("the password hash has a too short salt or hash")
    return n, r, p, salt, digest
