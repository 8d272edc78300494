"""Counting the service's own log records during a trial (phaeton.* and velib.*, not the
simulators'), with the levels and quiet libraries the service runs with in production; and the
errors asyncio logs for a library's callback that failed (they reach the service's log too)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

SERVICE_LOGGERS = ("phaeton", "velib")
NOT_THE_SERVICE = ("phaeton.sim",)
LIBRARY_LOGGERS = ("asyncio",)      # e.g. "Fatal error: protocol.data_received() call failed"


@dataclass(frozen=True)
class Window:
    """Records in one part of a trial."""

    records: tuple[logging.LogRecord, ...]

    @property
    def lines(self) -> int:
        return len(self.service_records)

    @property
    def warnings(self) -> list[str]:
        return [r.getMessage() for r in self.service_records if r.levelno == logging.WARNING]

    @property
    def problems(self) -> list[str]:
        """The service's ERROR and CRITICAL records and any with a traceback, as text."""
        return [_text(r) for r in self.records if not r.name.startswith(LIBRARY_LOGGERS)
                and (r.levelno >= logging.ERROR or r.exc_info)]

    @property
    def library_problems(self) -> list[str]:
        """ERROR records of LIBRARY_LOGGERS (asyncio), as text."""
        return [_text(r) for r in self.records if r.name.startswith(LIBRARY_LOGGERS)
                and r.levelno >= logging.ERROR]

    @property
    def service_records(self) -> tuple[logging.LogRecord, ...]:
        return tuple(r for r in self.records if not r.name.startswith(LIBRARY_LOGGERS))


def _text(record: logging.LogRecord) -> str:
    return (f"{record.levelname} {record.name}: {record.getMessage()}"
            + (f" [{record.exc_info[0].__name__}: {record.exc_info[1]}]"
               if record.exc_info and record.exc_info[0] else ""))


class LogTally(logging.Handler):
    """`with LogTally() as tally:` collects INFO and above from the service's loggers.
    `mark()` returns a position; `since(position)` the records after it."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self._saved: list[tuple[logging.Logger, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(NOT_THE_SERVICE):
            self.records.append(record)

    def mark(self) -> int:
        return len(self.records)

    def since(self, position: int = 0, until: int | None = None) -> Window:
        return Window(tuple(self.records[position:until]))

    def __enter__(self) -> LogTally:
        for name, level in [(n, logging.INFO) for n in SERVICE_LOGGERS] + [
                ("pymodbus", logging.CRITICAL)]:          # as phaeton.app.setup_logging does
            logger = logging.getLogger(name)
            self._saved.append((logger, logger.level))
            logger.setLevel(level)
        for name in SERVICE_LOGGERS + LIBRARY_LOGGERS:
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *_exc) -> None:
        for name in SERVICE_LOGGERS + LIBRARY_LOGGERS:
            logging.getLogger(name).removeHandler(self)
        for logger, level in self._saved:
            logger.setLevel(level)
