"""``python -m entropy_verl.tools.law RUN_DIR [RUN_DIR ...]``: the entropy-performance law R = -a * exp(H) + b
(``diagnostics/entropy_law.py``) fitted offline to finished runs, one row per run, from their ``metrics.jsonl``.

Each validation gives one (entropy, validation reward) pair. entropy_verl runs log the exact pair the online fit used
(``entropy_law/entropy``, ``entropy_law/reward``), so the offline fit of a whole run equals its last online
``entropy_law/a, b``. Other verl runs (GPU runs without entropy_verl included) fall back to ``actor/entropy`` and the
validation reward mean verl logs (``val-core|val-aux/<data source>/reward/mean@<n>``; pick one with ``--reward-key``
when several data sources were validated).

``--fit-first K`` fits on each run's first K pairs only and reports how well that predicts the later validations
(the paper's use: predicting the end of a run from its start). ``--out law.png`` draws reward against entropy with
the fitted curves.
"""

from __future__ import annotations

import argparse

from entropy_verl.diagnostics.entropy_law import fit_entropy_law, prediction_rmse
from entropy_verl.diagnostics.run_summary import run_label
from entropy_verl.metric_names import ENTROPY, LAW_ENTROPY, LAW_REWARD, is_verl_val_reward
from entropy_verl.run_state import load_metrics


def reward_key(rows: list[dict], requested: str | None = None) -> str:
    """The validation-reward key of a run: ``requested``, else the pair entropy_verl logged, else verl's own mean."""
    if requested:
        return requested
    keys = set().union(*rows) if rows else set()
    if LAW_REWARD in keys:
        return LAW_REWARD
    found = sorted(k for k in keys if is_verl_val_reward(k))
    if len(found) != 1:
        raise ValueError(
            "cannot tell the validation reward key "
            f"({'candidates: ' + ', '.join(found) if found else 'the run never validated'}); "
            "pass --reward-key"
        )
    return found[0]


def law_pairs(
    rows: list[dict], reward: str | None = None, entropy: str | None = None
) -> tuple[list[float], list[float]]:
    """(entropies, rewards) of every row that validated, in step order."""
    reward = reward_key(rows, reward)
    entropy = entropy or (LAW_ENTROPY if reward == LAW_REWARD else ENTROPY)
    pairs = [
        (row[entropy], row[reward])
        for row in rows
        if isinstance(row.get(reward), (int, float)) and isinstance(row.get(entropy), (int, float))
    ]
    return [h for h, _ in pairs], [r for _, r in pairs]


def fit_run(
    rows: list[dict], fit_first: int | None = None, reward: str | None = None, entropy: str | None = None
) -> dict:
    entropies, rewards = law_pairs(rows, reward, entropy)
    k = len(entropies) if fit_first is None else fit_first
    fit = fit_entropy_law(entropies[:k], rewards[:k])
    result = {"pairs": len(entropies), "fit": fit, "entropies": entropies, "rewards": rewards}
    if fit is not None and k < len(entropies):
        result["held_out_rmse"] = prediction_rmse(fit, entropies[k:], rewards[k:])
        result["last_predicted"], result["last_measured"] = fit.predict(entropies[-1]), rewards[-1]
    return result


def format_table(fits: dict[str, dict], fit_first: int | None) -> str:
    head = "| run | pairs | a | b | ceiling b - a | rmse (fit) |"
    rule = "|---|---:|---:|---:|---:|---:|"
    if fit_first is not None:
        head += f" rmse (after pair {fit_first}) | last reward: predicted / measured |"
        rule += "---:|---:|"
    lines = [head, rule]
    for name, r in fits.items():
        fit = r["fit"]
        if fit is None:
            lines.append(f"| {name} | {r['pairs']} | - | - | - | - |" + (" - | - |" if fit_first is not None else ""))
            continue
        line = f"| {name} | {r['pairs']} | {fit.a:.4f} | {fit.b:.4f} | {fit.ceiling:.4f} | {fit.rmse:.4f} |"
        if fit_first is not None:
            line += (
                f" {r['held_out_rmse']:.4f} | {r['last_predicted']:.3f} / {r['last_measured']:.3f} |"
                if "held_out_rmse" in r
                else " - | - |"
            )
        lines.append(line)
    return "\n".join(lines) + "\n"


def plot_fits(fits: dict[str, dict], out: str) -> str:
    from entropy_verl.tools.plot import new_figure, save_figure

    fig, ax, colors = new_figure(1, (6, 4))
    for i, (name, r) in enumerate(fits.items()):
        color = colors[i % len(colors)]
        ax.plot(r["entropies"], r["rewards"], "o", color=color, label=name)
        if r["fit"] is not None and r["entropies"]:
            lo, hi = min(r["entropies"]), max(r["entropies"])
            grid = [lo + (hi - lo) * j / 49 for j in range(50)]
            ax.plot(grid, [r["fit"].predict(h) for h in grid], "-", color=color, alpha=0.7)
    ax.set(xlabel="policy entropy H (nats)", ylabel="validation reward R", title="R = -a exp(H) + b")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, out)


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(prog="python -m entropy_verl.tools.law", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories (or metrics.jsonl files)")
    parser.add_argument(
        "--fit-first", type=int, help="fit on the first K validations only; report the rest as held out"
    )
    parser.add_argument("--reward-key", help="validation reward metric (default: see above)")
    parser.add_argument(
        "--entropy-key", help=f"entropy metric (default: {LAW_ENTROPY} with the logged pair, else {ENTROPY})"
    )
    parser.add_argument("--out", help="also draw reward against entropy with the fits (PNG)")
    args = parser.parse_args(argv)
    if args.fit_first is not None and args.fit_first < 1:
        parser.error(f"--fit-first must be >= 1, got {args.fit_first}")
    fits = {}
    for run in args.runs:
        name = run_label(run)
        try:
            fits[name] = fit_run(load_metrics(run), args.fit_first, args.reward_key, args.entropy_key)
        except (ValueError, FileNotFoundError) as e:
            parser.error(f"{run}: {e}")
    print(format_table(fits, args.fit_first), end="")
    if args.out:
        print(plot_fits(fits, args.out))
    return fits


if __name__ == "__main__":
    main()
