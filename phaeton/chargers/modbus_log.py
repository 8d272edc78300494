"""Keep pymodbus's decoding failures out of the log as tracebacks.

An answer pymodbus cannot decode (a garbled frame, an unknown function code) raises inside its
protocol's `data_received`; asyncio then logs "Fatal error: protocol.data_received() call
failed" at ERROR with a traceback and closes the connection. The driver already handles the
closed connection (it reconnects and says so once), so such a record becomes one WARNING line
naming the error, without the traceback.
"""
from __future__ import annotations

import logging


class PymodbusTracebackFilter(logging.Filter):
    """On the `asyncio` logger: a record carrying a pymodbus exception becomes a one-line
    warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not type(exc).__module__.startswith("pymodbus"):
            return True
        record.msg = "Modbus answer could not be decoded (%s: %s); reconnecting"
        record.args = (type(exc).__name__, exc)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
        return True


_FILTER = PymodbusTracebackFilter()


def install() -> None:
    """Add the filter to the asyncio logger (once)."""
    logger = logging.getLogger("asyncio")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
