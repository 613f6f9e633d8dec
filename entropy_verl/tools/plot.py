"""``python -m entropy_verl.tools.plot RUN_DIR [RUN_DIR ...] --out figure.png``: entropy, reward and pass@k against
step, one line per run, from any runs' ``metrics.jsonl`` (verl's file logger; CPU or GPU runs alike).

Panels: token entropy (the token mean, ``metric_names.entropy_key``) and training reward (``critic/score/mean``),
both smoothed over ``--smooth`` steps, and the validation pass@k curves entropy_verl logs (``val/pass@1`` solid,
``val/pass@<n>`` dashed) when the runs validated. A run is labelled by its directory name unless ``--labels`` are given.
"""

from __future__ import annotations

import argparse
import os

from entropy_verl.diagnostics.run_summary import run_label
from entropy_verl.metric_names import REWARD, entropy_key, pass_at, pass_at_k_of, pass_at_values
from entropy_verl.run_state import load_metrics
from entropy_verl.tools.intervals import mean_interval


def series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(row["step"], row[key]) for row in rows if isinstance(row.get(key), (int, float))]
    return [s for s, _ in points], [v for _, v in points]


def smoothed(values: list[float], window: int) -> list[float]:
    """Trailing mean over ``window`` points (fewer at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def pass_at_keys(rows: list[dict]) -> list[str]:
    ks = sorted({k for row in rows for k in pass_at_values(row)})
    return [pass_at(k) for k in (ks[:1] + ks[-1:] if len(ks) > 1 else ks)]


def new_figure(ncols: int, figsize: tuple[float, float]):
    """(figure, axes, colour cycle) drawn off-screen (no display on cluster nodes or CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=figsize, constrained_layout=True)
    return fig, axes, plt.rcParams["axes.prop_cycle"].by_key()["color"]


def save_figure(fig, out: str) -> str:
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def across_seeds(
    curves: list[tuple[list[int], list[float]]],
) -> tuple[list[int], list[float], list[float], list[float]]:
    """(steps, mean, low, high) over the ``(steps, values)`` curves of one method's seeds, per step over the curves
    that have it (a seed cut short still counts where it ran): low and high are the mean -/+ the half-width of its
    95% Student-t interval over those seeds (``intervals.mean_interval``, the interval of ``compare``'s table), NaN
    where a single seed has the step (matplotlib leaves a gap in the band there)."""
    by_step: dict[int, list[float]] = {}
    for steps, values in curves:
        for step, value in zip(steps, values, strict=True):
            by_step.setdefault(step, []).append(value)
    steps = sorted(by_step)
    intervals = [mean_interval(by_step[step]) for step in steps]
    return steps, [m for m, _ in intervals], [m - h for m, h in intervals], [m + h for m, h in intervals]


def plot_runs(
    runs: dict[str, list[dict]] | dict[str, list[list[dict]]], out: str, smooth: int = 5, title: str | None = None
) -> str:
    """Write the figure for ``{label: metric rows}`` to ``out`` (PNG); returns ``out``. One colour per run, named in
    a single legend on the right; entropy and reward are trailing ``smooth``-step means (per-step values are noisy).
    A label given a list of row lists (one per seed) is drawn as the mean over its seeds with a band of its 95%
    Student-t interval (``across_seeds``)."""
    groups = {label: rows if rows and isinstance(rows[0], list) else [rows] for label, rows in runs.items()}
    has_pass = any(pass_at_keys(rows) for group in groups.values() for rows in group)
    fig, axes, colors = new_figure(3 if has_pass else 2, (16 if has_pass else 11, 4))

    def draw(ax, group, key, window, color, style="-", **kwargs):
        steps, mean, low, high = across_seeds([(s, smoothed(v, window)) for s, v in (series(r, key) for r in group)])
        ax.plot(steps, mean, style, color=color, **kwargs)
        if len(group) > 1:
            ax.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)

    for i, (label, group) in enumerate(groups.items()):
        color = colors[i % len(colors)]
        draw(axes[0], group, entropy_key([row for rows in group for row in rows]), smooth, color, label=label)
        draw(axes[1], group, REWARD, smooth, color)
        if has_pass:
            keys = pass_at_keys([row for rows in group for row in rows])
            for key, style in zip(keys, ("-", "--"), strict=False):
                draw(axes[2], group, key, 1, color, style, marker="o", markersize=3)
    axes[0].set(title=f"token entropy (nats, {smooth}-step mean)", xlabel="step")
    axes[1].set(title=f"training reward ({smooth}-step mean)", xlabel="step")
    if has_pass:
        n = max(pass_at_k_of(k) for group in groups.values() for rows in group for k in pass_at_keys(rows))
        axes[2].set(title=f"validation pass@1 (solid) and pass@{n} (dashed)", xlabel="step")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, out)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m entropy_verl.tools.plot", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories (or metrics.jsonl files)")
    parser.add_argument("--labels", nargs="+", help="one label per run (default: directory names)")
    parser.add_argument("--out", default="outputs/plot.png")
    parser.add_argument("--smooth", type=int, default=5)
    parser.add_argument("--title")
    args = parser.parse_args(argv)
    if args.labels and len(args.labels) != len(args.runs):
        parser.error(f"{len(args.labels)} labels for {len(args.runs)} runs")
    labels = args.labels or [run_label(r) for r in args.runs]
    out = plot_runs(
        {label: load_metrics(run) for label, run in zip(labels, args.runs, strict=True)},
        args.out,
        args.smooth,
        args.title,
    )
    print(out)
    return out


if __name__ == "__main__":
    main()
