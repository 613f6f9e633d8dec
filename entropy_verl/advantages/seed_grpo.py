"""SEED-GRPO (Chen et al., "SEED-GRPO: Semantic Entropy Enhanced GRPO for Uncertainty-Aware Policy Optimization",
arXiv:2505.12346, Sec. 3, Eq. 5-7).

The G responses of a prompt are clustered by their final answer; the group's semantic entropy is

    SE = -sum_c (n_c / G) log(n_c / G)                   (0 when all agree, log G when all differ)

and GRPO's advantages are scaled down on prompts the policy is unsure about:

    A'_i = A_i * f(alpha * SE / log G),   f(x) = 1 - x

The task supplies the final-answer extractor (``algorithm.seed_grpo.answer_extractor``, ``module:function`` of the
decoded response text -> answer or None). A response without an answer is its own cluster. The paper's alpha could
not be confirmed; 0.5 keeps every advantage's sign and at least half its size.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from entropy_verl.tasks import load_task_function

from .config import estimator_config, grpo_advantages, register_estimator
from .driver_inputs import FINAL_ANSWERS, advantage_input, record_advantage_metric


@dataclass
class SeedGRPOConfig:
    alpha: float = 0.5  # unconfirmed in the paper
    answer_extractor: str = "entropy_verl.tasks.countdown:final_answer"
    extract: Callable = field(init=False, repr=False)  # the loaded extractor: decoded response text -> answer or None

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1] (so f stays >= 0 and no advantage flips sign), got {self.alpha}")
        self.extract = load_task_function(self.answer_extractor)


def group_semantic_entropy(answers: list, index) -> tuple[torch.Tensor, torch.Tensor]:
    """(semantic entropy of each response's group, size of its group), per response."""
    groups: dict[str, list[int]] = {}
    for i, uid in enumerate(np.asarray(index, dtype=object).astype(str)):
        groups.setdefault(uid, []).append(i)
    entropy, size = torch.zeros(len(answers)), torch.zeros(len(answers))
    for members in groups.values():
        clusters = Counter(answers[i] if answers[i] is not None else ("<no answer>", i) for i in members)
        g = len(members)
        se = -sum((n / g) * math.log(n / g) for n in clusters.values())
        entropy[members], size[members] = se, g
    return entropy, size


@register_estimator("seed_grpo", SeedGRPOConfig, needs=(FINAL_ANSWERS,))
def compute_seed_grpo_advantage(token_level_rewards, response_mask, index, config=None, **kwargs):
    cfg = estimator_config(config, "seed_grpo")
    advantages, _ = grpo_advantages(token_level_rewards, response_mask, index, config)
    se, size = group_semantic_entropy(advantage_input(FINAL_ANSWERS, "seed_grpo"), index)
    max_entropy = torch.log(size.clamp(min=2.0))  # a group of one has SE 0
    scale = (1.0 - cfg.alpha * se / max_entropy).to(advantages.dtype).unsqueeze(-1)
    advantages = advantages * scale
    record_advantage_metric("seed_grpo/semantic_entropy_mean", se.mean())
    record_advantage_metric("seed_grpo/advantage_scale_mean", scale.mean())
    return advantages, advantages
