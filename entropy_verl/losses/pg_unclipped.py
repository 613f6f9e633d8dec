"""``loss_mode: pg_unclipped`` — the plain importance-weighted policy gradient, -A * r, with no PPO clip.

KL-Cov and SENT are defined without PPO's clip (their covariance-selected KL penalty takes its place). verl has no
unclipped ``loss_mode`` of its own, so this one is registered in verl's policy-loss registry; rollout IS weights and
our token weights apply as in verl's vanilla loss.
"""

from __future__ import annotations

import torch

LOSS_MODE = "pg_unclipped"


def compute_policy_loss_pg_unclipped(
    old_log_prob, log_prob, advantages, response_mask, loss_agg_mode="token-mean", config=None, rollout_is_weights=None
):
    from verl.trainer.ppo.core_algos import agg_loss

    log_ratio = log_prob - old_log_prob
    pg_losses = -advantages * torch.exp(log_ratio)
    if rollout_is_weights is not None:
        pg_losses = pg_losses * rollout_is_weights
    global_batch_info = config.global_batch_info if config is not None else {}
    pg_loss = agg_loss(loss_mat=pg_losses, loss_mask=response_mask, loss_agg_mode=loss_agg_mode, **global_batch_info)
    ppo_kl = (-log_ratio * response_mask).sum() / response_mask.sum().clamp(min=1)  # verl's masked mean
    return pg_loss, {"actor/ppo_kl": ppo_kl.detach().item()}


try:
    from verl.trainer.ppo.core_algos import register_policy_loss
except ImportError:  # torch alone (make bench on an accelerator machine): no verl registry to join
    pass
else:
    register_policy_loss(LOSS_MODE)(compute_policy_loss_pg_unclipped)
