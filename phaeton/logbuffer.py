"""The recent log lines, kept in memory for the web UI (bounded)."""
from __future__ import annotations

import collections
import logging

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


class LogBuffer(logging.Handler):
    def __init__(self, capacity: int = 2000):
        super().__init__(logging.DEBUG)
        self._records: collections.deque[dict] = collections.deque(maxlen=capacity)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
        except Exception:  # a bad log call must not break anything
            message = str(record.msg)
        self._records.append({"time": record.created, "level": record.levelname,
                              "logger": record.name, "message": message})

    def records(self, min_level: str = "INFO", limit: int = 500) -> list[dict]:
        threshold = LEVELS.get(str(min_level).upper(), 20)
        selected = [r for r in self._records if LEVELS.get(r["level"], 0) >= threshold]
        return selected[-max(0, int(limit)):] if limit else []
