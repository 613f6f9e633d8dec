"""Read a run's ``metrics.jsonl`` (verl's ``file`` logger) and summarise it as start / middle / end averages.

Per-step reward on a 32-prompt batch is noisy (about +-0.1 on the embedded default), so each point is a window mean.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass

ENTROPY = "actor/entropy"
REWARD = "critic/score/mean"
STEP_TIME = "timing_s/step"


METRICS_FILE = "metrics.jsonl"  # verl's file logger writes here (entropy_verl.main sets VERL_FILE_LOGGER_PATH)
SEGMENT = re.compile(r"^metrics\.(\d+)\.jsonl$")  # earlier launches of a resumed run, oldest first


def segments(run_dir: str) -> list[tuple[int, str]]:
    """(k, path) of the ``metrics.<k>.jsonl`` segments in ``run_dir``, oldest first."""
    found = ((m, name) for name in os.listdir(run_dir) if (m := SEGMENT.match(name)))
    return sorted((int(m.group(1)), os.path.join(run_dir, name)) for m, name in found)


def archive_for_resume(run_dir: str) -> str | None:
    """verl's file logger truncates its file on open, so before a run resumes in ``run_dir`` the metrics of the
    launches so far move to the next ``metrics.<k>.jsonl``; ``load_metrics`` reads them all back. Returns the new
    name."""
    path = os.path.join(run_dir, METRICS_FILE)
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    k = 1 + max((k for k, _ in segments(run_dir)), default=0)
    target = os.path.join(run_dir, f"metrics.{k}.jsonl")
    os.replace(path, target)
    return target


def drop_segments(run_dir: str) -> list[str]:
    """A run starting from scratch in ``run_dir`` (verl truncates ``metrics.jsonl``) must not be read together with
    the segments an earlier, resumed run left there."""
    stale = [path for _, path in segments(run_dir)]
    for path in stale:
        os.remove(path)
    return stale


def run_label(path: str) -> str:
    """A run's name in tables and legends: its directory's name (given the directory or its metrics file)."""
    return os.path.basename(os.path.normpath(path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))))


def _read_jsonl(path: str) -> list[dict]:
    rows = []
    with open(path) as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                rows.append({"step": record["step"], **record["data"]})
    return rows


def load_metrics(path: str) -> list[dict]:
    """Rows ``{"step": int, **metrics}`` in step order from a verl JSONL file, or from a run directory: its
    ``metrics.jsonl`` after the segments that earlier launches of a resumed run left (``archive_for_resume``). A step
    logged twice (re-run after a kill, or a resumed run validating its checkpoint step) is merged, the later values
    winning key by key."""
    if not os.path.isdir(path):
        return _read_jsonl(path)
    files = [segment for _, segment in segments(path)] + [os.path.join(path, METRICS_FILE)]
    files = [f for f in files if os.path.exists(f)]
    if not files:
        raise FileNotFoundError(f"no {METRICS_FILE} in run directory {path}")
    by_step: dict[int, dict] = {}
    for file in files:
        for row in _read_jsonl(file):
            by_step[row["step"]] = {**by_step.get(row["step"], {}), **row}
    return [by_step[step] for step in sorted(by_step)]


@dataclass
class Phase:
    name: str
    first_step: int
    last_step: int
    values: dict[str, float]


def window_mean(rows: list[dict], key: str) -> float:
    values = [row[key] for row in rows if key in row and isinstance(row[key], (int, float))]
    return sum(values) / len(values) if values else math.nan


def summarize(rows: list[dict], keys=(ENTROPY, REWARD), window: int = 10) -> list[Phase]:
    """Window means of ``keys`` at the start, middle and end of the run (the first step is excluded from
    timing-like keys by the caller's choice of keys, not here)."""
    if not rows:
        return []
    window = max(1, min(window, len(rows) // 3 or 1))
    mid = max(0, len(rows) // 2 - window // 2)
    spans = [("start", rows[:window]), ("middle", rows[mid : mid + window]), ("end", rows[-window:])]
    return [
        Phase(name, span[0]["step"], span[-1]["step"], {k: window_mean(span, k) for k in keys}) for name, span in spans
    ]


def format_summary(phases: list[Phase], keys=(ENTROPY, REWARD)) -> str:
    header = f"{'phase':<8}{'steps':>10}" + "".join(f"{k:>22}" for k in keys)
    lines = [header]
    for phase in phases:
        steps = f"{phase.first_step}-{phase.last_step}"
        lines.append(f"{phase.name:<8}{steps:>10}" + "".join(f"{phase.values[k]:>22.3f}" for k in keys))
    return "\n".join(lines)
