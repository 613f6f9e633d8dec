"""Clip-B, the batch entropy discriminator (Entropy Dynamics in RLVR, arXiv:2602.03392, Sec. 4, Eq. 12-14).

    S_t = p_t (H_t + log p_t)                        first-order entropy change of rewarding token t is -eps * S_t
    z_t = S_t - mean_B(S),  sigma = std_B(S)
    weight_t = 0 if A_t < 0 and z_t < -mu * sigma else 1

For a step on token t with signed size a, dH ~ -a (S_t - E[S]); a penalised token (A < 0) whose S is far below the
batch's therefore lowers entropy the most (dH ~ |A| z_t < 0). Those are the tokens dropped; like the released code,
positive-advantage tokens are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from entropy_verl.registry import register
from entropy_verl.schedule import Scheduled

from .context import LossContext, memoized
from .masked import chunked_map, mean_std, valid, valid_token_mean


@dataclass(frozen=True)
class ClipBConfig:
    mu: Scheduled = 2.5
    """Drop A < 0 tokens whose S is more than mu standard deviations below the batch mean; >= 0 (paper: 2.5)."""
    scope: Literal["step", "micro_batch"] = "step"
    """Where mean and std of S are taken: the whole step, all ranks, or each micro-batch."""

    def __post_init__(self):
        if self.mu < 0:
            raise ValueError(f"mu must be >= 0, got {self.mu}")


def discriminator(old_log_prob: torch.Tensor, old_entropy: torch.Tensor) -> torch.Tensor:
    """S = p (H + log p), elementwise, from the sampling policy's log-prob and entropy."""
    return torch.exp(old_log_prob) * (old_entropy + old_log_prob)


def discriminator_s(ctx: LossContext) -> torch.Tensor:
    """S_t of every token, (bsz, T)."""
    return discriminator(ctx.old_log_prob, ctx.old_entropy)


def valid_discriminator(ctx: LossContext) -> torch.Tensor:
    """S_t at the valid tokens, flat (``masked.valid``'s order); once per step on the driver's context."""
    return memoized(
        ctx,
        "discriminator",
        lambda: chunked_map(discriminator, valid(ctx, "old_log_prob"), valid(ctx, "old_entropy")),
    )


def discriminator_mean_std(ctx: LossContext) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population std of S_t over the valid tokens; once per step on the driver's context."""
    return memoized(ctx, "discriminator_mean_std", lambda: mean_std(valid_discriminator(ctx)))


def clip_b_stats(ctx: LossContext, cfg: ClipBConfig) -> dict[str, float]:
    """Mean and std of S_t over the valid tokens, for ``ctx.stats`` (arXiv:2602.03392, Eq. 12-14): over the whole
    step on the driver, or over each micro-batch (``scope: micro_batch``).

    Reads: ``ctx.old_log_prob``, ``ctx.old_entropy`` (S_t, by ``valid_discriminator``), ``ctx.response_mask``.
    """
    mean, std = discriminator_mean_std(ctx)
    return {"s_mean": mean.item(), "s_std": std.item()}


@register("clip_b", kind="weight", config=ClipBConfig, step_stats=clip_b_stats)
def clip_b_weight(ctx: LossContext, cfg: ClipBConfig):
    """Clip-B's token weight (arXiv:2602.03392, Eq. 12-14): 0 on A_t < 0 tokens with S_t - mean(S) < -mu std(S), else 1.

    Reads: ``ctx.advantages``, ``ctx.old_log_prob``, ``ctx.old_prob``, ``ctx.old_entropy`` (S_t, by
    ``discriminator_s``), ``ctx.response_mask``, ``ctx.stats`` (``s_mean``, ``s_std`` of ``clip_b_stats``),
    ``ctx.log_prob`` (its dtype only).
    """
    z = discriminator_s(ctx) - ctx.stats["s_mean"]
    drop = (ctx.advantages < 0) & (z < -cfg.mu * ctx.stats["s_std"]) & ctx.response_mask
    return (~drop).to(ctx.log_prob.dtype), {"dropped_frac": valid_token_mean(drop, ctx)}
