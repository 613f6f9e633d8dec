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

from entropy_verl.registry import register

from .context import LossContext
from .masked import selected_token_mean, selection_count, valid_token_mean
from .pg_unclipped import LOSS_MODE as PG_UNCLIPPED


def token_covariance(ctx: LossContext) -> torch.Tensor:
    """Cov_t over the valid tokens of ``ctx``; -inf at padding so it is never selected."""
    mask = ctx.response_mask
    count = mask.sum().clamp(min=1)
    adv_mean = (ctx.advantages * mask).sum() / count
    logp_mean = (ctx.old_log_prob * mask).sum() / count
    cov = (ctx.advantages - adv_mean) * (ctx.old_log_prob - logp_mean)
    return cov.masked_fill(~mask, float("-inf"))


@dataclass(frozen=True)
class ClipCovConfig:
    ratio: float = 2e-4
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
    (arXiv:2505.22617, Sec. 4, Eq. 10-12).

    Reads: ``ctx.advantages``, ``ctx.old_log_prob`` (Cov_t, by ``token_covariance``), ``ctx.response_mask``.
    """
    cov = token_covariance(ctx)
    candidates = torch.nonzero(ctx.response_mask & (cov > cfg.lower_bound) & (cov < cfg.upper_bound))
    count = selection_count(cfg.ratio, int(ctx.response_mask.sum()))
    chosen = candidates[torch.randperm(len(candidates), generator=generator)[:count]]
    selected = torch.zeros_like(cov)
    selected[chosen[:, 0], chosen[:, 1]] = 1.0
    return selected


@register("clip_cov_global", kind="weight", config=ClipCovConfig, step_selection=clip_cov_selection)
def clip_cov_weight(ctx: LossContext, cfg: ClipCovConfig):
    """Clip-Cov's token weight (arXiv:2505.22617, Sec. 4, Eq. 10-12): 0 (detached) on the driver's selection, else 1.

    Reads: ``ctx.selection`` (``clip_cov_selection``'s), ``ctx.response_mask``.
    """
    selected = ctx.selection * ctx.response_mask
    return 1.0 - selected, {"detached_frac": valid_token_mean(selected, ctx)}


@dataclass(frozen=True)
class KLCovConfig:
    ratio: float = 2e-3
    """Fraction of the step's tokens, the highest-Cov ones, that get the KL penalty; in (0, 1] (paper: 2e-3 for 7B,
    2e-4 for 32B)."""
    coef: float = 1.0
    """Weight of the penalty coef * |log pi - log pi_old|; >= 0 (paper: 1)."""

    def __post_init__(self):
        if not 0.0 < self.ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {self.ratio}")
        if self.coef < 0:
            raise ValueError(f"coef must be >= 0, got {self.coef}")


def kl_cov_selection(ctx: LossContext, cfg: KLCovConfig, generator: torch.Generator) -> torch.Tensor:
    """1 on the ratio * N tokens with the highest Cov_t, 0 elsewhere (arXiv:2505.22617, Sec. 4, Eq. 10-12); the
    generator is unused.

    Reads: ``ctx.advantages``, ``ctx.old_log_prob`` (Cov_t, by ``token_covariance``), ``ctx.response_mask``.
    """
    cov = token_covariance(ctx).flatten()
    top = torch.topk(cov, selection_count(cfg.ratio, int(ctx.response_mask.sum()))).indices
    selected = torch.zeros_like(cov)
    selected[top] = 1.0
    return selected.view_as(ctx.advantages)


def selected_kl_penalty(ctx: LossContext, per_token_coef: torch.Tensor) -> torch.Tensor:
    """token-mean over all valid tokens of per_token_coef * |log pi - log pi_old| (verl's normaliser)."""
    return selected_token_mean(per_token_coef * (ctx.log_prob - ctx.old_log_prob).abs(), ctx.response_mask, ctx)


@register("kl_cov_global", kind="term", config=KLCovConfig, step_selection=kl_cov_selection, loss_mode=PG_UNCLIPPED)
def kl_cov_term(ctx: LossContext, cfg: KLCovConfig):
    """KL-Cov's penalty coef * token-mean(1[t selected] |log pi_t - log pi_old,t|) (arXiv:2505.22617, Eq. 10-12).

    Reads: ``ctx.selection`` (``kl_cov_selection``'s), ``ctx.log_prob``, ``ctx.old_log_prob``, ``ctx.response_mask``,
    ``ctx.global_batch_info`` (verl's token-mean normaliser, by ``selected_token_mean``).
    """
    selected = ctx.selection * ctx.response_mask
    penalty = selected_kl_penalty(ctx, cfg.coef * selected)
    return penalty, {"selected_frac": valid_token_mean(selected, ctx), "penalty": penalty.item()}
