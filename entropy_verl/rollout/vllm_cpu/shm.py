"""The /dev/shm segments a CPU vLLM run leaves behind, removed when it ends.

vLLM's engine and workers talk through shared-memory ring buffers (``psm_*``, hundreds of MiB each) and semaphores
(``sem.*``); when Ray ends those processes at shutdown, nothing unlinks them, and every run would leave ~400 MB in
/dev/shm. A segment is removed only if it appeared during the run and no living process still maps it, so a
concurrent run on the same machine keeps its own.
"""

from __future__ import annotations

import glob
import os
import time

SHM_DIR = "/dev/shm"


def segments() -> set[str]:
    return set(glob.glob(os.path.join(SHM_DIR, "*")))


def mapped_segments() -> set[str]:
    """Paths under /dev/shm that some living process maps (what /proc/<pid>/maps lists)."""
    mapped = set()
    for maps in glob.glob("/proc/[0-9]*/maps"):
        try:
            with open(maps) as f:
                mapped.update(line.split(None, 5)[-1].strip() for line in f if SHM_DIR in line)
        except OSError:  # the process ended meanwhile, or is not ours to read
            continue
    return {path.removesuffix(" (deleted)") for path in mapped}


def remove_leftovers(before: set[str], wait_s: float = 10.0) -> list[str]:
    """Unlink the segments created since ``before`` once no process maps them (waiting up to ``wait_s`` for the
    run's processes to exit); returns the paths removed."""
    deadline = time.monotonic() + wait_s
    while True:
        new = segments() - before
        in_use = new & mapped_segments()
        if not in_use or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    removed = []
    for path in sorted(new - in_use):
        try:
            os.unlink(path)
            removed.append(path)
        except FileNotFoundError:
            pass
    return removed
