"""Unlikeliness reward (He et al., "Rewarding the Unlikely: Lifting GRPO Beyond Distribution Sharpening",
arXiv:2506.02355, Sec. 4, Eq. 3).

Within each group of G responses, rank them by their mean old log-prob (rank 0 = least likely) and scale the reward

    R'_i = R_i * (1 - beta * rank_i / G)

then normalise as GRPO does. A correct but unlikely response keeps its full reward while the likeliest correct ones
lose up to beta of theirs, which counters GRPO's sharpening toward the answers the policy already prefers. The paper
pairs it with 2 PPO epochs (``actor.ppo_epochs: 2`` in its method file).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from entropy_verl.registry import SEQUENCE_MEAN_OLD_LOG_PROB, register
from entropy_verl.schedule import Scheduled

from .estimator import EstimatorContext, grpo_advantages


@dataclass(frozen=True)
class UnlikelinessConfig:
    beta: Scheduled = 0.25
    """The likeliest response of a group keeps 1 - beta of its reward; in [0, 1] (paper: 0.25)."""

    def __post_init__(self):
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {self.beta}")


def likelihood_rank_in_group(mean_log_prob: torch.Tensor, index) -> tuple[torch.Tensor, torch.Tensor]:
    """(rank of each response within its group by mean log-prob, 0 = least likely; size of its group)."""
    _, group = np.unique(np.asarray(index, dtype=object).astype(str), return_inverse=True)
    order = np.lexsort((mean_log_prob.detach().cpu().numpy(), group))  # by group, then by log-prob ascending
    sizes = np.bincount(group)
    starts = np.cumsum(sizes) - sizes
    rank = np.empty(len(group), dtype=np.int64)
    rank[order] = np.arange(len(group)) - starts[group[order]]
    return torch.from_numpy(rank), torch.from_numpy(sizes[group])


def unlikeliness_scaled_rewards(token_level_rewards, mean_log_prob, index, beta: float) -> torch.Tensor:
    rank, size = likelihood_rank_in_group(mean_log_prob, index)
    factor = 1.0 - beta * rank.to(token_level_rewards.dtype) / size.to(token_level_rewards.dtype)
    return token_level_rewards * factor.unsqueeze(-1)


@register("unlikeliness", kind="estimator", config=UnlikelinessConfig, needs=(SEQUENCE_MEAN_OLD_LOG_PROB,))
def unlikeliness(ctx: EstimatorContext, cfg: UnlikelinessConfig):
    """GRPO on rewards scaled by 1 - beta * rank_i / G, rank_i by mean old log-prob within the group
    (arXiv:2506.02355, Sec. 4, Eq. 3).

    Reads: ``ctx.token_level_rewards``, ``ctx.sequence_mean_old_log_prob``, ``ctx.index``, and for GRPO's normalisation
    (``grpo_advantages``) ``ctx.response_mask``, ``ctx.algorithm`` (``norm_adv_by_std_in_grpo``).
    """
    rewards = ctx.token_level_rewards
    mean_log_prob = ctx.sequence_mean_old_log_prob.to(rewards.device)
    scaled = unlikeliness_scaled_rewards(rewards, mean_log_prob, ctx.index, cfg.beta)
    correct = rewards.sum(-1) > 0
    metrics = {}
    if correct.any():
        metrics["correct_reward_scale_mean"] = float((scaled.sum(-1)[correct] / rewards.sum(-1)[correct]).mean())
    return grpo_advantages(ctx, scaled), metrics
