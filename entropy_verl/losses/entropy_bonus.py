"""Skywork-OR1's adaptive entropy bonus (He et al., arXiv:2505.22312, Sec. 4, "adaptive entropy control").

    L = L_PPO - c * token-mean(H)      (gradient flows through H)

c comes from the driver's adaptive controller (``entropy_verl.controllers.adaptive_entropy``) and is 0 while
entropy is at or above its target. verl's own ``entropy_coeff`` is a frozen config field; this term is the
runtime-mutable version of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from verl.trainer.ppo.core_algos import agg_loss

from .context import LossContext
from .registry import register_entropy_term


@dataclass
class AdaptiveEntropyBonusConfig:
    pass


@register_entropy_term("adaptive_entropy_bonus", AdaptiveEntropyBonusConfig, needs_entropy=True, coefficient="entropy_coef")
def adaptive_entropy_bonus_term(ctx: LossContext, cfg: AdaptiveEntropyBonusConfig):
    if ctx.entropy is None:
        raise RuntimeError("adaptive_entropy_bonus needs actor_rollout_ref.actor.calculate_entropy=True")
    coef = float(ctx.coefficients.get("entropy_coef", 0.0))
    mean_entropy = agg_loss(loss_mat=ctx.entropy, loss_mask=ctx.response_mask, loss_agg_mode="token-mean", **ctx.global_batch_info)
    return -coef * mean_entropy, {"adaptive_entropy/coef": coef, "adaptive_entropy/bonus": mean_entropy.item()}
