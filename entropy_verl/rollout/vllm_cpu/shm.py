"""The /dev/shm segments a CPU vLLM run leaves behind, removed when it ends.

vLLM's engine and workers talk through shared-memory ring buffers (``psm_*``, hundreds of MiB each) and semaphores
(``sem.*``); when Ray ends those processes at shutdown, nothing unlinks them, and every run would leave ~400 MB in
/dev/shm. A segment is removed only if it appeared during the run and no living process still maps it, so a
concurrent run on the same machine keeps its own. A run that started its own Ray compares /dev/shm before and after;
a run on a cluster it joined (a Ray job) cleans every alive node with a task pinned to it, removing the
multiprocessing segments (``psm_*``, ``sem.mp-*``) made since the run started that nothing maps any more.
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


MULTIPROCESSING_PREFIXES = ("psm_", "sem.mp-")  # multiprocessing's shared memory and semaphores, which vLLM uses


def made_since(start: float) -> set[str]:
    """multiprocessing's segments in /dev/shm last changed at or after ``start`` (a ``time.time()``)."""
    found = set()
    for path in segments():
        if os.path.basename(path).startswith(MULTIPROCESSING_PREFIXES):
            try:
                if os.stat(path).st_mtime >= start:
                    found.add(path)
            except FileNotFoundError:
                continue
    return found


def remove_leftovers(before: set[str] | None = None, wait_s: float = 10.0, since: float | None = None) -> list[str]:
    """Unlink the segments created since ``before`` (a ``segments()`` taken at the start), or else multiprocessing's
    segments changed since ``since``, once no process maps them (waiting up to ``wait_s`` for the run's processes to
    exit); returns the paths removed."""
    if (before is None) == (since is None):
        raise ValueError("remove_leftovers needs exactly one of before (a segments() snapshot) or since (a time)")
    deadline = time.monotonic() + wait_s
    while True:
        new = segments() - before if before is not None else made_since(since)
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


def remove_leftovers_on_every_node(since: float, wait_s: float = 10.0) -> dict[str, list[str]]:
    """``remove_leftovers(since=since)`` on every alive node of the cluster this process is connected to, each in a
    task pinned to its node (no CPU reserved); returns {node address (id): paths removed}. Called by a run on a
    cluster it joined, after verl's trainer has returned, while Ray ends the run's vLLM processes."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    clean = ray.remote(num_cpus=0, max_retries=0)(remove_leftovers)
    pending = {
        f"{node['NodeManagerAddress']} ({node['NodeID'][:8]})": clean.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        ).remote(None, wait_s, since)
        for node in ray.nodes()
        if node["Alive"]
    }
    removed = {}
    for node, task in pending.items():
        try:
            removed[node] = ray.get(task)
        except ray.exceptions.RayError:  # a node lost since it was listed (the run may have failed for that)
            continue
    return removed
