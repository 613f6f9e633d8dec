"""Several ``python -m entropy_verl.main`` runs at once, each with its own local Ray, one progress bar per run.

On 2 cores one run of the embedded default keeps the CPU busy ~70% of a step (its stages wait on each other:
generation, then log-probs, then the update); two runs side by side fill most of the rest. ``make demo`` runs its
GRPO and EntroPIC runs this way, and ``make compare`` its runs two at a time. Each run's driver output goes to
``<run_dir>/driver.log``; a run that fails ends the others and its log's tail is printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from tqdm import tqdm

from entropy_verl.metric_names import ENTROPY
from entropy_verl.run_state import METRICS_FILE

# each run starts its own local Ray (joining another run's cluster would mix their TransferQueues); Ray moves the
# second dashboard to the next free port
OWN_RAY = ("+ray_kwargs.ray_init.address=local",)
DRIVER_LOG = "driver.log"


@dataclass(frozen=True)
class Job:
    label: str  # shown on its progress bar
    overrides: tuple[str, ...]  # Hydra overrides of ``python -m entropy_verl.main``
    run_dir: str  # the composed ``entropy_verl.run_dir``
    steps: int  # the composed ``trainer.total_training_steps``


def steps_logged(run_dir: str, since: float = 0.0) -> int:
    """Training steps in the run's metrics file so far (validation-only rows have no ``actor/entropy``); 0 while the
    file is older than ``since`` (an earlier run's, until this run's logger rewrites it)."""
    path = os.path.join(run_dir, METRICS_FILE)
    if not os.path.exists(path) or os.path.getmtime(path) < since:
        return 0
    with open(path) as f:
        return sum(f'"{ENTROPY}"' in line for line in f)


def progress_bar(job: Job, position: int) -> tqdm:
    """Steps done of ``job.steps``; a run of no training steps (a validation alone, e.g. ``demo.start_validation``)
    shows its elapsed time instead of a step count that stays 0."""
    if job.steps == 0:
        return tqdm(desc=f"{job.label} (validation)", position=position, bar_format="{desc}: {elapsed}", leave=True)
    return tqdm(total=job.steps, desc=job.label, position=position, unit="step", leave=True)


def uses_embedded_default(overrides: tuple[str, ...]) -> bool:
    """Whether the run config these overrides compose reads the embedded default (``${embedded:...}``), unresolved:
    resolving it would build it."""
    from omegaconf import OmegaConf

    from entropy_verl.main import compose_run

    return "${embedded:" in OmegaConf.to_yaml(compose_run(list(overrides)))


def build_embedded_default_once(jobs: list[Job]) -> None:
    """Build the embedded default here, before the runs start, when any of them uses it: runs started together would
    each build it at once (safe, see ``embedded/build.py``, but on a fresh 2-core machine two such builds took 9 min
    where one takes about 1.5)."""
    from entropy_verl.embedded import ensure_embedded_default

    if any(uses_embedded_default(job.overrides) for job in jobs):
        ensure_embedded_default()


def run_parallel(
    jobs: list[Job],
    at_once: int = 2,
    poll_s: float = 2.0,
    start_until: float | None = None,
    on_finish: Callable[[Job], object] | None = None,
) -> list[Job]:
    """Run ``jobs``, ``at_once`` at a time, in order, starting none after the time ``start_until`` (those running
    then finish), calling ``on_finish(job)`` as each succeeds; returns the jobs not started. Raises SystemExit naming
    the first run that fails."""
    build_embedded_default_once(jobs)
    waiting, running = list(jobs), {}
    bars, started = {}, {}

    def may_start() -> bool:
        return bool(waiting) and (start_until is None or time.time() < start_until)

    try:
        while running or may_start():
            while may_start() and len(running) < at_once:
                job = waiting.pop(0)
                os.makedirs(job.run_dir, exist_ok=True)
                log = open(os.path.join(job.run_dir, DRIVER_LOG), "w")
                command = [sys.executable, "-m", "entropy_verl.main", *job.overrides, *OWN_RAY]
                running[job] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), log)
                started[job] = time.time()
                bars[job] = progress_bar(job, position=len(bars))
            time.sleep(poll_s)
            for job, (process, log) in list(running.items()):
                bars[job].update(min(steps_logged(job.run_dir, started[job]), job.steps) - bars[job].n)
                if process.poll() is None:
                    continue
                log.close()
                del running[job]
                if process.returncode != 0:
                    raise SystemExit(failure(job, process.returncode))
                bars[job].refresh()
                took = time.time() - started[job]
                tqdm.write(f"[entropy_verl] {job.label} finished in {took:.0f}s; run directory: {job.run_dir}")
                if on_finish is not None:
                    on_finish(job)
        return waiting
    finally:
        for process, log in running.values():
            process.terminate()
            process.wait()
            log.close()
        for bar in bars.values():
            bar.close()


def failure(job: Job, returncode: int, tail_lines: int = 30) -> str:
    with open(os.path.join(job.run_dir, DRIVER_LOG), errors="replace") as f:
        tail = "".join(f.readlines()[-tail_lines:])
    return f"{tail}\n[entropy_verl] run {job.label!r} failed (exit {returncode}); its log: {job.run_dir}/{DRIVER_LOG}"
