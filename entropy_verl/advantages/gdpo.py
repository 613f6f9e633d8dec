"""GDPO on verl's v1 trainer (Liu et al., "GDPO: Group reward-Decoupled Normalization Policy Optimization",
arXiv:2601.05242): each reward component is GRPO-normalised within its group, the normalised components are summed
with weights, and the sum is whitened over the batch.

verl 0.9.1 has the estimator (``adv_estimator=gdpo``, ``compute_gdpo_outcome_advantage``), but it reads the reward
components from ``non_tensor_batch`` and the response lengths from ``batch["prompts"/"attention_mask"]``, and the v1
trainer's advantage step passes neither (only ``uid`` and the padded response tensors): under v1 it stops at its own
"GDPO requires 'algorithm.gdpo_reward_keys'" assertion, or on a missing ``prompts`` once the keys are set.

``gdpo_v1`` is an adapter, not a re-implementation: the ``entropy_sync`` trainer reads each response's reward
components from what verl's reward loop stored with the sample (``extra_fields["reward_extra_info"]``, i.e. the dict
the reward function returned), and this function hands them, with the response mask in the layout verl expects, to
verl's ``compute_gdpo_outcome_advantage`` unchanged. Keys and weights are verl's own: ``algorithm.gdpo_reward_keys``,
``algorithm.gdpo_reward_weights``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from verl.trainer.ppo.core_algos import compute_gdpo_outcome_advantage

from .config import register_estimator
from .driver_inputs import REWARD_COMPONENTS, advantage_input, record_advantage_metric

NAME = "gdpo_v1"


@dataclass
class GDPOv1Config:  # the settings are verl's algorithm.gdpo_reward_keys / gdpo_reward_weights
    pass


def gdpo_reward_keys(algorithm_config) -> list[str]:
    keys = None if algorithm_config is None else algorithm_config.get("gdpo_reward_keys", None)
    if not keys:
        raise ValueError("gdpo_v1 needs algorithm.gdpo_reward_keys: the reward components (keys of the dict the reward "
                         "function returns) to normalise separately, e.g. [accuracy_reward, format_reward]")
    return list(keys)


@register_estimator(NAME, GDPOv1Config, needs=(REWARD_COMPONENTS,))
def compute_gdpo_v1_advantage(token_level_rewards, response_mask, index, config=None, **kwargs):
    components = advantage_input(REWARD_COMPONENTS, NAME)  # key -> one value per response
    keys = gdpo_reward_keys(config)
    missing = [k for k in keys if k not in components]
    if missing:
        raise KeyError(f"gdpo_v1: reward components {missing} not returned by the reward function "
                       f"(it returned {sorted(components)}); check algorithm.gdpo_reward_keys")
    non_tensor_batch = {k: np.asarray(components[k], dtype=np.float32) for k in keys}
    # verl locates each response's last token as attention_mask[:, prompt_len:].sum(1) - 1: a zero-width prompt and
    # the response mask give exactly that
    batch = {"prompts": response_mask.new_zeros(response_mask.shape[0], 0), "attention_mask": response_mask.long()}
    advantages, returns = compute_gdpo_outcome_advantage(token_level_rewards, response_mask, index, config=config,
                                                         non_tensor_batch=non_tensor_batch, batch=batch)
    for k in keys:
        record_advantage_metric(f"gdpo/{k}/mean", float(np.mean(non_tensor_batch[k])))
    return advantages, returns
