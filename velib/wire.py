"""A small, fast D-Bus marshaller for the messages an exported service sends.

dbus-next marshals every message with a generic pure-Python Marshaller and builds each header
from Variant objects. A Venus service sends the same few shapes over and over (GetValue replies,
PropertiesChanged, ItemsChanged, GetItems), so velib encodes them directly with `struct`, caches
the encoded pieces of each path until its value changes, and hands the bytes to dbus-next's
writer as a `RawMessage` (ordering and the connection stay dbus-next's).

D-Bus alignment is relative to the start of the message. A body starts 8-aligned and so does every
dict entry, so a body or a dict entry encoded on its own (from offset 0) can be reused wherever such
a thing starts. Little-endian throughout.
"""
from __future__ import annotations

import struct
from typing import Any, Iterable

_u32 = struct.Struct("<I").pack
_i32 = struct.Struct("<i").pack
_i64 = struct.Struct("<q").pack
_u64 = struct.Struct("<Q").pack
_f64 = struct.Struct("<d").pack
_pack_u32_into = struct.Struct("<I").pack_into

INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1

METHOD_RETURN, ERROR, SIGNAL = 2, 3, 4
FLAG_NO_REPLY_EXPECTED = 0x1

_PADDING = (b"", b"\x00", b"\x00" * 2, b"\x00" * 3, b"\x00" * 4, b"\x00" * 5, b"\x00" * 6,
            b"\x00" * 7)


def _pad(buf: bytearray, n: int) -> None:
    r = len(buf) % n
    if r:
        buf += _PADDING[n - r]


def _put_string(buf: bytearray, text: str) -> None:
    data = text.encode("utf-8")
    _pad(buf, 4)
    buf += _u32(len(data))
    buf += data
    buf += b"\x00"


def _put_signature(buf: bytearray, signature: str) -> None:
    buf.append(len(signature))
    buf += signature.encode("ascii")
    buf += b"\x00"


def signature_of(value: Any) -> str:
    """Victron's type mapping: bool b, float d, int i (x past int32), str s, dict a{sv},
    list array (empty: au), None ai (invalid)."""
    t = type(value)
    if t is float:
        return "d"
    if t is int:
        if INT32_MIN <= value <= INT32_MAX:
            return "i"
        if INT64_MIN <= value <= INT64_MAX:
            return "x"
        return "t" if 0 <= value < 2 ** 64 else "d"
    if t is str:
        return "s"
    if t is bool:
        return "b"
    if value is None:
        return "ai"
    if isinstance(value, dict):
        return "a{sv}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "au"
        sigs = {signature_of(v) for v in value}
        if len(sigs) == 1:
            (sig,) = sigs
            if sig in ("i", "x", "t", "d", "b", "s"):
                return "a" + sig
        return "av"
    if isinstance(value, bool):
        return "b"
    if isinstance(value, int):
        return signature_of(int(value))
    if isinstance(value, float):
        return "d"
    if isinstance(value, str):
        return "s"
    raise TypeError(f"no D-Bus mapping for {type(value).__name__}")


def _put_value(buf: bytearray, sig: str, value: Any) -> None:
    if sig == "d":
        _pad(buf, 8)
        buf += _f64(value)
    elif sig == "i":
        _pad(buf, 4)
        buf += _i32(value)
    elif sig == "s" or sig == "o":
        _put_string(buf, value)
    elif sig == "b":
        _pad(buf, 4)
        buf += _u32(1 if value else 0)
    elif sig == "u":
        _pad(buf, 4)
        buf += _u32(value)
    elif sig == "x":
        _pad(buf, 8)
        buf += _i64(value)
    elif sig == "t":
        _pad(buf, 8)
        buf += _u64(value)
    elif sig == "g":
        _put_signature(buf, value)
    elif sig == "v":
        _put_variant(buf, value)
    elif sig == "a{sv}":
        _put_array(buf, 8, value.items(), _put_sv_entry)
    elif sig == "av":
        _put_array(buf, 1, value, _put_variant)
    elif sig[0] == "a" and len(sig) == 2:
        inner = sig[1]
        align = 8 if inner in "dxt" else 4
        _put_array(buf, align, value, lambda b, v: _put_value(b, inner, v))
    else:
        raise TypeError(f"unsupported signature {sig}")


def _put_array(buf: bytearray, element_align: int, elements: Iterable, put) -> None:
    _pad(buf, 4)
    length_at = len(buf)
    buf += b"\x00\x00\x00\x00"
    _pad(buf, element_align)
    start = len(buf)
    for element in elements:
        put(buf, element)
    _pack_u32_into(buf, length_at, len(buf) - start)


def _put_sv_entry(buf: bytearray, entry) -> None:
    key, value = entry
    _pad(buf, 8)
    _put_string(buf, str(key))
    _put_variant(buf, value)


def _put_variant(buf: bytearray, value: Any) -> None:
    if value is None:
        _put_signature(buf, "ai")
        _pad(buf, 4)
        buf += b"\x00\x00\x00\x00"  # invalid: ai []
        return
    sig = signature_of(value)
    _put_signature(buf, sig)
    _put_value(buf, sig, value)


# ---- bodies and the pieces a service caches per path --------------------------------------

def variant(value: Any) -> bytes:
    """Body of a 'v' reply (GetValue, GetMin, ...): Victron's mapping, None -> ai []."""
    buf = bytearray()
    _put_variant(buf, value)
    return bytes(buf)


def string(text: str) -> bytes:
    """Body of an 's' reply."""
    buf = bytearray()
    _put_string(buf, text)
    return bytes(buf)


def int32(value: int) -> bytes:
    return _i32(value)


def value_text_entries(value: Any, text: str) -> bytes:
    """The elements of a{sv} {"Value": value, "Text": text}, starting 8-aligned."""
    buf = bytearray(b"\x05\x00\x00\x00Value\x00")
    _put_variant(buf, value)
    _pad(buf, 8)
    buf += b"\x04\x00\x00\x00Text\x00\x01s\x00"
    _put_string(buf, text)
    return bytes(buf)


def value_text_body(entries: bytes) -> bytes:
    """Body of PropertiesChanged (a{sv}) from `value_text_entries`."""
    return _u32(len(entries)) + b"\x00\x00\x00\x00" + entries


def items_entry(path: str, entries: bytes) -> bytes:
    """One {path: {"Value", "Text"}} entry of GetItems/ItemsChanged, starting 8-aligned."""
    buf = bytearray()
    _put_string(buf, path)
    _pad(buf, 4)
    buf += _u32(len(entries))
    _pad(buf, 8)
    buf += entries
    return bytes(buf)


def items_body(item_entries: Iterable[bytes]) -> bytes:
    """Body of GetItems / ItemsChanged (a{sa{sv}}) from `items_entry` pieces."""
    buf = bytearray(8)
    for entry in item_entries:
        _pad(buf, 8)
        buf += entry
    _pack_u32_into(buf, 0, len(buf) - 8)
    return bytes(buf)


def dict_variant(pairs: Iterable[tuple[str, Any]], value_signature: str) -> bytes:
    """Body of a 'v' reply holding a{sv} (values wrapped) or a{ss} (texts)."""
    buf = bytearray()
    _put_signature(buf, "a{s%s}" % value_signature)
    put = _put_variant if value_signature == "v" else (lambda b, s: _put_string(b, s))

    def entry(b: bytearray, pair) -> None:
        _pad(b, 8)
        _put_string(b, pair[0])
        put(b, pair[1])

    _put_array(buf, 8, pairs, entry)
    return bytes(buf)


def encode(signature: str, values: list) -> bytes:
    """A body for any signature made of the types above (for the rarer replies)."""
    buf = bytearray()
    for sig, value in zip(_split_signature(signature), values):
        _put_value(buf, sig, value)
    return bytes(buf)


def _split_signature(signature: str) -> list[str]:
    out, i = [], 0
    while i < len(signature):
        j = _complete_type_end(signature, i)
        out.append(signature[i:j])
        i = j
    return out


def _complete_type_end(sig: str, i: int) -> int:
    c = sig[i]
    if c == "a":
        return _complete_type_end(sig, i + 1)
    if c in "({":
        close = ")" if c == "(" else "}"
        depth, j = 0, i
        while True:
            if sig[j] == c:
                depth += 1
            elif sig[j] == close:
                depth -= 1
                if depth == 0:
                    return j + 1
            j += 1
    return i + 1


# ---- messages ------------------------------------------------------------------------------

def _header_fields(fields: list[tuple[int, str, Any]]) -> bytes:
    """The a(yv) header-field array (with its length) + padding, as it stands at offset 12."""
    buf = bytearray(16)  # 12 bytes fixed header (filled later) + 4 length
    for code, sig, value in fields:
        _pad(buf, 8)
        buf.append(code)
        _put_signature(buf, sig)
        _put_value(buf, sig, value)
    _pack_u32_into(buf, 12, len(buf) - 16)
    _pad(buf, 8)
    return bytes(buf[12:])


class RawMessage:
    """Pre-encoded message for dbus-next's writer (it calls `_marshall()` after setting the
    serial)."""

    __slots__ = ("serial", "unix_fds", "_kind", "_flags", "_fields", "_body")

    def __init__(self, kind: int, fields: bytes, body: bytes, flags: int = 0):
        self.serial = 0
        self.unix_fds: list = []
        self._kind = kind
        self._flags = flags
        self._fields = fields
        self._body = body

    def _marshall(self, negotiate_unix_fd: bool = False) -> bytes:
        return (b"l" + bytes((self._kind, self._flags, 1)) + _u32(len(self._body))
                + _u32(self.serial) + self._fields + self._body)


_signal_fields: dict[tuple[str, str, str, str], bytes] = {}


def signal(path: str, interface: str, member: str, signature: str, body: bytes) -> RawMessage:
    key = (path, interface, member, signature)
    fields = _signal_fields.get(key)
    if fields is None:
        if len(_signal_fields) > 10000:
            _signal_fields.clear()
        fields = _signal_fields[key] = _header_fields(
            [(1, "o", path), (2, "s", interface), (3, "s", member), (8, "g", signature)])
    return RawMessage(SIGNAL, fields, body, FLAG_NO_REPLY_EXPECTED)


_return_signatures: dict[str, bytes] = {}


def method_return(call, signature: str, body: bytes) -> RawMessage:
    # Fields: REPLY_SERIAL (u), DESTINATION (s, the caller), SIGNATURE (g); built directly.
    buf = bytearray(b"\x00\x00\x00\x00\x05\x01u\x00")
    buf += _u32(call.serial)
    sender = call.sender
    if sender:
        data = sender.encode()
        buf += b"\x06\x01s\x00"
        buf += _u32(len(data))
        buf += data
        buf += b"\x00"
    if signature:
        r = (len(buf) - 4) & 7   # fields start at message offset 16 (8-aligned)
        if r:
            buf += _PADDING[8 - r]
        encoded = _return_signatures.get(signature)
        if encoded is None:
            encoded = _return_signatures[signature] = (
                b"\x08\x01g\x00" + bytes((len(signature),)) + signature.encode() + b"\x00")
        buf += encoded
    _pack_u32_into(buf, 0, len(buf) - 4)
    r = (len(buf) + 12) & 7
    if r:
        buf += _PADDING[8 - r]
    return RawMessage(METHOD_RETURN, bytes(buf), body, FLAG_NO_REPLY_EXPECTED)


def error(call, name: str, text: str) -> RawMessage:
    fields = [(4, "s", name), (5, "u", call.serial)]
    if call.sender:
        fields.append((6, "s", call.sender))
    fields.append((8, "g", "s"))
    return RawMessage(ERROR, _header_fields(fields), string(text), FLAG_NO_REPLY_EXPECTED)
