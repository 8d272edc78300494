"""Ed25519 signature verification in pure Python, from the math of RFC 8032 (section 5.1).

Only verification: a GX checks that a release was signed by the maintainer's key; it never
signs. No third-party package (a GX has no `cryptography`), no constant-time concerns (every
input here is public: the key, the message, the signature).

The curve is the twisted Edwards curve  -x^2 + y^2 = 1 + d x^2 y^2  over the field of integers
modulo p = 2^255 - 19, with d = -121665/121666. Points are kept in extended homogeneous
coordinates (X, Y, Z, T) with x = X/Z, y = Y/Z, x*y = T/Z (RFC 8032, 5.1.4), which makes
addition free of field inversions.

A signature (R, S) on message M by public key A is valid when (RFC 8032, 5.1.7):
    S < L,  R and A decode to curve points,  k = SHA-512(R || A || M) mod L,
    [S]B = R + [k]A
(the cofactorless equation; RFC 8032 allows it, OpenSSL checks the same one).
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable

# the field
P = 2**255 - 19
# the curve constant d = -121665/121666 (mod p); division = multiplying by the inverse, and the
# inverse of a is a^(p-2) (Fermat)
D = -121665 * pow(121666, P - 2, P) % P
# a square root of -1 (mod p), needed to take square roots (RFC 8032, 5.1.3)
SQRT_M1 = pow(2, (P - 1) // 4, P)
# the order of the base point (a prime)
L = 2**252 + 27742317777372353535851937790883648493

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64

Point = tuple[int, int, int, int]
NEUTRAL: Point = (0, 1, 1, 0)          # x = 0, y = 1


def _inverse(a: int) -> int:
    return pow(a, P - 2, P)


def _recover_x(y: int, sign: int) -> int | None:
    """The x of the curve point with this y whose lowest bit is `sign` (None: there is none).

    From the curve equation, x^2 = (y^2 - 1) / (d y^2 + 1). p = 5 (mod 8), so a square root of
    u is u^((p+3)/8) or that times sqrt(-1) (RFC 8032, 5.1.3, step 3)."""
    if y >= P:
        return None                    # not a canonical encoding
    x2 = (y * y - 1) * _inverse(D * y * y + 1) % P
    if x2 == 0:
        return None if sign else 0     # x = 0 has no negative
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None                    # x2 is not a square: y is not on the curve
    if x & 1 != sign:
        x = P - x
    return x


def _point(x: int, y: int) -> Point:
    return (x, y, 1, x * y % P)


# the base point B: y = 4/5, x positive (even)
_B_Y = 4 * _inverse(5) % P
BASE: Point = _point(_recover_x(_B_Y, 0), _B_Y)


def decode_point(data: bytes) -> Point | None:
    """A 32-byte encoding as a point (RFC 8032, 5.1.3): y little-endian in the low 255 bits,
    the sign (lowest bit) of x in the top bit. None when it is no point of the curve."""
    if len(data) != 32:
        return None
    number = int.from_bytes(data, "little")
    sign, y = number >> 255, number & ((1 << 255) - 1)
    x = _recover_x(y, sign)
    return None if x is None else _point(x, y)


def add(p: Point, q: Point) -> Point:
    """p + q on the curve (RFC 8032, 5.1.4; the formula also doubles, p = q)."""
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def multiply(scalar: int, point: Point) -> Point:
    """[scalar]point by double-and-add, lowest bit first."""
    result = NEUTRAL
    while scalar > 0:
        if scalar & 1:
            result = add(result, point)
        point = add(point, point)
        scalar >>= 1
    return result


def same_point(p: Point, q: Point) -> bool:
    """Equal as affine points: X1/Z1 = X2/Z2 and Y1/Z1 = Y2/Z2, compared without division."""
    return (p[0] * q[2] - q[0] * p[2]) % P == 0 and (p[1] * q[2] - q[1] * p[2]) % P == 0


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when `signature` (64 bytes) is a valid Ed25519 signature of `message` by
    `public_key` (32 bytes)."""
    return verify_chunks(public_key, [message], signature)


def verify_chunks(public_key: bytes, chunks: Iterable[bytes], signature: bytes) -> bool:
    """`verify` for a message given in pieces (a release file read in blocks): Ed25519 hashes
    the message once, after R and A, so it never has to be in memory whole."""
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    a_point = decode_point(public_key)
    r_bytes, s_bytes = signature[:32], signature[32:]
    r_point = decode_point(r_bytes)
    s = int.from_bytes(s_bytes, "little")
    if a_point is None or r_point is None or s >= L:
        return False                   # not canonical: refuse (RFC 8032, 5.1.7, step 1)
    digest = hashlib.sha512()
    digest.update(r_bytes)
    digest.update(public_key)
    for chunk in chunks:
        digest.update(chunk)
    k = int.from_bytes(digest.digest(), "little") % L
    return same_point(multiply(s, BASE), add(r_point, multiply(k, a_point)))
