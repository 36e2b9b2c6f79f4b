"""The shared inbox loop: take, handle, yield every N, stop, report a helper's failure."""

from __future__ import annotations

from datetime import UTC, datetime

import gevent
from gevent.event import Event
from gevent.queue import Queue

from itinerary.inbox import serve, serve_beside, spawn_linked
from itinerary.messages import ShutDown

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_it_hands_each_message_to_handle_until_shutdown() -> None:
    inbox, seen = Queue(), []
    for msg in ("a", "b", ShutDown(T0), "after"):
        inbox.put(msg)
    # It should stop at ShutDown and leave what follows in the inbox.
    assert serve(inbox, seen.append) == 2
    assert seen == ["a", "b"] and inbox.get_nowait() == "after"


def test_it_drains_and_stops_when_the_inbox_is_shut_down() -> None:
    inbox, seen = Queue(), []
    inbox.put("a")
    inbox.shutdown()
    # It should handle what was queued before the shutdown, then return.
    assert serve(inbox, seen.append) == 1 and seen == ["a"]


def test_it_pauses_every_n_messages() -> None:
    inbox, events = Queue(), []
    for n in range(7):
        inbox.put(n)
    inbox.shutdown()
    serve(inbox, events.append, yield_every=3, pause=lambda: events.append("pause"))
    assert events == [0, 1, 2, "pause", 3, 4, 5, "pause", 6]


def test_it_fails_the_loop_when_a_helper_fails() -> None:
    def run() -> None:
        spawn_linked(lambda: 1 / 0)
        serve(Queue(), lambda msg: None)  # would wait for ever

    loop = gevent.spawn(run)
    loop.join(timeout=1)
    # It should raise the helper's error in the loop's greenlet, for app.py to report.
    assert isinstance(loop.exception, ZeroDivisionError)


def test_it_lets_a_helper_end_quietly_on_a_shut_down_inbox() -> None:
    inbox = Queue()
    inbox.shutdown()
    helper = spawn_linked(lambda: inbox.put("tick"))
    helper.join(timeout=1)
    # It should not fail the loop: the loop ends by itself on the shut-down inbox.
    assert helper.successful()


def test_it_stops_its_helper_when_the_loop_ends() -> None:
    inbox, helpers = Queue(), []

    def timer() -> None:
        helpers.append(gevent.getcurrent())
        Event().wait()  # a timer that is never due: only the loop's end stops it

    loop = gevent.spawn(serve_beside, timer, inbox, lambda msg: None)
    gevent.sleep(0)
    inbox.shutdown()
    loop.join(timeout=1)
    # It should kill the helper once the inbox is shut down.
    assert loop.successful() and helpers[0].dead
