"""Skywork-OR1's adaptive entropy bonus (He et al., arXiv:2505.22312, Sec. 4, "adaptive entropy control").

    L = L_PPO - c * token-mean(H)      (gradient flows through H)

c comes from the driver's adaptive controller (``entropy_verl.controllers.adaptive_entropy``) and is 0 while
entropy is at or above its target. verl's own ``entropy_coeff`` is a frozen config field; this term is the
runtime-mutable version of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from entropy_verl.registry import ENTROPY, register

from .context import LossContext
from .masked import selected_token_mean


@dataclass
class AdaptiveEntropyBonusConfig:
    """No settings of its own: the coefficient is the adaptive_entropy controller's."""


@register(
    "adaptive_entropy_bonus", kind="term", config=AdaptiveEntropyBonusConfig, reads=("entropy_coef",), needs=(ENTROPY,)
)
def adaptive_entropy_bonus_term(ctx: LossContext, cfg: AdaptiveEntropyBonusConfig):
    if ctx.entropy is None:
        raise RuntimeError("adaptive_entropy_bonus needs actor_rollout_ref.actor.calculate_entropy=True")
    coef = float(ctx.coefficients["entropy_coef"])
    mean_entropy = selected_token_mean(ctx.entropy, ctx.response_mask, ctx)  # verl's token-mean normaliser
    return -coef * mean_entropy, {"coef": coef, "bonus": mean_entropy.item()}
