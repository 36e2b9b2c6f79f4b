"""The inbox loop every queue-reading component shares: take, handle, stop.

The syncer, the stats collector, the webhook handler and the anomaly detector each
read one inbox in one greenlet; their `run()` is `serve(self.inbox, self.handle)`
plus what they start beside it and finish after it. Why one loop: four copies had
drifted (one of them did not stop on a shut-down queue), and it is where the three
rules that every inbox needs live once:

- it stops on a `ShutDown` message or on a queue closed with `Queue.shutdown()`
  (iterating a gevent queue raises `ShutDown` rather than ending, so it is caught);
- `get()` does not yield while the inbox has items, so a component that drains a
  full inbox (the syncer, which batches what `handle` gives it) asks for a turn of
  the event loop every `yield_every` messages rather than holding the hub;
- a helper greenlet (a writer, a period timer) is started with `spawn_linked`: its
  failure is raised in the loop's greenlet, whose own `link_exception` in app.py
  logs it and starts shutdown, so no helper dies unnoticed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent
from gevent.queue import ShutDown as QueueShutDown

from itinerary.messages import ShutDown

LOOP_TURN = 0.00001  # a timer this short fires at the loop's next turn


def turn_of_the_loop() -> None:
    """Yield until the event loop has gone round once: timers and I/O come first.

    gevent.sleep(0) only goes to the back of the callback queue, and gevent runs queued
    callbacks until none are left (it looks at the time only every 50 of them) before
    it turns to timers and I/O again: a greenlet that keeps yielding with sleep(0)
    while it has work (an inbox that keeps filling, answers that arrived before the
    driver read them) keeps them waiting (the scheduler loop's tick among them).
    """
    gevent.sleep(LOOP_TURN)


def serve(
    inbox: Any,
    handle: Callable[[Any], None],
    yield_every: int = 0,
    pause: Callable[[], None] = turn_of_the_loop,
) -> int:
    """Hand each message to `handle` until ShutDown or a shut-down inbox; return the count."""
    n = 0
    while True:
        try:
            msg = inbox.get()
        except QueueShutDown:
            return n
        if isinstance(msg, ShutDown):
            return n
        handle(msg)
        n += 1
        if yield_every and n % yield_every == 0:
            pause()


def spawn_linked(body: Callable[[], Any]) -> gevent.Greenlet:
    """Start `body` beside the calling loop; if it fails, the loop's greenlet fails with it."""
    loop = gevent.getcurrent()

    def guarded() -> Any:
        try:
            return body()
        except QueueShutDown:  # a timer's put() into the closing inbox: the loop ends too
            return None

    helper = gevent.spawn(guarded)
    helper.link_exception(lambda g: loop.kill(g.exception, block=False))
    return helper


def serve_beside(helper: Callable[[], Any], inbox: Any, handle: Callable[[Any], None]) -> int:
    """`serve` with a helper greenlet (a period timer) started first and killed at the end."""
    beside = spawn_linked(helper)
    try:
        return serve(inbox, handle)
    finally:
        beside.kill()
