"""``python -m entropy_verl.tools.demo`` (``make demo``): GRPO and EntroPIC side by side on the embedded default (two
processes, each with its own Ray: ``entropy_verl/tools/parallel_runs.py``), same seed and budget, then a summary of
entropy and reward at the start, middle and end of each run, and of what holding entropy keeps: pass@1 ... pass@32
and distinct correct answers per prompt on held-out prompts (``VAL_PROMPTS`` prompts x ``VAL_SAMPLES`` samples),
measured by verl's validation after each run's last step and, for the initial weights both runs start from, once
before they start (``start_validation``).

Extra arguments are Hydra overrides applied to both runs, e.g.
``python -m entropy_verl.tools.demo trainer.total_training_steps=20``.
"""

from __future__ import annotations

import os
import sys
import time

from omegaconf import OmegaConf

from entropy_verl.diagnostics.run_summary import summarize, window_mean
from entropy_verl.main import compose_run, selection
from entropy_verl.metric_names import DISTINCT_CORRECT, ENTROPY, REWARD, STEP_TIME, entropy_key, pass_at, pass_at_values
from entropy_verl.run_state import load_metrics
from entropy_verl.tools.parallel_runs import Job, run_parallel

RUNS = (("GRPO", "grpo"), ("EntroPIC", "embedded_entropic"))  # a method or an experiment each
# held-out prompts and samples per prompt of the start and end validations: pass@k up to k = 32, and enough prompts
# that pass@8's binomial standard error is ~0.04 (an earlier standalone loop saw GRPO take pass@8 from 0.70 to 0.56)
VAL_PROMPTS, VAL_SAMPLES = 128, 32


HELD_OUT = (f"data.val_max_samples={VAL_PROMPTS}", f"actor_rollout_ref.rollout.val_kwargs.n={VAL_SAMPLES}")
START = "start"  # the shared start validation's run directory, next to the runs'


def end_validation(steps: int) -> list[str]:
    """verl's validation after the last of ``steps`` steps only, on ``VAL_PROMPTS`` x ``VAL_SAMPLES`` (the start is
    validated once for all runs: ``start_validation``)."""
    return ["trainer.val_before_train=false", f"trainer.test_freq={steps}", *HELD_OUT]


def validation_overrides(overrides: list[str]) -> list[str]:
    """``end_validation`` for the run ``overrides`` make; the user's ``overrides`` come last and win."""
    return [*end_validation(int(compose_run([*overrides]).trainer.total_training_steps)), *overrides]


def start_validation(overrides: list[str], run_dir: str) -> Job:
    """verl's validation of the initial weights on the held-out prompts and nothing else (``trainer.val_only``),
    logged as step 0 in ``run_dir``. Every method starts from the same weights and, at a seed, the same held-out
    prompts, so one validation serves all the runs of a seed (the runs skip their own: ``validation_overrides``)."""
    own = [selection("grpo"), "trainer.val_before_train=true", "trainer.val_only=true", *HELD_OUT]
    run_dir = os.path.abspath(run_dir)
    return Job(START, (*own, *overrides, f"entropy_verl.run_dir={run_dir}"), run_dir, 0)


def pass_at_k_table(results: dict[str, list[dict]]) -> str:
    """pass@k and distinct correct answers per prompt at each run's first and last validation (the shared start is
    a run of its own, ``START``, with its one validation)."""
    lines = []
    for label, rows in results.items():
        validations = [r for r in rows if pass_at_values(r)]
        if not validations:
            continue
        ks = sorted(pass_at_values(validations[0]))
        if not lines:
            lines.append(f"{'run':<10}{'step':>5}" + "".join(f"{f'pass@{k}':>9}" for k in ks) + f"{'distinct':>10}")
        for r in (validations[0], validations[-1]) if len(validations) > 1 else validations:
            cells = "".join(f"{r.get(pass_at(k), float('nan')):>9.3f}" for k in ks)
            lines.append(f"{label:<10}{r['step']:>5}{cells}{r.get(DISTINCT_CORRECT, float('nan')):>10.2f}")
    return "\n".join(lines)


def side_by_side(results: dict[str, list[dict]], targets: dict[str, float], window: int = 10) -> str:
    results = {label: [r for r in rows if ENTROPY in r] for label, rows in results.items()}  # training steps only
    lines = [f"{'run':<10}{'phase':<8}{'steps':>9}{'entropy':>10}{'reward':>9}"]
    for label, rows in results.items():
        entropy = entropy_key(rows)  # the token mean (verl's actor/entropy follows the loss_agg_mode)
        for phase in summarize(rows, keys=(entropy, REWARD), window=window):
            lines.append(
                f"{label:<10}{phase.name:<8}{phase.first_step:>4}-{phase.last_step:<4}"
                f"{phase.values[entropy]:>10.3f}{phase.values[REWARD]:>9.3f}"
            )
    lines.append("")
    for label, rows in results.items():
        entropy, last_third = entropy_key(rows), rows[len(rows) * 2 // 3 :]
        step_time = window_mean(rows[1:], STEP_TIME)  # step 1 includes warm-up
        start, end = window_mean(rows[:window], entropy), window_mean(rows[-window:], entropy)
        line = (
            f"{label}: mean step {step_time:.2f}s; entropy end/start {end / start:.2f} ({window}-step means); "
            f"last third mean {window_mean(last_third, entropy):.3f}"
        )
        if label in targets:
            target = targets[label]
            windows = [
                window_mean(last_third[i : i + window], entropy) for i in range(max(1, len(last_third) - window + 1))
            ]
            worst_window = max(abs(w - target) / target for w in windows)
            worst_step = max(abs(r[entropy] - target) / target for r in last_third)
            line += (
                f" (target {target}; worst {window}-step mean off by {worst_window:.0%}, "
                f"worst step by {worst_step:.0%})"
            )
        lines.append(line)
    return "\n".join(lines)


def main(overrides: list[str]) -> None:
    jobs, targets, user = [], {}, list(overrides)
    overrides = validation_overrides(overrides)
    for label, name in RUNS:
        run_overrides = (selection(name), *overrides)
        config = compose_run(list(run_overrides))
        pi = OmegaConf.select(config, "entropy_verl.controllers.pi")
        if pi is not None:
            targets[label] = float(pi.target_entropy)
        prompts, samples = config.data.val_max_samples, config.actor_rollout_ref.rollout.val_kwargs.n
        run_dir = os.path.abspath(config.entropy_verl.run_dir)
        jobs.append(Job(label, run_overrides, run_dir, int(config.trainer.total_training_steps)))
    start = time.time()
    shared = start_validation(user, os.path.join(os.path.dirname(jobs[0].run_dir), START))
    print(f"[entropy_verl] the initial weights on {prompts} held-out prompts x {samples} samples, once for both runs")
    run_parallel([shared], at_once=1)
    print(f"[entropy_verl] {' and '.join(job.label for job in jobs)} side by side; driver logs: <run dir>/driver.log")
    run_parallel(jobs, at_once=len(jobs))
    results = {job.label: load_metrics(job.run_dir) for job in (shared, *jobs)}
    print(
        f"\n[entropy_verl] the start validation and both runs finished in {time.time() - start:.0f}s; run "
        "directories: " + ", ".join(job.run_dir for job in (shared, *jobs))
    )
    print("\n[entropy_verl] GRPO vs EntroPIC on the embedded default (10-step means; the runs shared the CPU)")
    print(side_by_side({job.label: results[job.label] for job in jobs}, targets))
    print(f"\n[entropy_verl] held-out prompts ({prompts} x {samples} samples), before and after training")
    print(pass_at_k_table(results))


if __name__ == "__main__":
    main(sys.argv[1:])
