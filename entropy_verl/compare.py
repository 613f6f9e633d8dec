"""``python -m entropy_verl.compare``: several method configs on the embedded default, same seed and budget, one after
the other through verl's real trainer, then a Markdown table of where each method's entropy and reward went.

    python -m entropy_verl.compare --methods embedded_grpo clip_b nsr --steps 15 -- data.train_batch_size=16

Arguments after ``--`` are Hydra overrides applied to every run. Each run writes its own ``<out>/<config>/metrics.jsonl``;
the table goes to ``<out>/results.md`` and the numbers to ``<out>/results.json``. The first step's entropy is that of
the initial policy (verl measures it on the step's rollout, before the update), so it is the "step 0" value.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from tqdm import tqdm

from entropy_verl.diagnostics.run_summary import (
    ENTROPY,
    REWARD,
    STEP_TIME,
    load_metrics,
    window_mean,
)

BASELINE = "embedded_grpo"


def method_row(name: str, rows: list[dict], window: int) -> dict:
    end = rows[-window:]
    return {"config": name, "steps": len(rows), "entropy_start": rows[0][ENTROPY], "entropy_end": window_mean(end, ENTROPY),
            "reward_start": rows[0][REWARD], "reward_end": window_mean(end, REWARD),
            "step_s": window_mean(rows[1:], STEP_TIME)}  # the first step includes warm-up


def format_table(results: list[dict], window: int) -> str:
    base = next((r for r in results if r["config"] == BASELINE), None)
    lines = [f"| config | entropy, step 1 | entropy, last {window} steps | end / start | vs {BASELINE} (end) | "
             f"reward, step 1 | reward, last {window} steps | s / step |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        versus = f"{r['entropy_end'] - base['entropy_end']:+.3f}" if base else "-"
        lines.append(f"| {r['config']} | {r['entropy_start']:.3f} | {r['entropy_end']:.3f} | "
                     f"{r['entropy_end'] / r['entropy_start']:.2f} | {versus} | {r['reward_start']:.3f} | "
                     f"{r['reward_end']:.3f} | {r['step_s']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m entropy_verl.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=[BASELINE], help="config names in trainer_configs/")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--window", type=int, default=5, help="steps averaged for the 'end' values")
    parser.add_argument("--out", default="outputs/compare")
    args = parser.parse_args(argv)

    from entropy_verl.demo import run_config

    out = os.path.abspath(args.out)
    results = []
    for name in tqdm(args.methods, desc="methods", unit="run"):
        run_dir = run_config(name, [*overrides, f"trainer.total_training_steps={args.steps}",
                                    f"entropy_verl.run_dir={os.path.join(out, name)}"])
        results.append(method_row(name, load_metrics(run_dir), args.window))
    os.makedirs(out, exist_ok=True)
    table = format_table(results, args.window)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(f"# Method comparison on the embedded default\n\n{args.steps} steps each, same seed. Overrides: "
                f"{' '.join(overrides) or 'none'}\n\n{table}")
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"steps": args.steps, "window": args.window, "overrides": overrides, "results": results}, f, indent=1)
    print(table)
    return results


if __name__ == "__main__":
    main()
