"""A token bucket per integration, on the injected clock.

Slack allows about one message per second per webhook (short bursts allowed),
PagerDuty about 120 events a minute per key; integrations.DEFAULT_RATE holds the
defaults and `rateLimit` overrides them (0: unlimited). A 429 with `Retry-After`
pauses the whole destination until then, not only the message that met it.
"""

from __future__ import annotations

from gevent.event import Event

from itinerary.clock import Clock


class Bucket:
    def __init__(self, clock: Clock, rate: float, burst: float | None = None) -> None:
        self.clock = clock
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self.tokens = self.burst
        self.stamp = clock.monotonic()
        self.paused_until = 0.0

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, self.clock.monotonic() + seconds)

    def delay(self) -> float:
        """Seconds to wait before the next send (0: go now); takes a token when 0."""
        now = self.clock.monotonic()
        if now < self.paused_until:
            return self.paused_until - now
        if self.rate <= 0:
            return 0.0
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate

    def acquire(self, stop: Event) -> bool:
        """Wait (on the clock) until a send is allowed; False if `stop` is set first."""
        while (wait := self.delay()) > 0:
            if self.clock.wait(stop, wait):
                return False
        return not stop.is_set()
