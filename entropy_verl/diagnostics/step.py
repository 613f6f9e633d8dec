"""What the ``entropy_sync`` trainer logs besides verl's own metrics, with the state it keeps across steps (saved
in its checkpoints):

- every step, ``entropy/...`` from the step's batch (``token_stats.step_diagnostics``) and the predicted-vs-measured
  entropy change (``token_stats.EntropyChangeTracker``);
- at every validation, ``val/pass@k`` for k = 1, 2, 4, ..., n and ``val/distinct_correct`` from the n samples per
  prompt (``actor_rollout_ref.rollout.val_kwargs.n``), and the entropy-performance law fitted to the (policy entropy,
  mean validation reward) pairs so far (``entropy_law/...``).

Config: ``entropy_verl.diagnostics`` (``DiagnosticsConfig``); the answer extractor is the task's.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from entropy_verl import metric_names

from .entropy_law import OnlineEntropyLaw
from .pass_at_k import pass_at_k_metrics
from .token_stats import EntropyChangeTracker, step_diagnostics


@dataclass(frozen=True)
class DiagnosticsConfig:
    enable: bool = True
    """Log the per-step entropy/... metrics and, at validation, pass@k and the entropy-performance law."""
    correct_threshold: float = 0.5
    """A validation sample with reward >= this counts as correct for pass@k and distinct correct answers."""


class StepDiagnostics:
    def __init__(self, cfg: DiagnosticsConfig, extract: Callable[[str], str | None] | None = None):
        """``extract``: the task's answer extractor (decoded response -> answer or None), for distinct correct answers;
        None skips that metric."""
        self.cfg = cfg
        self.extract = extract
        self.tracker = EntropyChangeTracker()
        self.law = OnlineEntropyLaw()
        self.entropy: float | None = None  # token-mean entropy of the latest step's rollout (the current policy)
        self.law_step: int | None = None  # the step whose validation gave the law's latest pair

    def step(self, ctx, entropy_mean: float) -> dict[str, float]:
        """``ctx``: the step's whole batch as the sampling policy saw it (``LossContext.of_sampling_policy``)."""
        metrics = step_diagnostics(ctx)
        metrics.update(self.tracker.update(metrics.get("entropy/predicted_change", math.nan), entropy_mean))
        self.entropy = float(entropy_mean)
        return metrics

    def validation(self, step: int, uids, rewards, outputs) -> dict[str, float]:
        """pass@k and distinct correct answers from validation samples grouped by prompt (uid), then the law. One law
        pair per step: a resumed run validating its checkpoint step again (val_before_train) adds none; the pair is
        logged as ``entropy_law/entropy|reward`` (what ``python -m entropy_verl.tools.law`` fits offline)."""
        correct, answers = defaultdict(list), defaultdict(list)
        for uid, reward, text in zip(uids, rewards, outputs, strict=True):
            correct[uid].append(float(reward) >= self.cfg.correct_threshold)
            answers[uid].append(self.extract(text) if self.extract else None)
        n = max((len(c) for c in correct.values()), default=0)
        full = [uid for uid, c in correct.items() if len(c) == n]  # a prompt missing samples would bias pass@k
        metrics = pass_at_k_metrics([correct[u] for u in full], [answers[u] for u in full] if self.extract else None)
        if len(full) < len(correct):
            metrics[metric_names.PROMPTS_MISSING_SAMPLES] = float(len(correct) - len(full))
        if self.entropy is not None and rewards and step != self.law_step:
            reward = sum(map(float, rewards)) / len(rewards)
            self.law.add(self.entropy, reward)
            self.law_step = step
            metrics.update(
                {metric_names.LAW_ENTROPY: self.entropy, metric_names.LAW_REWARD: reward, **self.law.metrics()}
            )
        return metrics

    def state_dict(self) -> dict:
        return {
            "tracker": self.tracker.state_dict(),
            "law": self.law.state_dict(),
            "entropy": self.entropy,
            "law_step": self.law_step,
        }

    def load_state_dict(self, state: dict) -> None:
        self.tracker.load_state_dict(state["tracker"])
        self.law.load_state_dict(state["law"])
        self.entropy = state["entropy"]
        self.law_step = state.get("law_step")
