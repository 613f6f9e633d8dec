"""``python -m entropy_verl.compare`` (``make compare``): several method configs on the embedded default, same seed
and budget, one after the other through verl's real trainer; then a figure (entropy, reward, pass@k against step,
one line per method) and a Markdown table (entropy and reward at the start and end, pass@1 / pass@n at the last
validation, seconds per step and the overhead against GRPO).

    python -m entropy_verl.compare --methods grpo clip_b nsr --steps 40 -- trainer.test_freq=20

A name is a method (``method/<name>.yaml``) or an experiment (``experiment/<name>.yaml``, a tuned combination).

Arguments after ``--`` are Hydra overrides for every run, on top of ``BUDGET`` (same key: yours wins). Each run writes
``<out>/<name>/metrics.jsonl``; the table goes to ``<out>/results.md`` (numbers in ``results.json``), the figure to
``<out>/compare.png``. The first step's entropy is that of the initial policy (verl measures it on the step's
rollout, before the update), i.e. the "step 0" value.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from tqdm import tqdm

from entropy_verl.diagnostics.run_summary import ENTROPY, REWARD, STEP_TIME, load_metrics, window_mean
from entropy_verl.plot import PASS_AT, plot_runs

BASELINE = "grpo"
DEFAULT_METHODS = ["grpo", "clip_higher", "embedded_entropic", "nsr", "w_reinforce", "top_entropy", "clip_b"]
# the comparison budget on 2 CPU cores (7 methods x 30 steps in under 30 minutes): 16 prompts x 8 samples a step,
# pass@k every 10 steps on 32 validation prompts x 8 samples
BUDGET = [
    "data.train_batch_size=16",
    "trainer.test_freq=10",
    "data.val_max_samples=32",
    "actor_rollout_ref.rollout.val_kwargs.n=8",
]


def merged(defaults: list[str], overrides: list[str]) -> list[str]:
    """``defaults`` then ``overrides``, a key given in both taken from ``overrides`` only."""
    keys = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    return [d for d in defaults if d.split("=", 1)[0].lstrip("+~") not in keys] + overrides


def last_pass_at(rows: list[dict]) -> dict[int, float]:
    for row in reversed(rows):
        found = {int(m.group(1)): row[key] for key in row if (m := PASS_AT.match(key))}
        if found:
            return found
    return {}


def method_row(name: str, rows: list[dict], window: int) -> dict:
    train = [row for row in rows if ENTROPY in row]  # not a validation-only row (val_before_train logs one)
    end = train[-window:]
    passes = last_pass_at(rows)
    n = max(passes, default=None)
    return {
        "method": name,
        "steps": len(train),
        "entropy_start": train[0][ENTROPY],
        "entropy_end": window_mean(end, ENTROPY),
        "reward_start": train[0][REWARD],
        "reward_end": window_mean(end, REWARD),
        "pass@1": passes.get(1, math.nan),
        "pass@n": passes.get(n, math.nan) if n else math.nan,
        "n": n,
        "step_s": window_mean(train[1:], STEP_TIME),
    }  # the first step includes warm-up


def format_table(results: list[dict], window: int) -> str:
    base = next((r for r in results if r["method"] == BASELINE), None)
    n = next((r["n"] for r in results if r.get("n")), "n")
    lines = [
        f"| method | entropy, step 1 | entropy, last {window} | end / start | vs {BASELINE} | reward, last {window} "
        f"| pass@1 | pass@{n} | s / step | vs {BASELINE} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        versus = f"{r['entropy_end'] - base['entropy_end']:+.3f}" if base else "-"
        overhead = f"{r['step_s'] / base['step_s']:.2f}x" if base else "-"
        lines.append(
            f"| {r['method']} | {r['entropy_start']:.3f} | {r['entropy_end']:.3f} | "
            f"{r['entropy_end'] / r['entropy_start']:.2f} | {versus} | {r['reward_end']:.3f} | "
            f"{r.get('pass@1', math.nan):.3f} | {r.get('pass@n', math.nan):.3f} | {r['step_s']:.2f} | {overhead} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    argv = list(sys.argv[1:] if argv is None else argv)
    user = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m entropy_verl.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--methods",
        nargs="+",
        default=DEFAULT_METHODS,
        help="methods or experiments (trainer_configs/method/, experiment/)",
    )
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--window", type=int, default=5, help="steps averaged for the 'end' values")
    parser.add_argument("--out", default="outputs/compare")
    parser.add_argument("--no-budget", action="store_true", help="do not apply BUDGET (use the configs' own sizes)")
    parser.add_argument(
        "--from-runs",
        action="store_true",
        help="train nothing: redraw the figure and table from the runs already in --out/<name>",
    )
    args = parser.parse_args(argv)
    overrides = merged([] if args.no_budget else BUDGET, user)
    from entropy_verl.main import selection

    for name in args.methods:  # a typo in the 7th name must not wait for 6 runs
        try:
            selection(name)
        except ValueError as exc:
            parser.error(str(exc))
    out = os.path.abspath(args.out)
    if args.from_runs:
        missing = [name for name in args.methods if not os.path.isdir(os.path.join(out, name))]
        if missing:
            parser.error(f"--from-runs: no run directory for {missing} in {out}")
        previous = os.path.join(out, "results.json")
        if os.path.exists(previous):  # the overrides the runs were made with, for results.md
            with open(previous) as f:
                overrides = json.load(f).get("overrides", overrides)
    else:
        from entropy_verl.demo import run_config

        for name in tqdm(args.methods, desc="methods", unit="run"):
            run_config(
                name,
                [
                    *overrides,
                    f"trainer.total_training_steps={args.steps}",
                    f"entropy_verl.run_dir={os.path.join(out, name)}",
                ],
            )
    runs = {name: load_metrics(os.path.join(out, name)) for name in args.methods}
    results = [method_row(name, rows, args.window) for name, rows in runs.items()]
    os.makedirs(out, exist_ok=True)
    steps = max(r["steps"] for r in results)
    figure = plot_runs(runs, os.path.join(out, "compare.png"), title=f"{steps} steps, same seed")
    table = format_table(results, args.window)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(
            f"# Method comparison on the embedded default\n\n{steps} steps each, same seed. Overrides: "
            f"{' '.join(overrides) or 'none'}\n\n![compare](compare.png)\n\n{table}"
        )
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"steps": steps, "window": args.window, "overrides": overrides, "results": results}, f, indent=1)
    print(table)
    print(f"figure: {figure}")
    return results


if __name__ == "__main__":
    main()
