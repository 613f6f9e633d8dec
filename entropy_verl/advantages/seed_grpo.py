"""SEED-GRPO (Chen et al., "SEED-GRPO: Semantic Entropy Enhanced GRPO for Uncertainty-Aware Policy Optimization",
arXiv:2505.12346, Sec. 3, Eq. 5-7).

The G responses of a prompt are clustered by their final answer; the group's semantic entropy is

    SE = -sum_c (n_c / G) log(n_c / G)                   (0 when all agree, log G when all differ)

and GRPO's advantages are scaled down on prompts the policy is unsure about:

    A'_i = A_i * f(alpha * SE / log G),   f(x) = 1 - x

The final answers come from the task (``entropy_verl.task.final_answer``: decoded response -> answer or None). A
response without an answer is its own cluster.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from entropy_verl.registry import FINAL_ANSWERS, register
from entropy_verl.schedule import Scheduled

from .estimator import EstimatorContext, grpo_advantages


@dataclass(frozen=True)
class SeedGRPOConfig:
    alpha: Scheduled = 0.5
    """Advantages are scaled by 1 - alpha * SE / log G; in [0, 1] keeps every sign (0.5 here; the paper's value
    could not be confirmed)."""

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1] (so f stays >= 0 and no advantage flips sign), got {self.alpha}")


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


@register("seed_grpo", kind="estimator", config=SeedGRPOConfig, needs=(FINAL_ANSWERS,))
def seed_grpo(ctx: EstimatorContext, cfg: SeedGRPOConfig):
    """GRPO's advantages scaled by 1 - alpha * SE / log G, SE the group's semantic entropy over the final answers
    (arXiv:2505.12346, Sec. 3, Eq. 5-7).

    Reads: ``ctx.final_answers``, ``ctx.index``, and for GRPO's advantages (``grpo_advantages``)
    ``ctx.token_level_rewards``, ``ctx.response_mask``, ``ctx.algorithm`` (``norm_adv_by_std_in_grpo``).
    """
    advantages = grpo_advantages(ctx)
    se, size = group_semantic_entropy(ctx.final_answers, ctx.index)
    max_entropy = torch.log(size.clamp(min=2.0))  # a group of one has SE 0
    scale = (1.0 - cfg.alpha * se / max_entropy).to(advantages.dtype).unsqueeze(-1)
    no_answer = sum(a is None for a in ctx.final_answers) / max(len(ctx.final_answers), 1)
    return advantages * scale, {
        "semantic_entropy_mean": float(se.mean()),
        "advantage_scale_mean": float(scale.mean()),
        "no_answer_frac": no_answer,
    }
