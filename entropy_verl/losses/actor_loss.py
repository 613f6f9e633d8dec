"""The entropy-aware actor loss, installed on every actor worker with verl's ``set_loss_fn``.

    loss = verl's ppo_loss(...)            # whatever actor.policy_loss.loss_mode says: vanilla, cispo, clip_cov, ...
         + sum of entropy terms(ctx)       # entropy_verl.loss.terms, each reading a LossContext

So every verl built-in ``loss_mode`` keeps working unchanged through the same path, and our terms get what verl's
policy-loss signature lacks (entropies, probabilities, the driver's coefficients). Each worker also logs the
coefficients it actually used, so a run can prove they match what the driver computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from verl.utils.metric import AggregationType, Metric
from verl.workers.utils.losses import ppo_loss

from .context import build_loss_context
from .registry import get_entropy_term


@dataclass
class EntropyLossConfig:
    """``entropy_verl.loss`` in the Hydra config."""

    terms: list[str] = field(default_factory=list)
    term_configs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def build_term(self, name: str) -> tuple[Any, Any]:
        """(TermSpec, config instance); an unknown name raises KeyError, bad values the config's ValueError."""
        spec = get_entropy_term(name)
        return spec, spec.config_cls(**dict(self.term_configs.get(name, {}) or {}))

    def build(self) -> list[tuple[Any, Any]]:
        """One (TermSpec, config) per listed term, built on the driver so bad input fails there."""
        return [self.build_term(name) for name in self.terms]


def entropy_aware_loss(config, model_output, data, dp_group=None, *, terms=()):
    """verl's actor loss signature ``(config, model_output, data, dp_group)``; ``terms`` is bound by the trainer."""
    loss, metrics = ppo_loss(config, model_output, data, dp_group)
    if not terms:
        return loss, metrics
    ctx = build_loss_context(config, model_output, data)
    for spec, term_config in terms:
        term_loss, term_metrics = spec.fn(ctx, term_config)
        loss = loss + term_loss
        metrics.update({f"actor/{k}": Metric(value=v, aggregation=AggregationType.MEAN) for k, v in term_metrics.items()})
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    for key, value in ctx.coefficients.items():  # what this worker used: checked against the driver's value
        metrics[f"entropy_verl/worker_coef/{key}/rank{rank}"] = Metric(value=float(value), aggregation=AggregationType.MEAN)
    return loss, metrics
