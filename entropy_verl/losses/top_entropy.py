"""80/20 "forking tokens" (Wang et al., "Beyond the 80/20 Rule: High-Entropy Minority Tokens Drive Effective RL for
LLM Reasoning", arXiv:2506.01939, Sec. 4, Eq. 4).

    weight_t = 1[H_t >= tau_rho],   tau_rho = the (1 - rho)-quantile of H over all valid tokens of the batch

The policy-gradient loss keeps only the top-rho highest-entropy tokens; the token-mean normaliser still counts every
token. ``scope: step`` takes the quantile over the whole step's batch, all data-parallel ranks together (computed on
the driver); ``scope: micro_batch`` over the micro-batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from entropy_verl.registry import register
from entropy_verl.schedule import Scheduled

from .context import LossContext
from .masked import valid_count, valid_quantile, valid_token_mean


@dataclass(frozen=True)
class TopEntropyConfig:
    rho: Scheduled = 0.2
    """Fraction of the batch's tokens kept, the highest-entropy ones; in (0, 1] (paper: 0.2)."""
    scope: Literal["step", "micro_batch"] = "step"
    """Where the entropy quantile is taken: the whole step, all ranks (paper), or each micro-batch."""

    def __post_init__(self):
        if not 0.0 < self.rho <= 1.0:
            raise ValueError(f"rho must be in (0, 1], got {self.rho}")


def top_entropy_threshold(ctx: LossContext, cfg: TopEntropyConfig) -> dict[str, float]:
    """tau_rho, the (1 - rho)-quantile of the valid tokens' entropies, for ``ctx.stats`` (arXiv:2506.01939, Eq. 4): over
    the whole step on the driver, or over each micro-batch (``scope: micro_batch``).

    Reads: ``ctx.old_entropy``, ``ctx.response_mask``.
    """
    if valid_count(ctx) == 0:
        return {"threshold": float("inf")}
    return {"threshold": valid_quantile(ctx, "old_entropy", 1.0 - cfg.rho).item()}


@register(
    "top_entropy",
    kind="weight",
    config=TopEntropyConfig,
    step_stats=top_entropy_threshold,
    no_op=lambda cfg: "rho is 1: every token is kept" if cfg.rho == 1 else None,
)
def top_entropy_weight(ctx: LossContext, cfg: TopEntropyConfig):
    """weight_t = 1[H_t >= tau_rho] on the valid tokens (arXiv:2506.01939, Sec. 4, Eq. 4).

    Reads: ``ctx.old_entropy``, ``ctx.response_mask``, ``ctx.stats`` (``threshold`` of ``top_entropy_threshold``),
    ``ctx.log_prob`` (its dtype only).
    """
    threshold = ctx.stats["threshold"]
    keep = (ctx.old_entropy >= threshold) & ctx.response_mask
    return keep.to(ctx.log_prob.dtype), {"threshold": threshold, "kept_frac": valid_token_mean(keep, ctx)}
