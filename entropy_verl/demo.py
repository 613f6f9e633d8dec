"""``python -m entropy_verl.demo`` (``make demo``): GRPO and EntroPIC back to back on the embedded default, same seed
and budget, then a side-by-side summary of entropy and reward at the start, middle and end of each run.

Extra arguments are Hydra overrides applied to both runs, e.g.
``python -m entropy_verl.demo trainer.total_training_steps=20``.
"""

from __future__ import annotations

import sys

import ray
from omegaconf import OmegaConf

from entropy_verl.diagnostics.run_summary import ENTROPY, REWARD, STEP_TIME, load_metrics, summarize, window_mean
from entropy_verl.main import compose_run, run, selection

RUNS = (("GRPO", "grpo"), ("EntroPIC", "embedded_entropic"))  # a method or an experiment each


def run_config(name: str, overrides: list[str]) -> str:
    """Run the method or experiment ``name`` with Hydra ``overrides``; returns its run directory."""
    try:
        return run(compose_run([selection(name), *overrides]))
    finally:
        ray.shutdown()  # each run starts its own Ray with its own runtime env (metrics file, ...)


def side_by_side(results: dict[str, list[dict]], targets: dict[str, float], window: int = 10) -> str:
    lines = [f"{'run':<10}{'phase':<8}{'steps':>9}{'entropy':>10}{'reward':>9}"]
    for label, rows in results.items():
        for phase in summarize(rows, window=window):
            lines.append(
                f"{label:<10}{phase.name:<8}{phase.first_step:>4}-{phase.last_step:<4}"
                f"{phase.values[ENTROPY]:>10.3f}{phase.values[REWARD]:>9.3f}"
            )
    lines.append("")
    for label, rows in results.items():
        last_third = rows[len(rows) * 2 // 3 :]
        step_time = window_mean(rows[1:], STEP_TIME)  # step 1 includes warm-up
        start, end = window_mean(rows[:window], ENTROPY), window_mean(rows[-window:], ENTROPY)
        line = (
            f"{label}: mean step {step_time:.2f}s; entropy end/start {end / start:.2f} ({window}-step means); "
            f"last third mean {window_mean(last_third, ENTROPY):.3f}"
        )
        if label in targets:
            target = targets[label]
            windows = [
                window_mean(last_third[i : i + window], ENTROPY) for i in range(max(1, len(last_third) - window + 1))
            ]
            worst_window = max(abs(w - target) / target for w in windows)
            worst_step = max(abs(r[ENTROPY] - target) / target for r in last_third)
            line += (
                f" (target {target}; worst {window}-step mean off by {worst_window:.0%}, "
                f"worst step by {worst_step:.0%})"
            )
        lines.append(line)
    return "\n".join(lines)


def main(overrides: list[str]) -> None:
    results, targets = {}, {}
    for label, name in RUNS:
        run_dir = run_config(name, overrides)
        results[label] = load_metrics(run_dir)
        pi = OmegaConf.select(compose_run([selection(name), *overrides]), "entropy_verl.controllers.pi")
        if pi is not None:
            targets[label] = float(pi.target_entropy)
    print("\n[entropy_verl] GRPO vs EntroPIC on the embedded default (10-step means)")
    print(side_by_side(results, targets))


if __name__ == "__main__":
    main(sys.argv[1:])
