"""Encode and decode Modbus register words the way Alfen NG9xx chargers lay them out.

Pure functions, no I/O. Registers are 16-bit unsigned ints. Multi-register values are
big-endian with the high word first: FLOAT32 and UINT32 take 2 registers, FLOAT64 and UINT64
take 4. A STRING holds 2 ASCII characters per register, high byte first, NUL padded.

"Not available" is signalled by NaN: a float that decodes to NaN (or infinity) and integer
registers that are all 0xFFFF decode to None, so NaN never leaves this module.
"""
from __future__ import annotations

import math
import struct
from collections.abc import Sequence

NAN_WORD = 0xFFFF


def _check_words(words: Sequence[int], count: int, what: str) -> None:
    if len(words) != count:
        raise ValueError(f"{what} needs exactly {count} registers, got {len(words)}")
    for word in words:
        if isinstance(word, bool) or not isinstance(word, int) or not 0 <= word <= 0xFFFF:
            raise ValueError(f"{what}: register value {word!r} is not a 16-bit unsigned int")


def _to_bytes(words: Sequence[int]) -> bytes:
    return b"".join(struct.pack(">H", word) for word in words)


def _to_words(data: bytes) -> list[int]:
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


def _all_nan(words: Sequence[int]) -> bool:
    return all(word == NAN_WORD for word in words)


# ---- decoding ------------------------------------------------------------------------------

def decode_uint16(words: Sequence[int]) -> int | None:
    _check_words(words, 1, "UINT16")
    return None if words[0] == NAN_WORD else words[0]


def decode_int16(words: Sequence[int]) -> int | None:
    _check_words(words, 1, "INT16")
    if words[0] == NAN_WORD:
        return None
    return struct.unpack(">h", _to_bytes(words))[0]


def decode_uint32(words: Sequence[int]) -> int | None:
    _check_words(words, 2, "UINT32")
    return None if _all_nan(words) else struct.unpack(">I", _to_bytes(words))[0]


def decode_uint64(words: Sequence[int]) -> int | None:
    _check_words(words, 4, "UINT64")
    return None if _all_nan(words) else struct.unpack(">Q", _to_bytes(words))[0]


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def decode_float32(words: Sequence[int]) -> float | None:
    _check_words(words, 2, "FLOAT32")
    return _finite_or_none(struct.unpack(">f", _to_bytes(words))[0])


def decode_float64(words: Sequence[int]) -> float | None:
    _check_words(words, 4, "FLOAT64")
    return _finite_or_none(struct.unpack(">d", _to_bytes(words))[0])


def decode_string(words: Sequence[int]) -> str | None:
    """ASCII text, 2 characters per register, high byte first; NUL padding and surrounding
    blanks removed. None when every register is 0xFFFF (not available) or the bytes are not
    ASCII."""
    if not words:
        raise ValueError("STRING needs at least 1 register, got 0")
    _check_words(words, len(words), "STRING")
    if _all_nan(words):
        return None
    raw = _to_bytes(words).split(b"\x00", 1)[0]
    try:
        return raw.decode("ascii").strip()
    except UnicodeDecodeError:
        return None


# ---- encoding ------------------------------------------------------------------------------

def _check_int(value: int, low: int, high: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} needs an int, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{what} value {value} is outside {low}..{high}")


def encode_uint16(value: int) -> list[int]:
    _check_int(value, 0, 0xFFFF, "UINT16")
    return [value]


def encode_int16(value: int) -> list[int]:
    _check_int(value, -0x8000, 0x7FFF, "INT16")
    return _to_words(struct.pack(">h", value))


def encode_uint32(value: int) -> list[int]:
    _check_int(value, 0, 0xFFFFFFFF, "UINT32")
    return _to_words(struct.pack(">I", value))


def encode_uint64(value: int) -> list[int]:
    _check_int(value, 0, 0xFFFFFFFFFFFFFFFF, "UINT64")
    return _to_words(struct.pack(">Q", value))


def _check_float(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} needs a number, got {value!r}")
    return float(value)


def encode_float32(value: float) -> list[int]:
    """NaN is allowed (it is how a charger says 'not available')."""
    value = _check_float(value, "FLOAT32")
    try:
        return _to_words(struct.pack(">f", value))
    except OverflowError as exc:
        raise ValueError(f"FLOAT32 cannot hold {value!r}") from exc


def encode_float64(value: float) -> list[int]:
    return _to_words(struct.pack(">d", _check_float(value, "FLOAT64")))


def encode_string(text: str, registers: int) -> list[int]:
    """`text` as ASCII in exactly `registers` registers, NUL padded."""
    if not isinstance(text, str):
        raise ValueError(f"STRING needs a str, got {text!r}")
    if registers < 1:
        raise ValueError(f"STRING needs at least 1 register, got {registers}")
    try:
        data = text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise ValueError(f"STRING must be ASCII, got {text!r}") from exc
    if len(data) > 2 * registers:
        raise ValueError(f"STRING {text!r} is longer than {2 * registers} characters "
                         f"({registers} registers)")
    return _to_words(data.ljust(2 * registers, b"\x00"))


def nan_words(count: int) -> list[int]:
    """`count` registers reading 'not available' (0xFFFF each; as a float this is NaN)."""
    return [NAN_WORD] * count


class RegisterBlock:
    """Registers read in one request, addressed by their Modbus register number."""

    def __init__(self, start: int, words: Sequence[int]):
        self.start = start
        self.words = list(words)

    @property
    def end(self) -> int:
        """One past the last register."""
        return self.start + len(self.words)

    def get(self, address: int, count: int = 1) -> list[int]:
        if address < self.start or address + count > self.end:
            raise ValueError(f"registers {address}..{address + count - 1} are outside the block "
                             f"{self.start}..{self.end - 1}")
        offset = address - self.start
        return self.words[offset:offset + count]

    def float32(self, address: int) -> float | None:
        return decode_float32(self.get(address, 2))

    def float64(self, address: int) -> float | None:
        return decode_float64(self.get(address, 4))

    def uint16(self, address: int) -> int | None:
        return decode_uint16(self.get(address, 1))

    def int16(self, address: int) -> int | None:
        return decode_int16(self.get(address, 1))

    def uint32(self, address: int) -> int | None:
        return decode_uint32(self.get(address, 2))

    def uint64(self, address: int) -> int | None:
        return decode_uint64(self.get(address, 4))

    def string(self, address: int, count: int) -> str | None:
        return decode_string(self.get(address, count))
