"""What a config file should contain after a save: the caller's data laid onto the file's own.

A save (web UI, set_password) hands over a whole config, usually with every key filled in by
its default. Writing that as it is would put every default into the user's file and undo the
way the file is written. `merge_onto` instead starts from what the file says now and changes
only what the new data means differently:

- a key whose meaning (value after defaults) is unchanged keeps the file's own value, even if
  written differently (`25.0` for 25, an empty `site:` for a section of defaults);
- a changed key gets the new value; a changed section is merged key by key, and a changed
  list item by item (by position; items beyond the old length are added as given, missing
  ones dropped);
- a key the file leaves out is added only when the new value differs from its default, and
  then with only the parts that differ;
- a key of the file that the new data leaves out is dropped, so it follows the default.

Pure data: the caller passes both sides with their defaults applied (phaeton.config).
"""
from __future__ import annotations

from typing import Any

_MISSING = object()


def merge_onto(old: Any, new: Any, old_effective: Any, new_effective: Any) -> Any:
    """The value the file should hold: `new` laid onto the file's `old` (see the module)."""
    if same_meaning(old_effective, new_effective):
        return old
    if isinstance(old, dict) and isinstance(new, dict):
        merged = {}
        for key, value in old.items():
            if key in new:
                merged[key] = merge_onto(value, new[key], _get(old_effective, key),
                                         _get(new_effective, key))
        for key, value in new.items():
            if key in old:
                continue
            default = _get(old_effective, key)  # what the key means while the file lacks it
            if not same_meaning(default, _get(new_effective, key)):
                merged[key] = only_changes(value, _get(new_effective, key), default)
        return merged
    if isinstance(old, list) and isinstance(new, list) and isinstance(old_effective, list) \
            and isinstance(new_effective, list) and len(old_effective) == len(old) \
            and len(new_effective) == len(new):
        kept = [merge_onto(*parts) for parts in zip(old, new, old_effective, new_effective)]
        return kept + new[len(old):]
    if isinstance(new, dict):  # the file had no section here (null) or something else
        return only_changes(new, new_effective,
                            old_effective if isinstance(old_effective, dict) else {})
    return new


def only_changes(new: Any, new_effective: Any, base: Any) -> Any:
    """`new` without the keys whose meaning equals `base` (a section's defaults)."""
    if not (isinstance(new, dict) and isinstance(base, dict)):
        return new
    return {key: only_changes(value, _get(new_effective, key), _get(base, key))
            for key, value in new.items()
            if not same_meaning(_get(new_effective, key), _get(base, key))}


def same_meaning(a: Any, b: Any) -> bool:
    """Equal as config values: 25 and 25.0 are the same, true and 1 are not."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_meaning(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_meaning(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def _get(value: Any, key: str) -> Any:
    return value.get(key, _MISSING) if isinstance(value, dict) else _MISSING
