"""Skywork-OR1's adaptive entropy bonus (He et al., arXiv:2505.22312, Sec. 4, "adaptive entropy control").

    L = L_PPO - c * token-mean(H)      (gradient flows through H)

c comes from the driver's adaptive controller (``entropy_verl.controllers.adaptive_entropy``) and is 0 while
entropy is at or above its target. verl's own ``entropy_coeff`` is a frozen config field; this term is the
runtime-mutable version of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from entropy_verl.controllers.adaptive_entropy import AdaptiveEntropyController
from entropy_verl.registry import ENTROPY, register

from .context import LossContext
from .masked import selected_token_mean

ENTROPY_COEF = AdaptiveEntropyController.outputs.entropy_coef


@dataclass(frozen=True)
class AdaptiveEntropyBonusConfig:
    """No settings of its own: the coefficient is the adaptive_entropy controller's."""


@register(
    "adaptive_entropy_bonus", kind="term", config=AdaptiveEntropyBonusConfig, reads=(ENTROPY_COEF,), needs=(ENTROPY,)
)
def adaptive_entropy_bonus_term(ctx: LossContext, cfg: AdaptiveEntropyBonusConfig):
    """Skywork-OR1's entropy bonus -c * token-mean(H), gradient through H (arXiv:2505.22312, Sec. 4).

    Reads: ``ctx.entropy`` (current policy, with grad), ``ctx.coefficients`` (``entropy_coef``, the adaptive_entropy
    controller's), ``ctx.response_mask``, ``ctx.global_batch_info`` (verl's normaliser, by ``selected_token_mean``).
    """
    if ctx.entropy is None:
        raise RuntimeError("adaptive_entropy_bonus needs actor_rollout_ref.actor.calculate_entropy=True")
    coef = float(ctx.coefficients[ENTROPY_COEF])
    mean_entropy = selected_token_mean(ctx.entropy, ctx.response_mask, ctx)  # verl's token-mean normaliser
    return -coef * mean_entropy, {"coef": coef, "bonus": mean_entropy.item()}
