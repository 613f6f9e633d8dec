"""``python -m entropy_verl.tools.study`` (``make study``): every method family of the zoo next to GRPO at the demo's
budget (100 steps of 32 prompts x 8 samples on the embedded default), 3 seeds, each seed pairing every method with
GRPO (same data order, same held-out prompts, same initial model); then the results page (``study_report``).

Per run: the entropy trajectory and training reward every step, and pass@1..32 and distinct correct answers on 128
held-out prompts x 32 samples after the last step. The start validation depends only on the initial weights and the
seed's held-out prompts, the same for every method, so it runs once per seed (``<out>/start/seed<k>/``, verl's
``trainer.val_only``) and every run of that seed shares it.

Resumable: as each run finishes, its record (its metrics cut to what the page reads) goes to ``docs/study/records/``,
which is committed; a run with a finished record is not run again, on any checkout. A run killed midway resumes
from its last checkpoint in ``--out`` (``trainer.resume_mode=auto``, every ``SAVE_FREQ`` steps) where that is still
there. Runs go two at a time (each with its own Ray), seeds outer, GRPO first within a seed, so that an interrupted
study has every method paired at its first seeds.
``--hours H`` starts no run after H hours (the running ones finish): the study in chunks.

    python -m entropy_verl.tools.study                       # everything not yet finished, then the page
    python -m entropy_verl.tools.study --hours 1.5           # a chunk
    python -m entropy_verl.tools.study --report-only         # redraw the page from the runs' records
    python -m entropy_verl.tools.study --methods grpo nsr --seeds 1 --steps 3   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, replace

from entropy_verl.embedded.build import EmbeddedPaths, content_digest, ensure_embedded_default, read_manifest
from entropy_verl.main import selection
from entropy_verl.run_state import load_metrics
from entropy_verl.tools.compare import seed_overrides
from entropy_verl.tools.demo import START, end_validation, start_validation
from entropy_verl.tools.parallel_runs import Job, run_parallel
from entropy_verl.tools.study_report import (
    CHUNKS,
    EMBEDDED,
    FIGURES,
    PAGE,
    RECORDS,
    load_initial,
    load_record,
    record_path,
    run_record,
    save_record,
    start_record,
    write_report,
)

OUT = os.path.join("outputs", "study")
SEEDS = (1, 2, 3)
STEPS = 100  # the demo's budget: 100 steps of data.train_batch_size 32 x rollout.n 8 (the embedded default's own)
SAVE_FREQ = 25  # a killed run loses at most this many steps

# Entropy targets are the one setting in the task's units (nats/token at the task's sampling temperature, 1.0 here);
# the papers' values (0.1 at T=0.6, 0.2) belong to other models and tasks. One rule sets them all: 3/4 of the study's
# initial policy's entropy as its build measured it (the manifest's "entropy": 256 held-out prompts sampled at T=1,
# recorded in <records>/embedded.json), so the target follows the build the runs start from; the report prints the
# runs' own step-1 entropy next to it. ``{target}`` in an entry's overrides is replaced by it.
TARGET_FRACTION = 0.75


def target_for(initial: dict) -> float:
    """The entropy target of the study whose initial policy is ``initial`` (``same_initial_policy``'s record)."""
    return round(TARGET_FRACTION * initial["metrics"]["entropy"], 3)


@dataclass(frozen=True)
class Entry:
    """One method of the study: ``name`` its method config (paper values), ``family`` the zoo row it stands for."""

    name: str
    family: str
    overrides: tuple[str, ...] = ()


BASELINE = "grpo"
# One representative per family where two registry entries differ only in implementation: the global (corrected)
# Clip-Cov / KL-Cov rather than verl's per-rank ones; the fixed-lambda positive-advantage reweighting rather than the
# entropy-guided one (its target is unconfirmed). Ordered by what an interrupted study should have first.
ENTRIES = (
    Entry(BASELINE, "GRPO (baseline)"),
    Entry(
        "entropic",
        "EntroPIC",
        ("entropy_verl.controllers.pi.target_entropy={target}", "entropy_verl.controllers.pi.target_temperature=1.0"),
    ),
    Entry("clip_higher", "DAPO clip-higher"),
    Entry("cispo", "CISPO"),
    Entry("clip_cov_global", "Clip-Cov"),
    Entry("kl_cov_global", "KL-Cov"),
    Entry("top_entropy", "80/20 high-entropy tokens"),
    Entry("entropy_adv", "entropy-based advantage"),
    Entry("w_reinforce", "W-REINFORCE"),
    Entry("psr", "PSR"),
    Entry("nsr", "NSR"),
    Entry("pos_adv_reweight", "positive-advantage reweighting"),
    Entry("clip_b", "Clip-B"),
    Entry("clip_v", "Clip-V"),
    Entry("steer", "STEER"),
    Entry("sent", "SENT"),
    Entry("unlikeliness", "unlikeliness reward"),
    Entry("seed_grpo", "SEED-GRPO"),
    Entry(
        "adaptive_entropy",
        "Skywork adaptive entropy",
        ("entropy_verl.controllers.adaptive_entropy.target_entropy={target}",),
    ),
    Entry("gdpo", "GDPO"),
    Entry("dr_grpo", "Dr. GRPO"),
    Entry("opo", "OPO"),
    Entry("entropy_bonus", "entropy bonus (classic)"),
)
BY_NAME = {entry.name: entry for entry in ENTRIES}


def run_dir(out: str, name: str, seed: int) -> str:
    return os.path.join(out, name, f"seed{seed}")


def method_job(entry: Entry, seed: int, steps: int, out: str, target: float) -> Job:
    directory = run_dir(out, entry.name, seed)
    overrides = (
        selection(entry.name),
        *(override.format(target=target) for override in entry.overrides),
        *seed_overrides(seed),
        *end_validation(steps),
        f"trainer.total_training_steps={steps}",
        f"trainer.save_freq={min(SAVE_FREQ, steps)}",
        "trainer.resume_mode=auto",
        "trainer.max_actor_ckpt_to_keep=1",
        f"entropy_verl.run_dir={os.path.abspath(directory)}",
    )
    return Job(f"{entry.name} s{seed}", overrides, os.path.abspath(directory), steps)


def start_job(seed: int, out: str) -> Job:
    """The initial weights' validation on the seed's held-out prompts, shared by the seed's runs."""
    return replace(start_validation(seed_overrides(seed), run_dir(out, START, seed)), label=f"start s{seed}")


def record_of(job: Job, records: str) -> str:
    """``<records>/<method>/seed<k>.jsonl`` for the run directory ``<out>/<method>/seed<k>``."""
    method, seed_dir = os.path.split(job.run_dir)
    return record_path(records, os.path.basename(method), int(seed_dir.removeprefix("seed")))


def is_finished(rows: list[dict], steps: int) -> bool:
    """The run logged every step and its last step's validation (the start job, ``steps`` 0: its validation)."""
    return (start_record(rows) if steps == 0 else run_record(rows, seed=0, steps=steps)) is not None


def finished(job: Job, records: str) -> bool:
    return is_finished(load_record(record_of(job, records)), job.steps)


def keep(job: Job, records: str) -> bool:
    """Record a finished run (and drop its checkpoints, ~10 MB, no longer needed); False while it is not finished."""
    try:
        rows = load_metrics(job.run_dir)
    except FileNotFoundError:
        return False
    if not is_finished(rows, job.steps):
        return False
    save_record(rows, record_of(job, records))
    shutil.rmtree(os.path.join(job.run_dir, "checkpoints"), ignore_errors=True)
    return True


def same_initial_policy(records: str, paths: EmbeddedPaths | None = None) -> dict:
    """The embedded default here (built if needed): its ``content_digest``, versions and build metrics. The first
    chunk writes it to ``<records>/embedded.json``; a later chunk on a machine whose build differs (another
    transformers, other float kernels) stops before any run, since runs from two initial policies are not pairs."""
    root = (paths or ensure_embedded_default()).root
    manifest = read_manifest(root)
    here = {"digest": content_digest(root), "versions": manifest["versions"], "metrics": manifest["metrics"]}
    path = os.path.join(records, EMBEDDED)
    if (recorded := load_initial(records)) is None:
        os.makedirs(records, exist_ok=True)
        with open(path, "w") as f:
            json.dump(here, f, indent=2, sort_keys=True)
            f.write("\n")
        return here
    if recorded["digest"] != here["digest"]:
        raise SystemExit(
            f"[entropy_verl] study: the embedded default here (digest {here['digest']}, built with "
            f"{here['versions']}) is not the one the recorded runs started from (digest {recorded['digest']}, "
            f"{recorded['versions']}; {path}): runs from two initial policies cannot be paired. Install the "
            "recorded versions (entropy_verl/embedded/constraints.txt pins them for make install) and rebuild it "
            "(python -m entropy_verl.embedded.build --force), or start another study (--records DIR)."
        )
    return here


def planned(names: list[str], seeds: list[int], steps: int, out: str, target: float) -> list[Job]:
    """Seeds outer; each seed's start validation first, then its runs in ``ENTRIES`` order."""
    jobs = []
    for seed in seeds:
        jobs.append(start_job(seed, out))
        jobs += [method_job(BY_NAME[name], seed, steps, out, target) for name in names]
    return jobs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m entropy_verl.tools.study", description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=[e.name for e in ENTRIES], choices=list(BY_NAME))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--out", default=OUT, help=f"where the runs go (default {OUT})")
    parser.add_argument("--records", default=RECORDS, help=f"where finished runs are recorded (default {RECORDS})")
    parser.add_argument("--hours", type=float, help="start no run after this many hours (the study in chunks)")
    parser.add_argument("--at-once", type=int, default=2, help="runs side by side (2 fill 2 cores)")
    parser.add_argument("--report-only", action="store_true", help="train nothing: redraw the page from the records")
    parser.add_argument("--page", default=PAGE, help=f"the results page whose study section is written ({PAGE})")
    parser.add_argument("--figures", default=FIGURES, help=f"where its figures go ({FIGURES})")
    args = parser.parse_args(argv)
    names = [e.name for e in ENTRIES if e.name in args.methods]  # ENTRIES order, GRPO first
    if BASELINE not in names:
        parser.error(f"--methods must include the baseline {BASELINE}: every difference is taken against it")
    if not args.report_only:
        jobs = planned(names, args.seeds, args.steps, args.out, target_for(same_initial_policy(args.records)))
        todo = [job for job in jobs if not finished(job, args.records) and not keep(job, args.records)]
        print(f"[entropy_verl] study: {len(jobs) - len(todo)} of {len(jobs)} runs finished; running {len(todo)}")
        deadline = time.time() + args.hours * 3600 if args.hours is not None else None
        start = time.time()
        not_started = run_parallel(
            todo, at_once=args.at_once, start_until=deadline, on_finish=lambda job: keep(job, args.records)
        )
        took, done = time.time() - start, sum(finished(job, args.records) for job in jobs)
        os.makedirs(args.records, exist_ok=True)
        with open(os.path.join(args.records, CHUNKS), "a") as f:  # the study's wall time is the sum of its chunks
            f.write(json.dumps({"started": start, "seconds": took, "ran": len(todo) - len(not_started)}) + "\n")
        print(f"[entropy_verl] study: this chunk took {took:.0f}s; {done} of {len(jobs)} runs finished")
    print(write_report(args.records, names, args.seeds, args.steps, page=args.page, figures=args.figures))


if __name__ == "__main__":
    main(sys.argv[1:])
