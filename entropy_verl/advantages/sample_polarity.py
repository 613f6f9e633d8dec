"""W-REINFORCE, PSR and NSR (Zhu et al., "The Surprising Effectiveness of Negative Reinforcement in LLM Reasoning",
arXiv:2506.01347, Sec. 3-4, Eq. 3-5).

With binary correctness and no baseline or std normalisation, every token of a response gets

    W-REINFORCE:  +lambda if correct, -1 if incorrect
    PSR:          +1 if correct,       0 if incorrect      (positive samples only: sharpens, lowers entropy)
    NSR:           0 if correct,      -1 if incorrect      (negative samples only: spreads mass, keeps entropy)

NSR pushes probability off wrong answers and redistributes it in proportion to the current policy, which is why it
preserves entropy and pass@k; W-REINFORCE is NSR plus a lambda-weighted PSR (lambda 0.1 in the paper).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from entropy_verl.registry import register
from entropy_verl.schedule import Scheduled

from .estimator import EstimatorContext


@dataclass(frozen=True)
class PolarityConfig:
    correct_threshold: float = 0.5
    """A response is correct when its summed reward exceeds this (binary rewards: 0.5)."""


@dataclass(frozen=True)
class WReinforceConfig(PolarityConfig):
    positive_weight: Scheduled = 0.1
    """lambda, the advantage of a correct response (a wrong one gets -1); >= 0 (paper: 0.1)."""

    def __post_init__(self):
        if self.positive_weight < 0:
            raise ValueError(f"positive_weight must be >= 0, got {self.positive_weight}")


def sample_polarity_advantages(ctx: EstimatorContext, positive: float, negative: float, correct_threshold: float):
    correct = ctx.token_level_rewards.sum(dim=-1) > correct_threshold
    per_response = torch.where(correct, positive, negative).to(ctx.token_level_rewards.dtype)
    correct_frac = float(correct.float().mean()) if correct.numel() else 0.0
    return per_response.unsqueeze(-1) * ctx.response_mask, {"correct_frac": correct_frac}


@register("w_reinforce", kind="estimator", config=WReinforceConfig)
def w_reinforce(ctx: EstimatorContext, cfg: WReinforceConfig):
    """W-REINFORCE (arXiv:2506.01347, Sec. 4): each token of a response gets +lambda if it is correct, -1 if not.

    Reads: ``ctx.token_level_rewards``, ``ctx.response_mask`` (by ``sample_polarity_advantages``).
    """
    return sample_polarity_advantages(ctx, cfg.positive_weight, -1.0, cfg.correct_threshold)


@register("psr", kind="estimator", config=PolarityConfig)
def psr(ctx: EstimatorContext, cfg: PolarityConfig):
    """PSR, positive samples only (arXiv:2506.01347, Sec. 3, Eq. 3-5): +1 on a correct response's tokens, 0 on a
    wrong one's.

    Reads: ``ctx.token_level_rewards``, ``ctx.response_mask`` (by ``sample_polarity_advantages``).
    """
    return sample_polarity_advantages(ctx, 1.0, 0.0, cfg.correct_threshold)


@register("nsr", kind="estimator", config=PolarityConfig)
def nsr(ctx: EstimatorContext, cfg: PolarityConfig):
    """NSR, negative samples only (arXiv:2506.01347, Sec. 3, Eq. 3-5): 0 on a correct response's tokens, -1 on a
    wrong one's.

    Reads: ``ctx.token_level_rewards``, ``ctx.response_mask`` (by ``sample_polarity_advantages``).
    """
    return sample_polarity_advantages(ctx, 0.0, -1.0, cfg.correct_threshold)
