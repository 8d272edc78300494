"""The snapshot fan-out: listeners in order, queues that keep only the newest when behind."""
from __future__ import annotations

from phaeton.publisher import QUEUE_SIZE, SnapshotPublisher


async def test_listeners_then_queues_each_get_every_snapshot():
    publisher: SnapshotPublisher[int] = SnapshotPublisher()
    seen: list[int] = []
    detach = publisher.attach(seen.append)
    queue = publisher.subscribe()
    publisher.publish(1)
    assert seen == [1] and queue.get_nowait() == 1 and publisher.latest == 1
    detach()
    publisher.unsubscribe(queue)
    publisher.publish(2)
    assert seen == [1] and queue.empty() and publisher.subscriber_count == 0


async def test_a_slow_queue_keeps_the_newest_and_a_view_is_computed_once_per_publish():
    publisher: SnapshotPublisher[int] = SnapshotPublisher()
    calls: list[int] = []

    def view(snapshot: int) -> str:
        calls.append(snapshot)
        return f"#{snapshot}"
    first, second = publisher.subscribe(view), publisher.subscribe(view)
    for n in range(QUEUE_SIZE + 3):
        publisher.publish(n)
    assert calls == list(range(QUEUE_SIZE + 3))          # once per publish, not per queue
    items = [first.get_nowait() for _ in range(first.qsize())]
    assert items == [f"#{n}" for n in range(3, QUEUE_SIZE + 3)]
    assert second.qsize() == QUEUE_SIZE


async def test_a_failing_listener_does_not_keep_the_others_from_the_snapshot():
    publisher: SnapshotPublisher[int] = SnapshotPublisher()
    seen: list[int] = []

    def broken(_snapshot: int) -> None:
        raise RuntimeError("boom")
    publisher.attach(broken)
    publisher.attach(seen.append)
    queue = publisher.subscribe()
    publisher.publish(7)
    assert seen == [7] and queue.get_nowait() == 7
