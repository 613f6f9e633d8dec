"""SENT, low-entropy KL-Cov (arXiv:2512.04359, Sec. 3, Eq. 7-8).

No PPO clip. Among the tokens in the bottom 80% of the step's entropies, the floor(k*n) with the highest covariance
Cov_t (as in KL-Cov) get a KL penalty 2 * coef * |log pi - log pi_old| and the floor(k*n) with the lowest get
0.5 * coef * |...| (n = number of low-entropy tokens). Selection is global over the step's batch, on the driver.
With k = 2e-4 a step needs >= 5,000 low-entropy tokens before any token is selected.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from entropy_verl.registry import coef_is_zero, register
from entropy_verl.schedule import Scheduled

from .context import LossContext
from .covariance import covariance_order, selected_kl_penalty
from .masked import extremes, padded_selection, valid, valid_count, valid_order, valid_quantile, valid_token_mean
from .pg_unclipped import LOSS_MODE as PG_UNCLIPPED

HIGH_COV_WEIGHT, LOW_COV_WEIGHT = 2.0, 0.5


@dataclass(frozen=True)
class SentConfig:
    k: float = 2e-4
    """Fraction of the low-entropy tokens penalised at each end of the Cov order; in (0, 0.5] (paper: 2e-4)."""
    coef: Scheduled = 0.1
    """Weight of the KL penalty |log pi - log pi_old|; >= 0 (paper: 0.1)."""
    low_entropy_fraction: float = 0.8
    """The bottom fraction of the step's token entropies that is eligible; in (0, 1] (paper: 0.8)."""

    def __post_init__(self):
        if not 0.0 < self.k <= 0.5:
            raise ValueError(f"k must be in (0, 0.5], got {self.k}")
        if self.coef < 0:
            raise ValueError(f"coef must be >= 0, got {self.coef}")
        if not 0.0 < self.low_entropy_fraction <= 1.0:
            raise ValueError(f"low_entropy_fraction must be in (0, 1], got {self.low_entropy_fraction}")


def sent_selection(ctx: LossContext, cfg: SentConfig, generator: torch.Generator) -> torch.Tensor:
    """Per-token penalty multiplier: 2 (high-Cov), 0.5 (low-Cov) or 0, among the low-entropy tokens
    (arXiv:2512.04359, Sec. 3, Eq. 7-8); the generator is unused.

    Reads: ``ctx.old_entropy``, ``ctx.advantages``, ``ctx.old_log_prob`` (Cov_t, by ``valid_covariance``),
    ``ctx.response_mask``.
    """
    if valid_count(ctx) == 0:
        return torch.zeros_like(ctx.advantages)
    threshold = valid_quantile(ctx, "old_entropy", cfg.low_entropy_fraction)
    entropy = valid(ctx, "old_entropy")
    low = valid_order(ctx, "old_entropy").count_at_most(float(threshold))
    m = int(cfg.k * low)
    if m == 0:
        return torch.zeros_like(ctx.advantages)
    lowest, highest = extremes(covariance_order(ctx), m, keep=lambda i: entropy[i] <= threshold, kept=low)
    # of tokens tied at either cut, the first in row-major order; HIGH wins where the two sets overlap
    return padded_selection(ctx, [(lowest, LOW_COV_WEIGHT), (highest, HIGH_COV_WEIGHT)], ctx.advantages.dtype)


@register(
    "sent",
    kind="term",
    config=SentConfig,
    step_selection=sent_selection,
    loss_mode=PG_UNCLIPPED,
    ratio_only=True,  # |log pi - log pi_old| and its gradient are 0 while pi = pi_old
    no_op=coef_is_zero,
)
def sent_term(ctx: LossContext, cfg: SentConfig):
    """SENT's penalty coef * token-mean(m_t |log pi_t - log pi_old,t|), m_t in {2, 0.5, 0} (arXiv:2512.04359, Eq. 7-8).

    Reads: ``ctx.selection`` (the multipliers m_t of ``sent_selection``), ``ctx.log_prob``, ``ctx.old_log_prob``,
    ``ctx.response_mask``, ``ctx.global_batch_info`` (verl's token-mean normaliser, by ``selected_token_mean``).
    """
    multiplier = ctx.selection * ctx.response_mask
    penalty = selected_kl_penalty(ctx, cfg.coef * multiplier)
    return penalty, {"selected_frac": valid_token_mean(multiplier > 0, ctx), "penalty": penalty.item()}
