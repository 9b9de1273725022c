"""How the daemon's two processes use CPython's cyclic garbage collector once they have started.

Ingest allocates and frees containers in bulk (a batch's decoded events, their attribute dicts and
tag lists).  With CPython's default thresholds a collection of the young generation starts every
700 net allocations while a batch is alive, the survivors move on to older generations, and in
time full collections walk every object the process holds (modules, the config, the app): 300 000
events over TCP set off ~1 600 collections in the event loop's process and ~1 800 in the
indexer's, 0.35 s and 0.20 s of CPU (bench/RESULTS.md), 4-5 % of what ingest costs.

Nothing on the ingest path makes reference cycles, so after start-up the objects made so far are
moved out of the collector's sight (`gc.freeze`), and the young generation is collected every
`YOUNG_THRESHOLD` net allocations: a batch is freed before it reaches that (a 5 000-event HTTP
request decodes to ~20 000 containers: at 10 000 each request set off a collection, 0.14-0.24 µs
an event, bench/RESULTS.md), and cycles made elsewhere (an exception's traceback, a closed
connection's callbacks) are still collected, some thousands of objects later.
"""

from __future__ import annotations

import gc
from typing import Final

YOUNG_THRESHOLD: Final = 100_000


def settle_after_start() -> None:
    """Freeze what start-up made and collect the young generation less often (see the module's docstring)."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
