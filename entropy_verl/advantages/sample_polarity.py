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

from .config import estimator_config, register_estimator


@dataclass
class SamplePolarityConfig:
    positive_weight: float = 0.1  # lambda of W-REINFORCE (PSR uses 1)
    correct_threshold: float = 0.5  # a response is correct when its summed reward exceeds this

    def __post_init__(self):
        if self.positive_weight < 0:
            raise ValueError(f"positive_weight must be >= 0, got {self.positive_weight}")


def sample_polarity_advantages(token_level_rewards: torch.Tensor, response_mask: torch.Tensor, positive: float,
                               negative: float, correct_threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    correct = token_level_rewards.sum(dim=-1) > correct_threshold
    per_response = torch.where(correct, positive, negative).to(token_level_rewards.dtype)
    advantages = per_response.unsqueeze(-1) * response_mask
    return advantages, advantages


@register_estimator("w_reinforce", SamplePolarityConfig)
def compute_w_reinforce_advantage(token_level_rewards, response_mask, config=None, **kwargs):
    cfg = estimator_config(config, "w_reinforce")
    return sample_polarity_advantages(token_level_rewards, response_mask, cfg.positive_weight, -1.0, cfg.correct_threshold)


@register_estimator("psr", SamplePolarityConfig)
def compute_psr_advantage(token_level_rewards, response_mask, config=None, **kwargs):
    cfg = estimator_config(config, "psr")
    return sample_polarity_advantages(token_level_rewards, response_mask, 1.0, 0.0, cfg.correct_threshold)


@register_estimator("nsr", SamplePolarityConfig)
def compute_nsr_advantage(token_level_rewards, response_mask, config=None, **kwargs):
    cfg = estimator_config(config, "nsr")
    return sample_polarity_advantages(token_level_rewards, response_mask, 0.0, -1.0, cfg.correct_threshold)
