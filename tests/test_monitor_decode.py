"""velib's monitor decodes message bodies itself (`velib.monitor._MonitorBus`): exactly what
dbus-next's unmarshaller gives, and dbus-next's own unmarshaller for anything else."""
import io
import math
import random
import struct

from dbus_next import Message, MessageType, Variant
from dbus_next._private.unmarshaller import Unmarshaller

from phaeton.control.readings import SiteReadings
from phaeton.venus.system_reader import GxSystemReader, readings_from_values
from velib.monitor import _MonitorBus
from velib.values import wrap


def fast(data: bytes) -> Message:
    bus = _MonitorBus.__new__(_MonitorBus)
    _e, kind, flags, _v, body_len, serial, fields_len = struct.unpack_from("<4BIII", data, 0)
    header_end = 16 + fields_len
    body_start = header_end + (-header_end & 7)
    return bus._parse(bytearray(data), 0, kind, flags, serial, header_end, body_start,
                      body_start + body_len)


def generic(data: bytes) -> Message:
    unmarshaller = Unmarshaller(io.BytesIO(bytes(data)))
    unmarshaller._unmarshall()
    return unmarshaller.message


def same(a, b) -> bool:
    if isinstance(a, Variant):
        return isinstance(b, Variant) and a.signature == b.signature and same(a.value, b.value)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and (a == b or (a != a and b != b))


def assert_same(msg: Message) -> None:
    data = msg._marshall()
    a, b = fast(data), generic(data)
    for name in ("destination", "path", "interface", "member", "message_type", "flags",
                 "error_name", "reply_serial", "sender", "signature", "serial"):
        assert getattr(a, name) == getattr(b, name), name
    assert same(a.body, b.body), (a.body, b.body)


def random_value(rnd: random.Random, depth: int = 0):
    makers = [lambda: None, lambda: rnd.uniform(-5e3, 5e3), lambda: rnd.randrange(-2**31, 2**31),
              lambda: "tëxt " * rnd.randrange(3), lambda: rnd.random() < 0.5, lambda: 2**40,
              lambda: math.nan, lambda: [rnd.randrange(9) for _ in range(rnd.randrange(4))],
              lambda: [0.5, 1.5], lambda: {"a": random_value(rnd, depth + 1), "b": 7}]
    return makers[rnd.randrange(len(makers) if depth < 2 else len(makers) - 1)]()


def test_items_changed_and_properties_changed_decode_as_dbus_next_does():
    rnd = random.Random(7)
    for _ in range(300):
        items = {f"/Ac/P{i}{'x' * rnd.randrange(4)}": {"Value": wrap(value),
                                                        "Text": Variant("s", str(value))}
                 for i, value in enumerate(random_value(rnd) for _ in range(rnd.randrange(30)))}
        signal = Message.new_signal("/", "com.victronenergy.BusItem", "ItemsChanged",
                                    "a{sa{sv}}", [items])
        signal.sender, signal.serial = ":1.5", 9
        assert_same(signal)
        one = Message.new_signal("/Dc/Battery/Soc", "com.victronenergy.BusItem",
                                 "PropertiesChanged", "a{sv}",
                                 [{"Value": wrap(random_value(rnd)), "Text": Variant("s", "x")}])
        one.serial = 3
        assert_same(one)


def test_other_bodies_and_the_fallback_for_structs():
    reply = Message(message_type=MessageType.METHOD_RETURN, reply_serial=5, destination=":1.2",
                    signature="asusbyqnxtdgov",
                    body=[["a", "bb"], 7, "s", True, 200, 65000, -5, -2**50, 2**63, 0.25,
                          "a{sv}", "/o/p", Variant("ay", b"xy")])
    reply.serial = 4
    assert_same(reply)
    struct_reply = Message(message_type=MessageType.METHOD_RETURN, reply_serial=5,
                           signature="(is)a(ii)", body=[[1, "x"], [[1, 2]]])
    struct_reply.serial = 5
    assert_same(struct_reply)                 # dbus-next's unmarshaller handles it
    error = Message(message_type=MessageType.ERROR, reply_serial=9, error_name="org.x.Err",
                    signature="s", body=["boom"])
    error.serial = 6
    assert_same(error)


def test_an_array_longer_than_its_message_goes_to_the_generic_path():
    signal = Message.new_signal("/", "com.victronenergy.BusItem", "ItemsChanged", "a{sa{sv}}",
                                [{"/A": {"Value": Variant("d", 1.0)}}])
    signal.serial = 2
    data = bytearray(signal._marshall())
    _e, _k, _f, _v, body_len, _s, fields_len = struct.unpack_from("<4BIII", data, 0)
    body_start = 16 + fields_len + (-(16 + fields_len) & 7)
    struct.pack_into("<I", data, body_start, 4096)      # the outer array claims 4 KiB
    try:
        generic(bytes(data))
    except Exception as exc:                              # dbus-next refuses it ...
        expected = type(exc)
    else:
        expected = None
    try:
        fast(bytes(data))
    except Exception as exc:                              # ... and so does the monitor
        assert expected is not None and isinstance(exc, expected)
    else:
        assert expected is None


def test_reader_builds_readings_once_per_update_and_ages_them():
    class Clock:
        t = 100.0

        def monotonic(self):
            return self.t

    clock = Clock()
    reader = GxSystemReader(clock=clock)
    reader._added("com.victronenergy.system")
    reader._changed("com.victronenergy.system", "/Ac/Grid/L1/Power", 500.0)
    reader._changed("com.victronenergy.system", "/Dc/Battery/Soc", 55)
    first = reader.readings()
    assert first.grid_w == (500.0, None, None) and first.battery_soc_pct == 55.0
    assert first.age_s == 0.0
    clock.t += 2.5
    later = reader.readings()
    assert later.age_s == 2.5 and later.grid_w == first.grid_w and first.age_s == 0.0
    reader._changed("com.victronenergy.system", "/Dc/Battery/Soc", 56.0)   # a new update
    assert reader.readings().battery_soc_pct == 56.0 and reader.readings().age_s == 0.0
    reader._changed("com.victronenergy.system", "/Serial", "abc")          # not a reading
    assert reader.readings() == readings_from_values(reader._values, 0.0)
    reader._removed("com.victronenergy.system")
    assert reader.readings() == SiteReadings(age_s=None)


def test_readings_from_values_turns_anything_unusable_into_none():
    r = readings_from_values({"/Ac/Grid/L1/Power": True, "/Ac/Grid/L2/Power": "12",
                              "/Ac/Grid/L3/Power": math.inf, "/Ac/ActiveIn/Source": math.nan,
                              "/Dc/Battery/Soc": 40, "/Control/ActiveSocLimit": [1]}, 1.0)
    assert r.grid_w == (None, None, None) and r.active_input_source is None
    assert r.battery_soc_pct == 40.0 and r.active_soc_limit_pct is None
    assert readings_from_values({"/Ac/ActiveIn/Source": 1.0}, None).active_input_source == 1
