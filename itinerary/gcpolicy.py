"""How this process uses Python's cyclic garbage collector, set once start-up is done.

Everything start-up loaded (modules, job definitions, the run index) lives as long as
the process, so it is frozen out of the collector's way: full collections then scan
only what runs allocate. Young collections are made rarer than CPython's default of
one per 700 net container allocations: at the syncer's top rate that default gave
about 35 collections a second and, through them, full collections of up to 50 ms
that delayed the scheduler loop's tick (bench/syncer.py on PostgreSQL: loop p99 5.5-6
ms, max 40-46 ms). With 20,000 the same run saw two young collections in 20 s and a
loop max of about 5 ms; bench/scheduler.py with 10,000 jobs a minute was unchanged. Objects
freed by reference counting do not count towards a collection; only cyclic garbage waits longer.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000  # net container allocations between two young collections


def settle() -> None:
    """Collect start-up's garbage, freeze what is left, and space young collections out."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
