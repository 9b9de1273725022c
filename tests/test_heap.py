"""The collector settings both processes take after start-up, in a fresh interpreter (they are process-wide)."""

from __future__ import annotations

import subprocess
import sys

SETTLED_PROCESS = """
import gc, weakref
from logtraced import heap

heap.settle_after_start()
assert gc.get_freeze_count() > 0, "start-up objects are frozen"
assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD

class Node:
    pass

freed = []
for _ in range(50):
    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle, unreachable once the names go
    weakref.finalize(a, freed.append, 1)
    del a, b
garbage = [[] for _ in range(2 * heap.YOUNG_THRESHOLD)]  # allocations enough to start a young collection
print(len(freed))
"""


def test_cycles_are_still_collected_without_asking() -> None:
    done = subprocess.run([sys.executable, "-c", SETTLED_PROCESS], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == 50
