"""The fan-out of the tick's snapshot to whoever wants it.

Two kinds of consumers attach to a `SnapshotPublisher`:
- listeners (`attach`): called at once, in order, inside the tick (the D-Bus service, which
  must show the tick before the next one starts);
- queues (`subscribe`): for asynchronous consumers such as a web event stream. A queue holds a
  few items; one that falls behind loses its oldest item, so a slow client gets the newest
  state and never makes the service queue without bound. `view` turns the snapshot into what
  that consumer wants (computed once per publish for every queue sharing the same view).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

QUEUE_SIZE = 4


class SnapshotPublisher(Generic[T]):
    """Hands every published snapshot to the attached listeners and subscribed queues."""

    def __init__(self) -> None:
        self.latest: T | None = None
        self._listeners: list[Callable[[T], None]] = []
        self._queues: dict[asyncio.Queue, Callable[[T], Any] | None] = {}

    def attach(self, listener: Callable[[T], None]) -> Callable[[], None]:
        """Call `listener(snapshot)` on every publish; returns the function that detaches it."""
        self._listeners.append(listener)

        def detach() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)
        return detach

    def subscribe(self, view: Callable[[T], Any] | None = None,
                  maxsize: int = QUEUE_SIZE) -> asyncio.Queue:
        """A new queue that receives every snapshot published from now on (or `view` of it)."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=maxsize)
        self._queues[queue] = view
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        """Stop feeding `queue`; unknown queues are ignored."""
        self._queues.pop(queue, None)

    @property
    def subscriber_count(self) -> int:
        return len(self._queues)

    def publish(self, snapshot: T) -> None:
        """Listeners first (a listener that raises is logged, the others still run), then the
        queues."""
        self.latest = snapshot
        for listener in list(self._listeners):
            try:
                listener(snapshot)
            except Exception:
                log.exception("a snapshot listener failed")
        views: dict[Any, Any] = {}
        for queue, view in list(self._queues.items()):
            if view is None:
                item = snapshot
            elif view in views:
                item = views[view]
            else:
                item = views[view] = view(snapshot)
            if queue.full():
                try:
                    queue.get_nowait()   # a slow consumer gets the newest
                except asyncio.QueueEmpty:
                    pass
            queue.put_nowait(item)
