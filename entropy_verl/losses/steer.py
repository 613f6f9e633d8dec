"""STEER, entropy-change-aware token re-weighting (arXiv:2510.10150, Sec. 3, Eq. 8-10).

    Omega_t = (A_t / pi_old,t) * pi_t (1 - pi_t) (log pi_t + H_old,t)     per-token first-order entropy change
    k = -ln(lambda_min) / max(max_t |Omega_t|, 0.02)
    lambda_t = clamp(exp(-k |Omega_t|), lambda_min, 1)                    (linear mode: 1 - (1 - lambda_min)|Omega|/max)
    loss_t <- loss_t * sg(lambda_t)

Tokens whose update would move entropy most are damped, down to lambda_min for the largest |Omega| in the batch.
pi is the sampling policy's probability (on-policy pi = pi_old), so Omega_t = A_t (1 - pi_t)(log pi_t + H_t).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from entropy_verl.registry import register
from entropy_verl.schedule import Scheduled

from .context import LossContext
from .masked import chunked_reduce, valid, valid_count, valid_token_mean

MIN_SCALE = 0.02  # floor of max|Omega| so a batch of near-zero changes is not stretched to lambda_min


@dataclass(frozen=True)
class SteerConfig:
    lambda_min: Scheduled = 0.8
    """Weight of the token whose |Omega| is the batch's largest; in (0, 1] (paper: 0.8)."""
    mode: Literal["exp", "linear"] = "exp"
    """How the weight falls with |Omega|: exp(-k |Omega|) (paper) or linearly."""
    scope: Literal["step", "micro_batch"] = "step"
    """Where max |Omega| is taken: the whole step, all ranks, or each micro-batch."""

    def __post_init__(self):
        if not 0.0 < self.lambda_min <= 1.0:
            raise ValueError(f"lambda_min must be in (0, 1], got {self.lambda_min}")


def omega(advantages: torch.Tensor, old_log_prob: torch.Tensor, old_entropy: torch.Tensor) -> torch.Tensor:
    """Omega = A (1 - p) (log p + H), elementwise: (A / pi_old) * pi (1 - pi) (log pi + H) with pi = pi_old."""
    return (advantages * torch.exp(old_log_prob).neg_().add_(1.0)).mul_(old_log_prob + old_entropy)


def entropy_change(ctx: LossContext) -> torch.Tensor:
    """Omega_t of every token, 0 at padding, (bsz, T)."""
    return omega(ctx.advantages, ctx.old_log_prob, ctx.old_entropy) * ctx.response_mask


def steer_stats(ctx: LossContext, cfg: SteerConfig) -> dict[str, float]:
    """max_t |Omega_t| over the valid tokens, for ``ctx.stats`` (arXiv:2510.10150, Eq. 8-10): over the whole step on the
    driver, or over each micro-batch (``scope: micro_batch``).

    Reads: ``ctx.advantages``, ``ctx.old_log_prob``, ``ctx.old_entropy``, ``ctx.response_mask`` (Omega_t, by
    ``omega``).
    """
    if valid_count(ctx) == 0:
        return {"omega_max": 0.0}

    def largest(*fields):
        low, high = torch.aminmax(omega(*fields))
        return torch.maximum(low.abs(), high.abs())

    fields = (valid(ctx, "advantages"), valid(ctx, "old_log_prob"), valid(ctx, "old_entropy"))
    return {"omega_max": chunked_reduce(largest, torch.max, *fields).item()}


@register(
    "steer",
    kind="weight",
    config=SteerConfig,
    step_stats=steer_stats,
    no_op=lambda cfg: "lambda_min is 1: every weight is 1" if cfg.lambda_min == 1 else None,
)
def steer_weight(ctx: LossContext, cfg: SteerConfig):
    """STEER's token weight lambda_t = clamp(exp(-k |Omega_t|), lambda_min, 1), or linear in |Omega_t| with
    ``mode: linear`` (arXiv:2510.10150, Sec. 3, Eq. 8-10).

    Reads: ``ctx.stats`` (``omega_max`` of ``steer_stats``), ``ctx.advantages``, ``ctx.old_log_prob``,
    ``ctx.old_entropy``, ``ctx.response_mask`` (Omega_t, by ``entropy_change``).
    """
    scale = max(ctx.stats["omega_max"], MIN_SCALE)
    omega = entropy_change(ctx).abs()
    if cfg.mode == "exp":
        k = -torch.log(torch.tensor(cfg.lambda_min, dtype=omega.dtype)) / scale
        lam = torch.exp(-k * omega)
    else:
        lam = 1.0 - (1.0 - cfg.lambda_min) * omega / scale
    lam = lam.clamp(min=cfg.lambda_min, max=1.0)
    return lam, {"mean_lambda": valid_token_mean(lam, ctx), "omega_max": scale}
