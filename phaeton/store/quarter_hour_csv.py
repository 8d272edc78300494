"""A CSV in the data directory with one line per quarter hour, as the histories keep them.

One line is appended per quarter hour (small writes on the GX's flash); once a day's worth more
than `keep_rows` has gathered, the file is rewritten atomically with the newest `keep_rows`. A
file that cannot be written is logged once (and again when it can be written again); the rows
live on in memory until the next restart, and the service runs on.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from phaeton.store.state_file import write_file_atomically

log = logging.getLogger(__name__)

SLOTS_PER_DAY = 96


class QuarterHourCsv:
    def __init__(self, path: str | os.PathLike, header: str, keep_rows: int, what: str,
                 line: Callable[[Any], str]):
        self.path = Path(path)
        self.header = header
        self.keep_rows = int(keep_rows)
        self.what = what
        self.line = line
        self.rows: list[Any] = []
        self._write_error: str | None = None

    def extend(self, new: Iterable[Any]) -> None:
        new = list(new)
        if not new:
            return
        self.rows.extend(new)
        if len(self.rows) > self.keep_rows + SLOTS_PER_DAY:
            self.rows = self.rows[-self.keep_rows:]
            self._write(self._rewrite)
        else:
            self._write(lambda: self._append(new))

    def _lines(self, rows) -> str:
        return "".join(self.line(row) for row in rows)

    def _append(self, rows) -> None:
        new_file = not self.path.exists() or self.path.stat().st_size == 0
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write((self.header if new_file else "") + self._lines(rows))

    def _rewrite(self) -> None:
        write_file_atomically(self.path, (self.header + self._lines(self.rows)).encode("utf-8"))

    def _write(self, action) -> None:
        try:
            action()
        except OSError as exc:
            if self._write_error is None:
                log.warning("%s %s not written (kept in memory): %s", self.what, self.path, exc)
            self._write_error = str(exc)
        else:
            if self._write_error is not None:
                log.info("%s %s written again", self.what, self.path)
            self._write_error = None
