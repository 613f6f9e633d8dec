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

    def step(self, ctx, entropy_mean: float, data_sources: list[str] | None = None) -> dict[str, float]:
        """``ctx``: the step's whole batch as the sampling policy saw it (``LossContext.of_sampling_policy``);
        ``data_sources``: each response's, for the entropy per source."""
        metrics = step_diagnostics(ctx, data_sources)
        predicted, cov = (
            metrics.get(metric_names.diagnostic(k), math.nan) for k in ("predicted_change", "cov_logp_adv")
        )
        metrics.update(self.tracker.update(predicted, entropy_mean, cov))
        self.entropy = float(entropy_mean)
        return metrics

    def validation(self, step: int, uids, rewards, outputs, data_sources=None) -> dict[str, float]:
        """pass@k and distinct correct answers from validation samples grouped by prompt (uid), over all prompts
        (``val/...``) and, with each sample's ``data_sources``, per source (``val-core/<data_source>/...``); then the
        law. One law pair per step: a resumed run validating its checkpoint step again (val_before_train) adds none;
        the pair is logged as ``entropy_law/entropy|reward`` (what ``python -m entropy_verl.tools.law`` fits)."""
        correct, answers, source_of = defaultdict(list), defaultdict(list), {}
        sources = data_sources if data_sources is not None else [None] * len(uids)
        for uid, reward, text, source in zip(uids, rewards, outputs, sources, strict=True):
            correct[uid].append(float(reward) >= self.cfg.correct_threshold)
            answers[uid].append(self.extract(text) if self.extract else None)
            source_of[uid] = source
        n = max((len(c) for c in correct.values()), default=0)
        full = [uid for uid, c in correct.items() if len(c) == n]  # a prompt missing samples would bias pass@k

        def pass_at(prompts, source=None):
            return pass_at_k_metrics(
                [correct[u] for u in prompts], [answers[u] for u in prompts] if self.extract else None, source
            )

        metrics = pass_at(full)
        for source in sorted({s for s in source_of.values() if s is not None}):
            metrics.update(pass_at([u for u in full if source_of[u] == source], source))
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
