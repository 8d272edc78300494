"""Register word encoding/decoding against values packed independently with struct."""
import math
import struct

import pytest
from hypothesis import given, strategies as st

from phaeton.chargers import modbus_words as mw


def words_of(fmt: str, value) -> list[int]:
    data = struct.pack(fmt, value)
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


def test_float32_is_big_endian_high_word_first():
    # 230.5 = 0x43668000: high word 0x4366 comes first
    assert mw.encode_float32(230.5) == [0x4366, 0x8000]
    assert mw.decode_float32([0x4366, 0x8000]) == 230.5
    assert mw.decode_float32([0x8000, 0x4366]) != 230.5


def test_float64_energy_words():
    assert mw.decode_float64(words_of(">d", 123456.789)) == 123456.789
    assert mw.encode_float64(1.5) == words_of(">d", 1.5)


def test_integers():
    assert mw.decode_uint32([0x0001, 0x0002]) == 0x00010002
    assert mw.decode_uint64([0, 0, 1, 2]) == 0x00010002
    assert mw.decode_int16([0xFFFE]) == -2
    assert mw.encode_int16(-2) == [0xFFFE]
    assert mw.decode_uint16([3]) == 3


def test_nan_words_decode_to_none():
    assert mw.decode_float32([0xFFFF, 0xFFFF]) is None
    assert mw.decode_float64([0xFFFF] * 4) is None
    assert mw.decode_float32(words_of(">f", math.nan)) is None
    assert mw.decode_float32(words_of(">f", math.inf)) is None
    assert mw.decode_uint16([0xFFFF]) is None
    assert mw.decode_uint32([0xFFFF, 0xFFFF]) is None
    assert mw.decode_uint64([0xFFFF] * 4) is None
    assert mw.decode_string([0xFFFF] * 5) is None


def test_string_two_chars_per_register_high_byte_first_nul_padded():
    words = mw.encode_string("C2", 5)
    assert words == [0x4332, 0, 0, 0, 0]
    assert mw.decode_string(words) == "C2"
    assert mw.decode_string(mw.encode_string("ALF_1000", 17)) == "ALF_1000"
    # odd length: the last character sits in a high byte
    assert mw.encode_string("A", 1) == [0x4100]
    assert mw.decode_string([0x4100]) == "A"


def test_string_with_non_ascii_bytes_is_none():
    assert mw.decode_string([0xC3A9, 0x0000]) is None


@pytest.mark.parametrize("call, message", [
    (lambda: mw.decode_float32([1]), "FLOAT32 needs exactly 2 registers, got 1"),
    (lambda: mw.decode_float64([1, 2]), "FLOAT64 needs exactly 4 registers"),
    (lambda: mw.decode_uint16([0x10000]), "not a 16-bit unsigned int"),
    (lambda: mw.encode_string("too long", 2), "longer than 4 characters"),
    (lambda: mw.encode_string("é", 2), "must be ASCII"),
    (lambda: mw.encode_uint16(-1), "outside 0..65535"),
    (lambda: mw.encode_float32("6"), "needs a number"),
    (lambda: mw.encode_float32(1e300), "cannot hold"),
    (lambda: mw.decode_string([]), "at least 1 register"),
])
def test_bad_input_gives_specific_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_register_block_addresses_by_register_number():
    block = mw.RegisterBlock(1200, [1] + mw.encode_string("C2", 5) + mw.encode_float32(16.0))
    assert block.uint16(1200) == 1
    assert block.string(1201, 5) == "C2"
    assert block.float32(1206) == 16.0
    with pytest.raises(ValueError, match="outside the block 1200..1207"):
        block.float32(1207)


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_float32_round_trip(value):
    assert mw.decode_float32(mw.encode_float32(value)) == value
    assert mw.encode_float32(value) == words_of(">f", value)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float64_round_trip(value):
    assert mw.decode_float64(mw.encode_float64(value)) == value


@given(st.integers(0, 0xFFFFFFFE))
def test_uint32_round_trip(value):
    assert mw.decode_uint32(mw.encode_uint32(value)) == value


@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=10))
def test_string_round_trip(text):
    assert mw.decode_string(mw.encode_string(text, 5)) == text
