"""``loss_mode: pg_unclipped`` — the plain importance-weighted policy gradient, -A * r, with no PPO clip.

KL-Cov and SENT are defined without PPO's clip (their covariance-selected KL penalty takes its place). verl has no
unclipped ``loss_mode`` of its own, so this one is registered in verl's policy-loss registry; rollout IS weights and
our token weights apply as in verl's vanilla loss.
"""

from __future__ import annotations

import torch
import verl.utils.torch_functional as verl_F
from verl.trainer.ppo.core_algos import agg_loss, register_policy_loss

LOSS_MODE = "pg_unclipped"


@register_policy_loss(LOSS_MODE)
def compute_policy_loss_pg_unclipped(
    old_log_prob, log_prob, advantages, response_mask, loss_agg_mode="token-mean", config=None, rollout_is_weights=None
):
    log_ratio = log_prob - old_log_prob
    pg_losses = -advantages * torch.exp(log_ratio)
    if rollout_is_weights is not None:
        pg_losses = pg_losses * rollout_is_weights
    global_batch_info = config.global_batch_info if config is not None else {}
    pg_loss = agg_loss(loss_mat=pg_losses, loss_mask=response_mask, loss_agg_mode=loss_agg_mode, **global_batch_info)
    return pg_loss, {"actor/ppo_kl": verl_F.masked_mean(-log_ratio, response_mask).detach().item()}
