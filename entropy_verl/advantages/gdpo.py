"""GDPO on verl's v1 trainer (Liu et al., "GDPO: Group reward-Decoupled Normalization Policy Optimization",
arXiv:2601.05242): each reward component is GRPO-normalised within its group, the normalised components are summed
with weights, and the sum is whitened over the batch.

verl 0.9.1 has the estimator (``adv_estimator=gdpo``, ``compute_gdpo_outcome_advantage``), but it reads the reward
components from ``non_tensor_batch`` and the response lengths from ``batch["prompts"/"attention_mask"]``, and the v1
trainer's advantage step passes neither (only ``uid`` and the padded response tensors): under v1 it stops at its own
"GDPO requires 'algorithm.gdpo_reward_keys'" assertion, or on a missing ``prompts`` once the keys are set.

``gdpo_v1`` is an adapter, not a re-implementation: the ``entropy_sync`` trainer reads each response's reward
components from what verl's reward loop stored with the sample (``extra_fields["reward_extra_info"]``, i.e. the dict
the task's reward function returned), and this function hands them, with the response mask in the layout verl
expects, to verl's ``compute_gdpo_outcome_advantage`` unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from entropy_verl.registry import REWARD_COMPONENTS, register

from .estimator import EstimatorContext


@dataclass(frozen=True)
class GDPOConfig:
    reward_keys: list[str] | None = None
    """The reward components normalised separately, keys of the dict the task's reward function returns
    (method=gdpo sets the task's ``entropy_verl.task.reward_components``)."""
    reward_weights: list[float] | None = None
    """Weight of each component in the sum, in reward_keys order; null: all 1 (paper: 1)."""

    def __post_init__(self):
        if not self.reward_keys:
            raise ValueError(
                "reward_keys: gdpo needs the reward components to normalise separately, and the task "
                "declares none (entropy_verl.task.reward_components); its reward function must return a "
                "dict with them"
            )
        if self.reward_weights is not None and len(self.reward_weights) != len(self.reward_keys):
            raise ValueError(
                f"reward_weights has {len(self.reward_weights)} entries for {len(self.reward_keys)} reward_keys"
            )


@register("gdpo_v1", kind="estimator", config=GDPOConfig, needs=(REWARD_COMPONENTS,))
def gdpo_v1(ctx: EstimatorContext, cfg: GDPOConfig):
    """GDPO's advantages by verl's ``compute_gdpo_outcome_advantage`` (arXiv:2601.05242): each reward component
    GRPO-normalised within its group, the weighted sum whitened over the batch.

    Reads: ``ctx.reward_components``, ``ctx.token_level_rewards``, ``ctx.response_mask``, ``ctx.index``.
    """
    from verl.trainer.ppo.core_algos import compute_gdpo_outcome_advantage

    components = ctx.reward_components  # key -> one value per response
    missing = [k for k in cfg.reward_keys if k not in components]
    if missing:
        raise KeyError(
            f"gdpo_v1: reward components {missing} not returned by the reward function "
            f"(it returned {sorted(components)}); check entropy_verl.methods.gdpo_v1.reward_keys"
        )
    non_tensor_batch = {k: np.asarray(components[k], dtype=np.float32) for k in cfg.reward_keys}
    # verl locates each response's last token as attention_mask[:, prompt_len:].sum(1) - 1: a zero-width prompt and
    # the response mask give exactly that
    mask = ctx.response_mask
    batch = {"prompts": mask.new_zeros(mask.shape[0], 0), "attention_mask": mask.long()}
    config = {"gdpo_reward_keys": list(cfg.reward_keys), "gdpo_reward_weights": cfg.reward_weights}
    advantages, _ = compute_gdpo_outcome_advantage(
        ctx.token_level_rewards, mask, ctx.index, config=config, non_tensor_batch=non_tensor_batch, batch=batch
    )
    return advantages, {f"{k}/mean": float(np.mean(non_tensor_batch[k])) for k in cfg.reward_keys}
