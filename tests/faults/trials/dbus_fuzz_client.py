"""A bounded D-Bus SetValue fuzzer, run as its own process with Debian's python3-dbus
(/usr/bin/python3), the library Victron's own tools and many third-party clients use.

    /usr/bin/python3 dbus_fuzz_client.py SERVICE SEED COUNT COMPARED_JSON WRITABLE_JSON

It sends COUNT SetValue calls with random paths (writable ones mostly, read-only ones, nodes,
missing ones) and random D-Bus values (text with full-width digits, control characters and
megabytes of it; every integer type at its edges; doubles with NaN and infinities; booleans;
arrays, dicts, structs, object paths; variants nested up to 4 deep; bare values; no argument or
two), and after every call one GetItems. It compares the COMPARED paths (those only a write may
change) before and after, and prints one JSON line per write that changed something, got no
answer, or was accepted on a number path as text that is not an ASCII number ("lenient"),
then one summary line:

    {"i": 17, "path": "/Mode", "value": "Int32(2) v1", "rc": 0, "changed": {"/Mode": [before, after]}}
    {"summary": {"tried": ..., "accepted": ..., "codes": {...}, "errors": {...}, "no_answer": ...,
                 "refused_changed": ..., "lenient_accepted": ..., "lost": false}}

A value is [D-Bus type, value]; "rc" is SetValue's return code, or "error" the D-Bus error name.
"""
import json
import math
import random
import re
import sys

import dbus

BUSITEM = "com.victronenergy.BusItem"
TIMEOUT_S = 5.0
NO_ANSWER = ("org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.Timeout")
GONE = ("org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner",
        "org.freedesktop.DBus.Error.Disconnected")

TEXTS = ["16", "6", "0", "1", "2", "3", " 7 ", "+8", "1e1", "10.5", "16.000001", "-1", "5.99",
         "\uff11\uff16", "\u0661\u0666", "\u09ec", "\u00b2", "nan", "NaN", "inf", "-Infinity",
         "0x10", "0X3", "1_0", "", " ", "true", "false", "on", "off", "yes", "None", "null",
         "[]", "{}", "16A", "6,5", "\t3\n", "\x01", "\x1b[31mred", "Garage\u2028", "\u202egnp",
         "\x7f", "\u0085", "\ufeff16", "\u00e9" * 64, "x" * 64, "x" * 65, "\U0001f600" * 16,
         "\U0001f600" * 65, "\u540d\u524d", "Carport", "Garage"]
INTEGERS = [0, 1, 2, 3, 4, 6, 7, 16, 17, 32, 255, -1, -2, 2 ** 15 - 1, -2 ** 15, 2 ** 16 - 1,
            2 ** 31 - 1, -2 ** 31, 2 ** 32 - 1, 2 ** 53 + 1, 2 ** 63 - 1, -2 ** 63, 2 ** 64 - 1]
INT_TYPES = {"y": (dbus.Byte, 0, 255), "n": (dbus.Int16, -2 ** 15, 2 ** 15 - 1),
             "q": (dbus.UInt16, 0, 2 ** 16 - 1), "i": (dbus.Int32, -2 ** 31, 2 ** 31 - 1),
             "u": (dbus.UInt32, 0, 2 ** 32 - 1), "x": (dbus.Int64, -2 ** 63, 2 ** 63 - 1),
             "t": (dbus.UInt64, 0, 2 ** 64 - 1)}
# Text a strict parser takes as a number: ASCII digits (or hex), ASCII blanks around.
ASCII_NUMBER = re.compile(r"[ \t\r\n]*(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
                          r"|-?0[xX][0-9a-fA-F]+)[ \t\r\n]*")
DOUBLES = [math.nan, math.inf, -math.inf, -0.0, 0.0, 5.9999, 6.0, 10.5, 16.0, 16.0000001, 1e308,
           5e-324, -1e-300, 0.5, 1.0, 1.5, 2.0, 3.0]


def plain(value):
    """[D-Bus type, JSON value] of a received value (NaN as text, so JSON can hold it)."""
    if isinstance(value, dbus.Array):
        return ["a" + (value.signature or "?"), [plain(v) for v in value]]
    if isinstance(value, dbus.Dictionary):
        return ["a{}", {str(k): plain(v) for k, v in value.items()}]
    if isinstance(value, dbus.Struct):
        return ["()", [plain(v) for v in value]]
    if isinstance(value, dbus.Boolean):
        return ["b", bool(value)]
    if isinstance(value, dbus.Double):
        return ["d", float(value) if math.isfinite(value) else repr(float(value))]
    if isinstance(value, dbus.String):
        return ["s", str(value)]
    for code, (kind, _, _) in INT_TYPES.items():
        if isinstance(value, kind):
            return [code, int(value)]
    return [type(value).__name__, repr(value)]


class Values:
    """Random D-Bus values: `next()` -> (description, [arguments for SetValue])."""

    def __init__(self, rng):
        self.rng = rng

    def scalar(self, level):
        rng = self.rng
        kind = rng.choice("ssssiiiddbyntqux")
        if kind == "s":
            pick = rng.random()
            if pick < 0.01:
                text = rng.choice(["9" * 100_000, "A" * 1_000_000])
            elif pick < 0.75:
                text = rng.choice(TEXTS)
            else:
                text = "".join(chr(rng.choice([rng.randint(32, 126), rng.randint(1, 0x2FFF)]))
                               for _ in range(rng.randint(0, 80)))
            return f"String(len {len(text)}: {text[:24]!r})", dbus.String(text, variant_level=level)
        if kind == "d":
            number = rng.choice(DOUBLES) if rng.random() < 0.7 else rng.uniform(-100, 100)
            return f"Double({number!r})", dbus.Double(number, variant_level=level)
        if kind == "b":
            flag = rng.random() < 0.5
            return f"Boolean({flag})", dbus.Boolean(flag, variant_level=level)
        constructor, low, high = INT_TYPES["i" if kind == "i" else kind]
        number = rng.choice(INTEGERS) if rng.random() < 0.8 else rng.randint(low, high)
        number = min(max(number, low), high)
        return f"{constructor.__name__}({number})", constructor(number, variant_level=level)

    def container(self, level):
        rng = self.rng
        pick = rng.randrange(9)
        if pick == 0:
            return "Array(ai [])", dbus.Array([], signature="i", variant_level=level)
        if pick == 1:
            items = [rng.choice(INTEGERS[:10]) for _ in range(rng.randint(1, 4))]
            return f"Array(ai {items})", dbus.Array(items, signature="i", variant_level=level)
        if pick == 2:
            return "Array(as ['16'])", dbus.Array(["16"], signature="s", variant_level=level)
        if pick == 3:
            inner = [self.scalar(1)[1] for _ in range(rng.randint(0, 3))]
            return f"Array(av x{len(inner)})", dbus.Array(inner, signature="v", variant_level=level)
        if pick == 4:
            return "Dictionary(a{sv})", dbus.Dictionary({"Value": dbus.Int32(1, variant_level=1)},
                                                        signature="sv", variant_level=level)
        if pick == 5:
            return "Struct((is))", dbus.Struct((dbus.Int32(16), dbus.String("A")),
                                               signature="is", variant_level=level)
        if pick == 6:
            return "Array(ay b'16')", dbus.Array([dbus.Byte(49), dbus.Byte(54)], signature="y",
                                                 variant_level=level)
        if pick == 7:
            return "ObjectPath(/Mode)", dbus.ObjectPath("/Mode", variant_level=level)
        return "Array(aai)", dbus.Array([dbus.Array([1], signature="i")], signature="ai",
                                        variant_level=level)

    def next(self):
        rng = self.rng
        arguments = rng.random()
        level_pick = rng.random()
        level = 0 if level_pick < 0.1 else (rng.randint(2, 4) if level_pick < 0.2 else 1)
        what, value = (self.scalar(level) if rng.random() < 0.8 else self.container(level))
        described = f"{what} v{level}"
        if arguments < 0.02:
            return "no argument", []
        if arguments < 0.04:
            return f"two arguments: {described}", [value, dbus.Int32(1, variant_level=1)]
        return described, [value]


def random_paths(rng, writable, existing):
    """A path to write to: writable ones mostly, then read-only ones, nodes and missing ones."""
    missing = ["/Nope", "/Mode/Extra", "/mode", "/SetCurrent2", "/Settings/Devices",
               "/" + "/".join("X%d" % n for n in range(50)), "/_", "/Ac/L4/Power"]
    nodes = ["/", "/Ac", "/Mgmt", "/Planner", "/Session", "/Ac/L1"]
    pick = rng.random()
    if pick < 0.7:
        return rng.choice(writable)
    if pick < 0.8:
        return rng.choice(existing)
    if pick < 0.85:
        return rng.choice(nodes)
    return rng.choice(missing)


def main(service, seed, count, compared, writable):
    bus = dbus.SystemBus()
    rng = random.Random(seed)
    values = Values(rng)

    def items():
        reply = bus.call_blocking(service, "/", BUSITEM, "GetItems", "", [], timeout=TIMEOUT_S)
        return {str(path): plain(entry["Value"]) for path, entry in reply.items()}

    before = items()
    existing = sorted(p for p in before if p not in writable)
    numeric = [p for p in writable if p != "/CustomName"]
    summary = {"tried": 0, "accepted": 0, "codes": {}, "errors": {}, "no_answer": 0,
               "refused_changed": 0, "lenient_accepted": 0, "lost": False}
    for i in range(count):
        path = random_paths(rng, writable, existing)
        described, arguments = values.next()
        line = {"i": i, "path": path, "value": described}
        summary["tried"] += 1
        try:
            rc = bus.call_blocking(service, path, BUSITEM, "SetValue", None, arguments,
                                   timeout=TIMEOUT_S)
            line["rc"] = int(rc)
            summary["codes"][str(int(rc))] = summary["codes"].get(str(int(rc)), 0) + 1
        except dbus.exceptions.DBusException as exc:
            name = exc.get_dbus_name() or "unknown"
            line["error"] = name
            summary["errors"][name] = summary["errors"].get(name, 0) + 1
            if name in NO_ANSWER:
                summary["no_answer"] += 1
            if name in GONE:
                summary["lost"] = True
                print(json.dumps(line), flush=True)
                break
        except (TypeError, ValueError, OverflowError) as exc:   # not sendable: our side
            summary["errors"]["client: " + type(exc).__name__] = \
                summary["errors"].get("client: " + type(exc).__name__, 0) + 1
            continue
        try:
            after = items()
        except dbus.exceptions.DBusException as exc:
            line["error_after"] = exc.get_dbus_name()
            summary["no_answer"] += 1
            summary["lost"] = exc.get_dbus_name() in GONE
            print(json.dumps(line), flush=True)
            break
        changed = {p: [before.get(p), after.get(p)] for p in compared
                   if before.get(p) != after.get(p)}
        if line.get("rc") == 0:
            summary["accepted"] += 1
            text = arguments[0] if len(arguments) == 1 else None
            if isinstance(text, dbus.String) and path in numeric \
                    and not ASCII_NUMBER.fullmatch(text):
                line["lenient"] = True                    # a number read from odd text
                summary["lenient_accepted"] += 1
        elif changed:
            summary["refused_changed"] += 1
        if changed or line.get("lenient") or "error" in line and line["error"] in NO_ANSWER:
            line["changed"] = changed
            print(json.dumps(line), flush=True)
        before = after
    print(json.dumps({"summary": summary}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4]),
         json.loads(sys.argv[5]))
