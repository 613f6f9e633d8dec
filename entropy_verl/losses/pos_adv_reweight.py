"""Positive-advantage reweighting (Revisiting Entropy in RLVR, arXiv:2511.05993, Sec. 5).

    weight_t = lambda if A_t > 0 else 1

Positive samples drive entropy collapse; down-weighting them (lambda < 1) slows it. lambda is fixed (``lam``) or, with
``lam: null``, the driver's entropy-guided schedule (controller ``lambda_schedule``, output ``pos_adv_lambda``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from entropy_verl.controllers.lambda_schedule import LambdaScheduleController
from entropy_verl.registry import register

from .context import LossContext

SCHEDULED = LambdaScheduleController.outputs.pos_adv_lambda


@dataclass(frozen=True)
class PosAdvReweightConfig:
    lam: float | None = 0.1
    """Weight on A > 0 tokens, in [0, 1] (paper: 0.1); null reads it from the lambda_schedule controller."""

    def __post_init__(self):
        if self.lam is not None and not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"lam must be in [0, 1] or null, got {self.lam}")


def reads_lambda(cfg: PosAdvReweightConfig) -> tuple[str, ...]:
    return (SCHEDULED,) if cfg.lam is None else ()


@register(
    "pos_adv_reweight",
    kind="weight",
    config=PosAdvReweightConfig,
    reads=reads_lambda,
    no_op=lambda cfg: "lam is 1: every weight is 1" if cfg.lam == 1 else None,
)
def pos_adv_reweight(ctx: LossContext, cfg: PosAdvReweightConfig):
    """weight_t = lambda if A_t > 0 else 1 (arXiv:2511.05993, Sec. 5).

    Reads: ``ctx.advantages``, and ``ctx.coefficients`` (``pos_adv_lambda``, the lambda_schedule controller's) only when
    ``lam`` is null.
    """
    lam = cfg.lam if cfg.lam is not None else float(ctx.coefficients[SCHEDULED])
    weights = torch.where(ctx.advantages > 0, torch.full_like(ctx.advantages, lam), torch.ones_like(ctx.advantages))
    return weights, {"lambda": lam}
