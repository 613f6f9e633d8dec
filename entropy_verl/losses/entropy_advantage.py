"""Entropy-based advantage shaping (Cheng et al., "Reasoning with Exploration: An Entropy Perspective",
arXiv:2506.14758, Eq. 5-6).

    A'_t = A_t + min(alpha * sg(H_t), |A_t| / kappa)

The clip by |A|/kappa (kappa > 1) keeps the sign of every advantage, so the bonus only re-weights: it raises the
advantage of uncertain tokens in correct responses and softens the penalty on uncertain tokens in wrong ones.
H is the entropy of the policy that sampled the token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from entropy_verl.registry import register
from entropy_verl.schedule import Scheduled

from .context import LossContext
from .masked import valid_token_mean


@dataclass(frozen=True)
class EntropyAdvantageConfig:
    alpha: Scheduled = 0.4
    """Scale of the entropy bonus alpha * H; >= 0 (paper: 0.4)."""
    kappa: Scheduled = 2.0
    """The bonus is capped at |A| / kappa; > 1 keeps every advantage's sign (2 here; not confirmed in the paper)."""

    def __post_init__(self):
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")
        if self.kappa <= 1.0:
            raise ValueError(f"kappa must be > 1 (so the bonus cannot flip an advantage's sign), got {self.kappa}")


@register(
    "entropy_adv",
    kind="advantage",
    config=EntropyAdvantageConfig,
    no_op=lambda cfg: "alpha is 0: the advantages are unchanged" if cfg.alpha == 0 else None,
)
def entropy_advantage(ctx: LossContext, cfg: EntropyAdvantageConfig):
    """A'_t = A_t + min(alpha * sg(H_t), |A_t| / kappa) on the valid tokens (arXiv:2506.14758, Eq. 5-6).

    Reads: ``ctx.advantages``, ``ctx.old_entropy`` (H of the sampling policy), ``ctx.response_mask``.
    """
    bonus = torch.minimum(cfg.alpha * ctx.old_entropy.detach(), ctx.advantages.abs() / cfg.kappa)
    bonus = bonus * ctx.response_mask
    return ctx.advantages + bonus, {"mean_bonus": valid_token_mean(bonus, ctx)}
