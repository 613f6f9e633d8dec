"""``python -m entropy_verl.tools.compare`` (``make compare``): several method configs on the embedded default,
same seeds and budget, one after the other through verl's real trainer; then a figure (entropy, reward, pass@k
against step, one line per method) and a Markdown table (entropy and reward at the start and end, pass@1 / pass@n at
the last validation, seconds per step and the overhead against GRPO).

    python -m entropy_verl.tools.compare --methods grpo clip_b nsr --steps 40 -- trainer.test_freq=20
    python -m entropy_verl.tools.compare --methods grpo nsr --seeds 1 2 3   # each method at each seed

A name is a method (``method/<name>.yaml``) or an experiment (``experiment/<name>.yaml``, a tuned combination).

Arguments after ``--`` are Hydra overrides for every run, on top of ``BUDGET`` (same key: yours wins). Each run writes
``<out>/<name>/metrics.jsonl``; the table goes to ``<out>/results.md`` (numbers in ``results.json``), the figure to
``<out>/compare.png``. The first step's entropy is that of the initial policy (verl measures it on the step's
rollout, before the update), i.e. the "step 0" value.

``--seeds`` (default: the config's own seeds, one run per method) sets every seed of the run config (``SEED_KEYS``:
data order, rollout sampling, mini-batch order) from each given seed. With several seeds each run writes
``<out>/<name>/seed<k>/``, all methods run at the first seed before any runs at the second (an interrupted comparison
still compares every method), the table gives each value as mean ± the half-width of its 95% Student-t interval over
the seeds and each method's difference to GRPO with Welch's 95% interval ("holds" when it excludes 0), and the figure
draws the mean over the seeds with a band of the same 95% Student-t interval as the table's.

``--runs NAME=DIR ...`` trains nothing: it compares finished runs wherever they were made (``launch/sweep`` on a
cluster, earlier local runs), one row per NAME, each DIR a run directory or a glob of them (quote it)::

    python -m entropy_verl.tools.compare --runs 'grpo=runs/entropy_verl/zoo-*-method_grpo-*' \
        'clip_b=runs/entropy_verl/zoo-*-method_clip_b-*' --out outputs/compare_runs

A run's seed is the ``data.seed`` of the config it saved (``<dir>/.hydra/config.yaml``, else a ``data.seed=`` in
``.hydra/overrides.yaml``). A method that shares two seeds or more with the baseline (``--baseline``, default GRPO)
is compared on those seeds, paired: the mean of its per-seed differences with their Student-t interval; any other
with Welch's interval. docs/compare-runs.md is the how-to.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import sys
from typing import NamedTuple

import yaml

from entropy_verl.diagnostics.run_summary import window_mean
from entropy_verl.main import selection
from entropy_verl.metric_names import ENTROPY, REWARD, STEP_TIME, entropy_key, pass_at_values
from entropy_verl.resolvers import override_key
from entropy_verl.run_state import METRICS_FILE, load_metrics, segments
from entropy_verl.tools.intervals import LEVEL, holds, mean_interval, paired_interval, welch_interval
from entropy_verl.tools.plot import plot_runs

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
    keys = {override_key(o) for o in overrides}
    return [d for d in defaults if override_key(d) not in keys] + overrides


def last_pass_at(rows: list[dict]) -> dict[int, float]:
    for row in reversed(rows):
        found = pass_at_values(row)
        if found:
            return found
    return {}


def method_row(name: str, rows: list[dict], window: int) -> dict:
    train = [row for row in rows if ENTROPY in row]  # not a validation-only row (val_before_train logs one)
    end, entropy = train[-window:], entropy_key(rows)
    passes = last_pass_at(rows)
    n = max(passes, default=None)
    entropy_end = window_mean(end, entropy)
    return {
        "method": name,
        "steps": len(train),
        "entropy_start": train[0][entropy],
        "entropy_end": entropy_end,
        "entropy_ratio": entropy_end / train[0][entropy],
        "reward_start": train[0][REWARD],
        "reward_end": window_mean(end, REWARD),
        "pass@1": passes.get(1, math.nan),
        "pass@n": passes.get(n, math.nan) if n else math.nan,
        "n": n,
        "step_s": window_mean(train[1:], STEP_TIME),
    }  # the first step includes warm-up


def format_table(results: list[dict], window: int, baseline: str = BASELINE) -> str:
    base = next((r for r in results if r["method"] == baseline), None)
    n = next((r["n"] for r in results if r.get("n")), "n")
    lines = [
        f"| method | entropy, step 1 | entropy, last {window} | end / start | vs {baseline} | reward, last {window} "
        f"| pass@1 | pass@{n} | s / step | vs {baseline} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        versus = f"{r['entropy_end'] - base['entropy_end']:+.3f}" if base else "-"
        overhead = f"{r['step_s'] / base['step_s']:.2f}x" if base else "-"
        lines.append(
            f"| {r['method']} | {r['entropy_start']:.3f} | {r['entropy_end']:.3f} | "
            f"{r['entropy_ratio']:.2f} | {versus} | {r['reward_end']:.3f} | "
            f"{r.get('pass@1', math.nan):.3f} | {r.get('pass@n', math.nan):.3f} | {r['step_s']:.2f} | {overhead} |"
        )
    return "\n".join(lines) + "\n"


# ---- several seeds: the table ----------------------------------------------------------------------------------

# the table's columns with several seeds: (key in method_row, header, decimals)
COLUMNS = [
    ("entropy_start", "entropy, step 1", 3),
    ("entropy_end", "entropy, last {window}", 3),
    ("entropy_ratio", "end / start", 2),
    ("reward_end", "reward, last {window}", 3),
    ("pass@1", "pass@1", 3),
    ("pass@n", "pass@{n}", 3),
    ("step_s", "s / step", 2),
]


def seed_summaries(per_method: dict[str, list[dict]], baseline: str = BASELINE, columns=None) -> dict[str, dict]:
    """Per method, from its seeds' rows (``method_row``s): each column's mean and half-width, and (``vs_<baseline>``)
    its difference to ``baseline`` with its half-width and whether it holds (none when the baseline did not run), by
    the interval ``interval`` names: a method that shares two seeds or more with the baseline is compared
    on those seeds by ``paired_interval`` of its per-seed differences; otherwise by Welch's over all the runs.
    ``columns``: (key, header, decimals) of the row keys to summarise (default ``COLUMNS``)."""
    columns = COLUMNS if columns is None else columns
    base, versus = per_method.get(baseline), f"vs_{baseline}"
    summaries = {}
    for name, rows in per_method.items():
        summary: dict = {"seeds": [r.get("seed") for r in rows], "mean": {}, "half": {}}
        for key, _, _ in columns:
            summary["mean"][key], summary["half"][key] = mean_interval([r[key] for r in rows])
        if base is not None and name != baseline:
            shared = shared_seeds(rows, base)
            paired_here = len(shared) > 1
            summary["interval"] = (
                {"kind": "paired", "seeds": shared}
                if paired_here
                else {"kind": "welch", "runs": [len(rows), len(base)]}
            )
            summary[versus] = {}
            for key, _, _ in columns:
                diff, half = difference(rows, base, key, shared if paired_here else [])
                summary[versus][key] = {"diff": diff, "half": half, "holds": holds(diff, half)}
        summaries[name] = summary
    return summaries


def shared_seeds(rows: list[dict], base: list[dict]) -> list[int]:
    """The known seeds at which both a method's runs and the baseline's ran, in order."""
    return sorted({r["seed"] for r in rows} & {r["seed"] for r in base} - {None})


def difference(rows: list[dict], base: list[dict], key: str, shared: list[int]) -> tuple[float, float]:
    """A column's difference to the baseline and its half-width: ``paired_interval`` of the per-seed differences at
    the ``shared`` seeds, or, none given, Welch's interval over all the runs."""
    if not shared:
        return welch_interval([r[key] for r in rows], [r[key] for r in base])
    mine, theirs = ({r["seed"]: r[key] for r in runs} for runs in (rows, base))
    return paired_interval([mine[seed] - theirs[seed] for seed in shared])


def interval_label(summary: dict) -> str:
    """How a method was compared to the baseline: ``paired (3 seeds)`` or ``Welch (3 vs 2 runs)``."""
    interval = summary["interval"]
    if interval["kind"] == "paired":
        return f"paired ({len(interval['seeds'])} seeds)"
    return f"Welch ({interval['runs'][0]} vs {interval['runs'][1]} runs)"


def estimate(value: float, half: float, decimals: int, sign: str = "") -> str:
    """``value ± half``, or the value alone when there is no interval (one seed)."""
    text = f"{value:{sign}.{decimals}f}"
    return text if math.isnan(half) else f"{text} ± {half:.{decimals}f}"


def format_seed_tables(per_method: dict[str, list[dict]], window: int, baseline: str = BASELINE, columns=None) -> str:
    """Two Markdown tables from each method's per-seed ``method_row``s: the values (mean ± 95% half-width), then the
    differences to ``baseline`` with their verdict (a column says which interval each row has: ``seed_summaries``);
    the notes under them say how to read them. ``columns`` as in ``seed_summaries``."""
    columns = COLUMNS if columns is None else columns
    summaries = seed_summaries(per_method, baseline, columns)
    n = next((r["n"] for rows in per_method.values() for r in rows if r.get("n")), "n")
    headers = " | ".join(header.format(window=window, n=n) for _, header, _ in columns)
    lines = [f"| method | seeds | {headers} |", "|---|---:|" + "---:|" * len(columns)]
    for name, s in summaries.items():
        cells = [estimate(s["mean"][key], s["half"][key], decimals) for key, _, decimals in columns]
        lines.append(f"| {name} | {len(s['seeds'])} | {' | '.join(cells)} |")
    lines.append(
        f"\nMean over the seeds ± the half-width of its {LEVEL:.0%} Student-t interval (n - 1 degrees of freedom)."
    )
    versus = {name: s for name, s in summaries.items() if f"vs_{baseline}" in s}
    if not versus:
        return "\n".join(lines) + "\n"
    lines += [f"\n| method − {baseline} | interval | {headers} |", "|---|---|" + "---:|" * len(columns)]
    for name, summary in versus.items():
        diffs = summary[f"vs_{baseline}"]
        cells = [interval_label(summary)]
        for key, _, decimals in columns:
            d = diffs[key]
            verdict = "" if math.isnan(d["half"]) else " holds" if d["holds"] else " within noise"
            cells.append(estimate(d["diff"], d["half"], decimals, "+") + verdict)
        lines.append(f"| {name} | {' | '.join(cells)} |")
    lines.append(
        f"\nDifference to {baseline} ± the half-width of its {LEVEL:.0%} interval; **holds**: the interval "
        "excludes 0, **within noise**: it does not (no verdict without an interval). **paired (n seeds)**: the "
        f"method and {baseline} both ran these n seeds (a run's seed: `data.seed` of its saved config, or "
        "`--seeds`); the difference is the mean of the per-seed differences with their Student-t interval (n - 1 "
        "degrees of freedom), so what a seed gives both runs (data order, rollout seed) cancels. **Welch**: fewer "
        "than 2 seeds in common (or seeds unknown): the difference of the means over all the runs with Welch's "
        "interval."
    )
    return "\n".join(lines) + "\n"


# ---- the runs ------------------------------------------------------------------------------------------------------

# every seed in the composed run config (tests/test_compare.py checks this list against it): with one left out, two
# "seeds" of a method would share that randomness (the critic's and reward model's are unused by these methods, but
# set all the same so that no key is left at the config's value)
SEED_KEYS = (
    "data.seed",  # train data order, and entropy_verl's driver-side token selections
    "actor_rollout_ref.rollout.seed",  # the rollout server's sampling
    "actor_rollout_ref.actor.data_loader_seed",  # mini-batch order within a step
    "actor_rollout_ref.actor.fsdp_config.seed",
    "actor_rollout_ref.ref.fsdp_config.seed",
    "critic.data_loader_seed",
    "critic.fsdp.seed",
    "reward.reward_model.rollout.seed",
)


def seed_overrides(seed: int | None) -> list[str]:
    """The Hydra overrides that make ``seed`` every seed of a run; none for ``None`` (the config's own seeds)."""
    return [] if seed is None else [f"{key}={seed}" for key in SEED_KEYS]


class PlannedRun(NamedTuple):
    name: str
    seed: int | None
    run_dir: str
    overrides: list[str]


def planned_runs(
    methods: list[str], seeds: list[int | None], overrides: list[str], steps: int, out: str
) -> list[PlannedRun]:
    """One run per (seed, method), seeds outer: an interrupted comparison has every method at its first seeds. One
    seed keeps the layout ``<out>/<name>/``; several put each run in ``<out>/<name>/seed<k>/``."""
    runs = []
    for seed in seeds:
        for name in methods:
            run_dir = os.path.join(out, name) if len(seeds) == 1 else os.path.join(out, name, f"seed{seed}")
            runs.append(
                PlannedRun(
                    name,
                    seed,
                    run_dir,
                    [
                        *overrides,
                        *seed_overrides(seed),
                        f"trainer.total_training_steps={steps}",
                        f"entropy_verl.run_dir={run_dir}",
                    ],
                )
            )
    return runs


# ---- runs made elsewhere: --runs NAME=DIR ---------------------------------------------------------------------------


def is_run_dir(path: str) -> bool:
    """A directory with verl's metrics in it (``metrics.jsonl``, or the segments of a resumed run)."""
    return os.path.isdir(path) and (os.path.exists(os.path.join(path, METRICS_FILE)) or bool(segments(path)))


def run_seed(run_dir: str) -> int | None:
    """The seed a run was made with: ``data.seed`` of the config ``python -m entropy_verl.main`` saved
    (``<run_dir>/.hydra/config.yaml``), else a ``data.seed=`` among its saved overrides (``.hydra/overrides.yaml``);
    None when neither says."""
    found = []
    for name in ("config.yaml", "overrides.yaml"):
        path = os.path.join(run_dir, ".hydra", name)
        if os.path.exists(path):
            with open(path) as f:
                saved = yaml.safe_load(f)
            if isinstance(saved, dict) and isinstance(saved.get("data"), dict):
                found.append(saved["data"].get("seed"))
            elif isinstance(saved, list):
                found += [o.partition("=")[2] for o in saved if isinstance(o, str) and override_key(o) == "data.seed"]
    for value in found:
        try:
            return int(value)
        except (TypeError, ValueError):  # absent, or an interpolation left unresolved
            continue
    return None


def given_runs(specs: list[str]) -> list[PlannedRun]:
    """The runs ``--runs NAME=DIR ...`` names, in the order of the NAMEs (a NAME given twice gathers both) and by seed
    within one: each DIR a run directory or a glob of them (``is_run_dir``; other paths it matches are left out, said
    so), each run's seed from its saved config (``run_seed``). ValueError naming the argument for one without '=', a
    DIR that matches no run directory, or two runs of one NAME at the same seed (which one to pair?)."""
    found: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, pattern = spec.partition("=")
        if not (sep and name and pattern):
            raise ValueError(f"--runs {spec!r}: expected NAME=DIR (DIR a run directory or a glob of them)")
        matches = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
        dirs = [os.path.abspath(path) for path in matches if is_run_dir(path)]
        if not dirs:
            raise ValueError(f"--runs {spec!r}: {pattern!r} matches no run directory (a directory with {METRICS_FILE})")
        if skipped := [path for path in matches if not is_run_dir(path)]:
            print(f"--runs {spec}: not a run directory (no {METRICS_FILE}), left out: {skipped}")
        known = found.setdefault(name, [])
        known += [path for path in dirs if path not in known]
    runs = []
    for name, dirs in found.items():
        seeded = sorted(
            ((run_seed(path), path) for path in dirs), key=lambda run: (run[0] is None, run[0] or 0, run[1])
        )
        seeds = [seed for seed, _ in seeded if seed is not None]
        if twice := sorted({seed for seed in seeds if seeds.count(seed) > 1}):
            raise ValueError(
                f"--runs {name}: more than one run at seed {twice}: "
                f"{[path for seed, path in seeded if seed in twice]}; narrow the glob to one run a seed"
            )
        runs += [PlannedRun(name, seed, path, []) for seed, path in seeded]
    return runs


def main(argv: list[str] | None = None) -> list[dict]:
    argv = list(sys.argv[1:] if argv is None else argv)
    user = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m entropy_verl.tools.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--methods",
        nargs="+",
        help=f"methods or experiments (trainer_configs/method/, experiment/); default: {' '.join(DEFAULT_METHODS)}",
    )
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        help="run each method at each seed (all of SEED_KEYS); default: one run at the config's own seed (42)",
    )
    parser.add_argument("--window", type=int, default=5, help="steps averaged for the 'end' values")
    parser.add_argument("--out", help="default: outputs/compare, with --runs outputs/compare_runs")
    parser.add_argument(
        "--at-once", type=int, default=2, help="runs side by side (each its own Ray; 2 fill 2 cores, see parallel_runs)"
    )
    parser.add_argument("--no-budget", action="store_true", help="do not apply BUDGET (use the configs' own sizes)")
    parser.add_argument(
        "--from-runs",
        action="store_true",
        help="train nothing: redraw the figure and table from the runs already in --out/<name>[/seed<k>]",
    )
    parser.add_argument(
        "--runs",
        nargs="+",
        metavar="NAME=DIR",
        help="train nothing: compare these run directories wherever they were made, one row per NAME; DIR may be a "
        "glob (quote it); a method that shares seeds (data.seed) with the baseline is compared paired",
    )
    parser.add_argument("--baseline", help=f"the row the others are compared to (default: {BASELINE})")
    args = parser.parse_args(argv)
    if args.runs:
        given = {"--methods": args.methods, "--seeds": args.seeds, "--from-runs": args.from_runs, "--": user}
        if clash := [flag for flag, value in given.items() if value]:
            parser.error(f"--runs reads finished runs: {' and '.join(clash)} do not apply")
        try:
            plan = given_runs(args.runs)
        except ValueError as exc:
            parser.error(str(exc))
        baseline = chosen_baseline(parser, args.baseline, [run.name for run in plan])
        out = os.path.abspath(args.out or "outputs/compare_runs")
        results = report(plan, None, [], args.window, out, baseline, given=True)
        print(f"figure: {os.path.join(out, 'compare.png')}")
        return results
    args.methods = args.methods or DEFAULT_METHODS
    overrides = merged([] if args.no_budget else BUDGET, user)
    if args.seeds and len(set(args.seeds)) < len(args.seeds):
        parser.error(f"--seeds {args.seeds}: each seed once")
    if args.seeds and (fixed := [o for o in user if override_key(o) in SEED_KEYS]):
        parser.error(f"--seeds sets every seed key; drop {fixed} from the overrides")

    for name in args.methods:  # a typo in the 7th name must not wait for 6 runs
        try:
            selection(name)
        except ValueError as exc:
            parser.error(str(exc))
    baseline = chosen_baseline(parser, args.baseline, args.methods)
    out = os.path.abspath(args.out or "outputs/compare")
    seeds = args.seeds
    if args.from_runs:
        previous = os.path.join(out, "results.json")
        if os.path.exists(previous):  # the overrides (and seeds) the runs were made with, for results.md
            with open(previous) as f:
                made = json.load(f)
            overrides, seeds = made.get("overrides", overrides), seeds or made.get("seeds")
    plan = planned_runs(args.methods, seeds or [None], overrides, args.steps, out)
    if args.from_runs:
        # an interrupted comparison with several seeds is read as far as it got; a method needs one run at least
        present = [run for run in plan if os.path.isdir(run.run_dir)]
        if without := [name for name in args.methods if name not in {run.name for run in present}]:
            parser.error(f"--from-runs: no run directory for {without} in {out}")
        if left_out := [os.path.relpath(run.run_dir, out) for run in plan if run not in present]:
            print(f"--from-runs: not run, left out: {left_out}")
        plan = present
    else:
        from entropy_verl.tools.parallel_runs import Job, run_parallel

        jobs = [
            Job(
                run.name if run.seed is None else f"{run.name} seed {run.seed}",
                (selection(run.name), *run.overrides),
                os.path.abspath(run.run_dir),
                args.steps,
            )
            for run in plan
        ]
        run_parallel(jobs, at_once=args.at_once)
    results = report(plan, seeds, overrides, args.window, out, baseline)
    print(f"figure: {os.path.join(out, 'compare.png')}")
    return results


def chosen_baseline(parser: argparse.ArgumentParser, baseline: str | None, names: list[str]) -> str:
    """``--baseline``, which must be one of the rows; else ``BASELINE`` (no differences where it is not a row)."""
    if baseline is not None and baseline not in names:
        parser.error(f"--baseline {baseline}: not one of the rows {list(dict.fromkeys(names))}")
    return baseline or BASELINE


def report(
    plan: list[PlannedRun],
    seeds: list[int] | None,
    overrides: list[str],
    window: int,
    out: str,
    baseline: str = BASELINE,
    given: bool = False,
) -> list[dict]:
    """Read the runs of ``plan`` back, write ``results.md``, ``results.json`` and ``compare.png`` to ``out``, print
    the table; returns one ``method_row`` per run (with its ``seed`` when ``--seeds`` set it or, ``given`` (the runs
    of ``--runs``), its saved config says it: those are compared to ``baseline`` paired where they share seeds)."""
    per_method: dict[str, list[dict]] = {run.name: [] for run in plan}  # in the order of --methods
    curves: dict[str, list[list[dict]]] = {run.name: [] for run in plan}
    lengths = {}
    for run in plan:
        rows = load_metrics(run.run_dir)
        curves[run.name].append(rows)
        per_method[run.name].append({**method_row(run.name, rows, window), "seed": run.seed})
        lengths[os.path.relpath(run.run_dir, os.getcwd() if given else out)] = per_method[run.name][-1]["steps"]
    results = [row for rows in per_method.values() for row in rows]
    steps = max(lengths.values())
    if short := [f"{run} ({n} steps)" for run, n in lengths.items() if n < steps]:
        print(f"shorter than {steps} steps (a run cut short?), in the table all the same: {short}")
    several = any(len(rows) > 1 for rows in per_method.values()) if given else seeds is not None and len(seeds) > 1
    band = f"line: mean over the seeds, band: its {LEVEL:.0%} Student-t interval"
    by_name = {name: [run for run in plan if run.name == name] for name in per_method}
    if given:
        listed = "\n".join(
            f"- {name}: " + ", ".join(f"seed {'?' if run.seed is None else run.seed} `{run.run_dir}`" for run in runs)
            for name, runs in by_name.items()
        )
        intro = f"from run directories\n\nUp to {steps} steps; each run's seed from its saved config:\n\n{listed}"
        title = f"up to {steps} steps, runs from their directories" + (f" ({band})" if several else "")
    else:
        if several:
            seeding = f"seeds {', '.join(map(str, seeds))} (each method at each seed)"
            title = f"{steps} steps, {len(seeds)} seeds ({band})"
        else:
            seeding = "same seed" if seeds is None else f"seed {seeds[0]}"
            title = f"{steps} steps, {seeding}"
        intro = f"on the embedded default\n\n{steps} steps each, {seeding}. Overrides: {' '.join(overrides) or 'none'}"
    table = format_seed_tables(per_method, window, baseline) if several else format_table(results, window, baseline)
    os.makedirs(out, exist_ok=True)
    plot_runs(curves, os.path.join(out, "compare.png"), title=title)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(f"# Method comparison {intro}\n\n![compare](compare.png)\n\n{table}")
    summary = {"steps": steps, "window": window, "baseline": baseline, "overrides": overrides, "seeds": seeds}
    if given:
        summary["runs"] = {
            name: [{"dir": run.run_dir, "seed": run.seed} for run in runs] for name, runs in by_name.items()
        }
    summary["results"] = results
    if several:
        summary["summaries"] = seed_summaries(per_method, baseline)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(table)
    return results


if __name__ == "__main__":
    main()
