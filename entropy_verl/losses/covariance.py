"""Clip-Cov and KL-Cov with global, seeded, detached token selection (Cui et al., "The Entropy Mechanism of
Reinforcement Learning for Reasoning Language Models", arXiv:2505.22617, Sec. 4, Eq. 10-12).

    Cov_t = (A_t - mean(A)) (log pi_old,t - mean(log pi_old))        over all valid tokens of the step
    clip_cov_global:  detach ratio*N random tokens with lb < Cov_t < ub           (a token weight of 0)
    kl_cov_global:    + coef * token-mean(1[t in top k*N by Cov] |log pi_t - log pi_old,t|), no PPO clip

Differences from verl's ``clip_cov`` / ``kl_cov`` (still available under those names): the covariance is computed from
the sampling policy, so it carries no gradient; the means and the selection cover the whole step's batch, all ranks
together, not each rank's micro-batch; the random choice is drawn from a generator seeded by (seed, step) on the
driver. Selection happens before the update, when every ratio is 1, so verl's "skip tokens PPO already clipped"
filter has nothing to skip. Like verl, at least one token is selected (max(int(ratio * N), 1)).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from entropy_verl.registry import coef_is_zero, register
from entropy_verl.schedule import Scheduled

from .context import LossContext, memoized
from .masked import (
    OrderStatistics,
    chunked_map,
    nth_true,
    padded_selection,
    selected_token_mean,
    selection_count,
    top_k,
    valid,
    valid_count,
    valid_token_mean,
)
from .pg_unclipped import LOSS_MODE as PG_UNCLIPPED


def valid_covariance(ctx: LossContext) -> torch.Tensor:
    """Cov_t at the valid tokens of ``ctx``, flat (``masked.valid``'s order), with the means over them; once per step on
    the driver's context, for every method and the diagnostics."""

    def compute():
        adv, logp = valid(ctx, "advantages"), valid(ctx, "old_log_prob")
        count = torch.tensor(max(valid_count(ctx), 1), device=adv.device)
        adv_mean, logp_mean = adv.sum() / count, logp.sum() / count
        return chunked_map(lambda a, lp: (a - adv_mean).mul_(lp - logp_mean), adv, logp)

    return memoized(ctx, "covariance", compute)


def covariance_order(ctx: LossContext) -> OrderStatistics:
    """``OrderStatistics`` of Cov_t over the valid tokens; once per step on the driver's context (KL-Cov, SENT)."""
    return memoized(ctx, "covariance_order", lambda: OrderStatistics(valid_covariance(ctx)))


def token_covariance(ctx: LossContext) -> torch.Tensor:
    """Cov_t over the valid tokens of ``ctx``, (bsz, T); -inf at padding so it is never selected."""
    cov = valid_covariance(ctx)
    padded = torch.full(ctx.response_mask.shape, float("-inf"), dtype=cov.dtype, device=cov.device)
    return padded.masked_scatter_(ctx.response_mask, cov)


RANDPERM_SHUFFLE_MAX = (2**32 - 1) // 20  # below this n, torch's CPU randperm is the forward Fisher-Yates shuffle


def randperm_prefix(n: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``torch.randperm(n, generator=generator)[:count]``, the generator left where randperm leaves it, without
    shuffling all n (a step's Clip-Cov candidates are millions, its draw thousands). torch's CPU randperm swaps entry i
    with entry i + random() % (n - i) for i = 0 .. n - 2, one 32-bit draw each, so its first ``count`` entries follow
    from the first ``count`` draws; the remaining draws are made and dropped. The draws are read as 64-bit integers
    (torch's only full-width read), two 32-bit draws each, the first in the high word."""
    if generator.device.type != "cpu" or count >= n - 1 or n >= RANDPERM_SHUFFLE_MAX:
        return torch.randperm(n, generator=generator)[:count]
    words = torch.empty((count + 1) // 2, dtype=torch.int64).random_(-(2**63), None, generator=generator)
    draws = words.view(torch.int32).view(-1, 2).flip(1).reshape(-1).to(torch.int64) & 0xFFFFFFFF  # little-endian
    offsets = draws[:count] % (n - torch.arange(count))
    moved, first = {}, []
    for i, offset in enumerate(offsets.tolist()):
        j = i + offset
        first.append(moved.get(j, j))  # entry i takes entry j's value, final from here on
        moved[j] = moved.get(i, i)
    torch.empty(n - 1 - draws.numel(), dtype=torch.bool).random_(generator=generator)  # one 32-bit draw each
    return torch.tensor(first, dtype=torch.int64)


@dataclass(frozen=True)
class ClipCovConfig:
    ratio: Scheduled = 2e-4
    """Fraction of the step's tokens detached, drawn at random among lower_bound < Cov < upper_bound; in (0, 1]
    (paper: 2e-4)."""
    lower_bound: float = 1.0
    """Candidates have Cov above this (paper: 1)."""
    upper_bound: float = 5.0
    """Candidates have Cov below this; > lower_bound (paper: 5)."""

    def __post_init__(self):
        if not 0.0 < self.ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {self.ratio}")
        if self.lower_bound >= self.upper_bound:
            raise ValueError(f"lower_bound must be < upper_bound, got {self.lower_bound} >= {self.upper_bound}")


def clip_cov_selection(ctx: LossContext, cfg: ClipCovConfig, generator: torch.Generator) -> torch.Tensor:
    """1 on ratio * N tokens drawn with ``generator`` among those with lower_bound < Cov_t < upper_bound, 0 elsewhere
    (arXiv:2505.22617, Sec. 4, Eq. 10-12): the candidates in row-major order, the first ratio * N of a
    ``torch.randperm`` of them.

    Reads: ``ctx.advantages``, ``ctx.old_log_prob`` (Cov_t, by ``valid_covariance``), ``ctx.response_mask``.
    """
    cov = valid_covariance(ctx)
    candidates = chunked_map(lambda c: (c > cfg.lower_bound) & (c < cfg.upper_bound), cov)
    count = selection_count(cfg.ratio, valid_count(ctx))
    # the drawn ranks among the candidates in row-major order (torch.nonzero's), without listing the millions of them
    drawn = randperm_prefix(int(torch.count_nonzero(candidates)), count, generator)
    return padded_selection(ctx, [(nth_true(candidates, drawn.to(cov.device)), 1.0)], cov.dtype)


@register("clip_cov_global", kind="weight", config=ClipCovConfig, step_selection=clip_cov_selection)
def clip_cov_weight(ctx: LossContext, cfg: ClipCovConfig):
    """Clip-Cov's token weight (arXiv:2505.22617, Sec. 4, Eq. 10-12): 0 (detached) on the driver's selection, else 1.

    Reads: ``ctx.selection`` (``clip_cov_selection``'s), ``ctx.response_mask``.
    """
    selected = ctx.selection * ctx.response_mask
    return 1.0 - selected, {"detached_frac": valid_token_mean(selected, ctx)}


@dataclass(frozen=True)
class KLCovConfig:
    ratio: Scheduled = 2e-3
    """Fraction of the step's tokens, the highest-Cov ones, that get the KL penalty; in (0, 1] (paper: 2e-3 for 7B,
    2e-4 for 32B)."""
    coef: Scheduled = 1.0
    """Weight of the penalty coef * |log pi - log pi_old|; >= 0 (paper: 1)."""

    def __post_init__(self):
        if not 0.0 < self.ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {self.ratio}")
        if self.coef < 0:
            raise ValueError(f"coef must be >= 0, got {self.coef}")


def kl_cov_selection(ctx: LossContext, cfg: KLCovConfig, generator: torch.Generator) -> torch.Tensor:
    """1 on the ratio * N tokens with the highest Cov_t, 0 elsewhere (arXiv:2505.22617, Sec. 4, Eq. 10-12); of tokens
    tied at the cut, the first in row-major order; the generator is unused.

    Reads: ``ctx.advantages``, ``ctx.old_log_prob`` (Cov_t, by ``valid_covariance``), ``ctx.response_mask``.
    """
    top = top_k(covariance_order(ctx), selection_count(cfg.ratio, valid_count(ctx)))
    return padded_selection(ctx, [(top, 1.0)], valid_covariance(ctx).dtype)


def selected_kl_penalty(ctx: LossContext, per_token_coef: torch.Tensor) -> torch.Tensor:
    """token-mean over all valid tokens of per_token_coef * |log pi - log pi_old| (verl's normaliser)."""
    return selected_token_mean(per_token_coef * (ctx.log_prob - ctx.old_log_prob).abs(), ctx.response_mask, ctx)


@register(
    "kl_cov_global",
    kind="term",
    config=KLCovConfig,
    step_selection=kl_cov_selection,
    loss_mode=PG_UNCLIPPED,
    ratio_only=True,  # |log pi - log pi_old| and its gradient are 0 while pi = pi_old
    no_op=coef_is_zero,
)
def kl_cov_term(ctx: LossContext, cfg: KLCovConfig):
    """KL-Cov's penalty coef * token-mean(1[t selected] |log pi_t - log pi_old,t|) (arXiv:2505.22617, Eq. 10-12).

    Reads: ``ctx.selection`` (``kl_cov_selection``'s), ``ctx.log_prob``, ``ctx.old_log_prob``, ``ctx.response_mask``,
    ``ctx.global_batch_info`` (verl's token-mean normaliser, by ``selected_token_mean``).
    """
    selected = ctx.selection * ctx.response_mask
    penalty = selected_kl_penalty(ctx, cfg.coef * selected)
    return penalty, {"selected_frac": valid_token_mean(selected, ctx), "penalty": penalty.item()}
