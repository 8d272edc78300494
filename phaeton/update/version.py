"""Release version numbers: parse and order them.

A small subset of PEP 440, the versions phaeton's releases use:

    1.2.3        release segments, any number of them ("0.10" and "0.10.0" are equal)
    1.2.3a1      alpha, b1 beta, rc1 release candidate: pre-releases, ordered a < b < rc and
                 all before the final release 1.2.3
    v1.2.3       a tag's leading "v" is not part of the version

So 0.10.0 > 0.9.2 (numbers, not text) and 0.3.0b1 < 0.3.0rc1 < 0.3.0. Anything else (local
versions, dev or post releases, dates) is refused with a clear message.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import total_ordering

_PATTERN = re.compile(r"^[vV]?(?P<release>\d+(?:\.\d+)*)(?:(?P<kind>a|b|rc)(?P<number>\d+))?$")
# a pre-release's rank; the final release ranks above every pre-release of the same numbers
_PRE_RANK = {"a": 0, "b": 1, "rc": 2}
_FINAL_RANK = 3


@total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    """A parsed version. `text` is how it is written without a tag's "v" ("0.3.0b1")."""

    text: str
    release: tuple[int, ...]
    pre: tuple[str, int] | None = None
    _key: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        numbers = list(self.release)
        while len(numbers) > 1 and numbers[-1] == 0:   # 1.0 == 1.0.0
            numbers.pop()
        rank = (_FINAL_RANK, 0) if self.pre is None else (_PRE_RANK[self.pre[0]], self.pre[1])
        object.__setattr__(self, "_key", (tuple(numbers), rank))

    @property
    def is_prerelease(self) -> bool:
        return self.pre is not None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key == other._key

    def __lt__(self, other: "Version") -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key < other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __str__(self) -> str:
        return self.text


def parse_version(text: str) -> Version:
    """`text` ("0.2.0", "v0.2.0", "0.3.0b1") as a Version; ValueError saying why not."""
    if not isinstance(text, str):
        raise ValueError(f"a version must be text, got {type(text).__name__}")
    match = _PATTERN.match(text.strip())
    if match is None:
        raise ValueError(f"{text[:40]!r} is not a version like 1.2.3 or 1.2.3b1")
    release = tuple(int(part) for part in match["release"].split("."))
    pre = (match["kind"], int(match["number"])) if match["kind"] else None
    return Version(text.strip().lstrip("vV"), release, pre)
