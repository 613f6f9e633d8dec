"""Clip-V, the vocabulary entropy discriminator (Entropy Dynamics in RLVR, arXiv:2602.03392, Sec. 4, Eq. 15).

    S_t = p_t (H_t + log p_t)                        as in Clip-B: a step on token t changes entropy by ~ -a (S_t - N_t)
    N_t = E_{i~pi_t}[S_i] = H_t sum_i p_i^2 + sum_i p_i^2 log p_i         (full vocabulary, at position t)
    x_t = N_t - S_t,  sigma_x = std(x) over the step's valid tokens
    drop (weight 0) tokens with A_t < 0 and x_t > mu * sigma_x; if more than max(int(max_frac * n), 1) qualify, drop
    only that many, those with the largest x_t

Clip-B compares S_t with the batch's mean; Clip-V compares it with its own position's expectation, which needs the
sampling policy's full-vocabulary sums: the trainer asks verl's old-log-prob forward for them
(``entropy_verl.engine``). A penalised token with x_t >> 0 is one whose push-down raises the other tokens' already
dominant mass, i.e. lowers entropy the most. The selection is global over the step's batch (all ranks): the driver
computes it once and the workers read it (``step_selection``). Zero spread of x (sigma < 1e-12) drops nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from entropy_verl.registry import VOCAB_STATS, register
from entropy_verl.schedule import Scheduled

from .clip_b import valid_discriminator
from .context import LossContext, memoized
from .masked import (
    OrderStatistics,
    chunked_map,
    chunked_nonzero,
    mean_std,
    padded_selection,
    selection_count,
    top_k,
    valid,
    valid_count,
    valid_token_mean,
)

MIN_SIGMA = 1e-12


@dataclass(frozen=True)
class ClipVConfig:
    mu: Scheduled = 8.5
    """Drop A < 0 tokens whose gap x = N - S exceeds mu standard deviations of x; >= 0 (paper: 8.5)."""
    max_frac: float = 1e-4
    """At most this fraction of the step's tokens is dropped, the largest gaps first; in (0, 1] (paper: 1e-4)."""

    def __post_init__(self):
        if self.mu < 0:
            raise ValueError(f"mu must be >= 0, got {self.mu}")
        if not 0.0 < self.max_frac <= 1.0:
            raise ValueError(f"max_frac must be in (0, 1], got {self.max_frac}")


def vocab_discriminator_gap(ctx: LossContext) -> torch.Tensor:
    """x_t = N_t - S_t at the valid tokens, flat (``masked.valid``'s order), with N_t = E_{i~pi_t}[S_i] = H sum p^2 +
    sum p^2 log p from the sampling policy's full-vocabulary sums; once per step on the driver's context."""
    if ctx.old_sum_p2 is None or ctx.old_sum_p2_logp is None:
        raise RuntimeError(
            "clip_v needs the sampling policy's sum p^2 and sum p^2 log p per token, which the entropy_sync "
            "trainer asks verl's old-log-prob forward for; none arrived"
        )
    return memoized(
        ctx,
        "vocab_discriminator_gap",
        lambda: chunked_map(
            lambda h, p2, p2_logp, s: (h * p2 + p2_logp) - s,
            valid(ctx, "old_entropy"),
            valid(ctx, "old_sum_p2"),
            valid(ctx, "old_sum_p2_logp"),
            valid_discriminator(ctx),
        ),
    )


def clip_v_selection(ctx: LossContext, cfg: ClipVConfig, generator: torch.Generator) -> torch.Tensor:
    """1 on the tokens Clip-V drops this step, 0 elsewhere (arXiv:2602.03392, Eq. 15); deterministic: the generator is
    unused.

    Reads: ``ctx.advantages``, ``ctx.response_mask``, and for x_t = N_t - S_t (``vocab_discriminator_gap``)
    ``ctx.old_entropy``, ``ctx.old_sum_p2``, ``ctx.old_sum_p2_logp``, ``ctx.old_log_prob``.
    """
    x = vocab_discriminator_gap(ctx).float()
    n = valid_count(ctx)
    if n == 0:
        return torch.zeros(ctx.response_mask.shape, dtype=torch.float32, device=x.device)
    _, sigma = mean_std(x)  # population std, over every valid token
    if sigma < MIN_SIGMA:
        return torch.zeros(ctx.response_mask.shape, dtype=torch.float32, device=x.device)
    threshold = cfg.mu * sigma
    candidates = chunked_nonzero(lambda a, v: (a < 0) & (v > threshold), valid(ctx, "advantages"), x)
    cap = selection_count(cfg.max_frac, n)
    if candidates.numel() > cap:  # keep the cap most violating (ties at the cut: the first ones)
        candidates = candidates[top_k(OrderStatistics(x[candidates]), cap)]
    return padded_selection(ctx, [(candidates, 1.0)], torch.float32)


@register("clip_v", kind="weight", config=ClipVConfig, step_selection=clip_v_selection, needs=(VOCAB_STATS,))
def clip_v_weight(ctx: LossContext, cfg: ClipVConfig):
    """Clip-V's token weight (arXiv:2602.03392, Eq. 15): 0 on the tokens the driver's selection drops, else 1.

    Reads: ``ctx.selection`` (``clip_v_selection``'s), ``ctx.response_mask``.
    """
    selected = ctx.selection * ctx.response_mask
    return 1.0 - selected, {"dropped_frac": valid_token_mean(selected, ctx)}
