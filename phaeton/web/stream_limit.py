"""How many live event streams (GET /api/events) the clients may hold (pure logic).

Each client address (client_address.py) may hold `per_client` streams; one more is refused with
429, so a single address cannot take the slots everyone shares. Over all clients at most
`total` streams are open. When that cap is reached, a newcomer still gets a stream if some
address holds at least two more streams than the newcomer: that address's oldest stream is
ended to make room (fair share). Only when every address holds about as many as the newcomer
is it refused with 503. So an owner on another address gets a stream unless a great many
addresses each hold one.
"""
from __future__ import annotations

from dataclasses import dataclass


class TooManyStreams(Exception):
    """A stream that may not be opened: the HTTP status (429 or 503) and why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(eq=False)
class Stream:
    """One open stream; `ended` is set when it was ended to make room for another client."""

    client: str
    ended: bool = False


class StreamLimit:
    """The open streams per client address (see the module for the rule)."""

    def __init__(self, *, per_client: int = 4, total: int = 50):
        self.per_client = per_client
        self.total = total
        self._streams: dict[str, list[Stream]] = {}  # client -> its streams, oldest first

    @property
    def count(self) -> int:
        """How many streams are open."""
        return sum(len(streams) for streams in self._streams.values())

    def open(self, client: str) -> Stream:
        """A new stream for `client`, or TooManyStreams."""
        mine = self._streams.get(client, [])
        if len(mine) >= self.per_client:
            raise TooManyStreams(429, f"your address already has {len(mine)} live streams open "
                                      f"(at most {self.per_client} per address); close a "
                                      f"dashboard tab or window")
        if self.count >= self.total:
            heaviest = max(self._streams, key=lambda c: len(self._streams[c]))
            if len(self._streams[heaviest]) < len(mine) + 2:
                raise TooManyStreams(503, f"too many live connections (at most {self.total}); "
                                          f"close a tab")
            self._end(self._streams[heaviest][0])
        stream = Stream(client)
        self._streams.setdefault(client, []).append(stream)
        return stream

    def close(self, stream: Stream) -> None:
        """Forget a stream that has finished (unknown or already ended ones are ignored)."""
        streams = self._streams.get(stream.client)
        if streams is not None and stream in streams:
            streams.remove(stream)
            if not streams:
                del self._streams[stream.client]

    def _end(self, stream: Stream) -> None:
        stream.ended = True
        self.close(stream)
