"""Entropy bonuses: the classic fixed one, and Skywork-OR1's adaptive one (He et al., arXiv:2505.22312, Sec. 4,
"adaptive entropy control").

    L = L_PPO - c * token-mean(H)      (gradient flows through H)

``entropy_bonus``: c is its own setting, a number or a schedule by step (``entropy_verl/schedule.py``); verl's own
``actor.entropy_coeff`` is the same bonus with a frozen c. ``adaptive_entropy_bonus``: c comes from the driver's
adaptive controller (``entropy_verl.controllers.adaptive_entropy``) and is 0 while entropy is at or above its target.
"""

from __future__ import annotations

from dataclasses import dataclass

from entropy_verl.controllers.adaptive_entropy import AdaptiveEntropyController
from entropy_verl.registry import ENTROPY, coef_is_zero, register
from entropy_verl.schedule import Scheduled

from .context import LossContext
from .masked import selected_token_mean

ENTROPY_COEF = AdaptiveEntropyController.outputs.entropy_coef


def entropy_bonus(ctx: LossContext, coef: float, name: str):
    """-coef * token-mean(H) over the valid tokens, with verl's normaliser, and its metrics."""
    if ctx.entropy is None:
        raise RuntimeError(f"{name} needs actor_rollout_ref.actor.calculate_entropy=True")
    mean_entropy = selected_token_mean(ctx.entropy, ctx.response_mask, ctx)  # verl's token-mean normaliser
    return -coef * mean_entropy, {"coef": coef, "bonus": mean_entropy.item()}


@dataclass(frozen=True)
class EntropyBonusConfig:
    coef: Scheduled = 1e-3
    """c in -c * token-mean(H); >= 0, a number or a schedule [[step, value], ...] (no paper value; verl's examples
    used entropy_coeff 1e-3)."""

    def __post_init__(self):
        if not self.coef >= 0:
            raise ValueError(f"coef must be >= 0, got {self.coef}")


@register(
    "entropy_bonus",
    kind="term",
    config=EntropyBonusConfig,
    needs=(ENTROPY,),
    no_op=coef_is_zero,
)
def entropy_bonus_term(ctx: LossContext, cfg: EntropyBonusConfig):
    """The entropy bonus -c * token-mean(H), gradient through H, with c fixed or scheduled by step.

    Reads: ``ctx.entropy`` (current policy, with grad), ``ctx.response_mask``, ``ctx.global_batch_info`` (verl's
    normaliser, by ``selected_token_mean``).
    """
    return entropy_bonus(ctx, cfg.coef, "entropy_bonus")


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
    return entropy_bonus(ctx, float(ctx.coefficients[ENTROPY_COEF]), "adaptive_entropy_bonus")
