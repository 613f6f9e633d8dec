"""Summarise a run's metrics (``run_state.load_metrics``) as start / middle / end averages.

Per-step reward on a 32-prompt batch is noisy (about +-0.1 on the embedded default), so each point is a window mean.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from entropy_verl.metric_names import REWARD, entropy_key


def run_label(path: str) -> str:
    """A run's name in tables and legends: its directory's name (given the directory or its metrics file)."""
    return os.path.basename(os.path.normpath(path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))))


@dataclass
class Phase:
    name: str
    first_step: int
    last_step: int
    values: dict[str, float]


def window_mean(rows: list[dict], key: str) -> float:
    values = [row[key] for row in rows if key in row and isinstance(row[key], (int, float))]
    return sum(values) / len(values) if values else math.nan


def summarize(rows: list[dict], keys: tuple[str, ...] | None = None, window: int = 10) -> list[Phase]:
    """Window means of ``keys`` (default: the token-mean entropy, ``entropy_key``, and the reward) at the start,
    middle and end of the run (the first step is excluded from timing-like keys by the caller's choice of keys)."""
    if not rows:
        return []
    keys = keys or (entropy_key(rows), REWARD)
    window = max(1, min(window, len(rows) // 3 or 1))
    mid = max(0, len(rows) // 2 - window // 2)
    spans = [("start", rows[:window]), ("middle", rows[mid : mid + window]), ("end", rows[-window:])]
    return [
        Phase(name, span[0]["step"], span[-1]["step"], {k: window_mean(span, k) for k in keys}) for name, span in spans
    ]


def format_summary(phases: list[Phase]) -> str:
    keys = list(phases[0].values) if phases else []
    header = f"{'phase':<8}{'steps':>10}" + "".join(f"{k:>22}" for k in keys)
    lines = [header]
    for phase in phases:
        steps = f"{phase.first_step}-{phase.last_step}"
        lines.append(f"{phase.name:<8}{steps:>10}" + "".join(f"{phase.values[k]:>22.3f}" for k in keys))
    return "\n".join(lines)
