"""Per-step entropy diagnostics from tensors the step already has (the sampling policy's per-token entropy and
log-probs, the advantages, the response mask; padded (bsz, T)), no extra forward pass. Logged under ``entropy/``.

- distribution of token entropy: quantiles, fraction of tokens above fixed thresholds;
- entropy of positive- vs negative-advantage tokens (positive samples drive the collapse);
- batch token-level Cov(log p, A) (Cui et al., arXiv:2505.22617, Sec. 4: it tracks -dH step by step);
- the entropy discriminator S = p (H + log p) (Entropy Dynamics, arXiv:2602.03392, Sec. 4): rewarding a token with
  S > E[S] (p > e^-H roughly) lowers entropy;
- a first-order predicted entropy change of the step, -token-mean(A (S - E[S])) (the tabular-softmax policy-gradient
  step's dH up to the step size; E[S] = H sum p^2 + sum p^2 log p per position when the full-vocabulary sums are
  available, else the batch mean of S), and, one step later, the measured change with the running correlations of
  the prediction and of -Cov with it, per step and over 10-step windows.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from entropy_verl import metric_names
from entropy_verl.losses import LossContext
from entropy_verl.losses.clip_b import discriminator_mean_std, valid_discriminator
from entropy_verl.losses.clip_v import vocab_discriminator_gap
from entropy_verl.losses.covariance import valid_covariance
from entropy_verl.losses.masked import (
    OrderStatistics,
    chunked_reduce,
    chunked_sum,
    numpy_summary,
    valid,
    valid_count,
    valid_order,
)

QUANTILES = (0.1, 0.5, 0.9, 0.99)
THRESHOLDS = (0.1, 0.5, 1.0, 2.0)  # nats


def entropy_distribution(
    ctx: LossContext, rows: torch.Tensor | None = None, data_source: str | None = None
) -> dict[str, float]:
    """Quantiles of the valid tokens' entropy and the fractions above fixed thresholds (numpy's, on the float64
    values), over the step or over the ``rows`` (a boolean per response) of one ``data_source`` (which also get their
    mean: ``actor/entropy`` is the step's)."""
    if rows is None:  # the step's order statistics are shared with 80/20's and SENT's quantiles
        values, order = valid(ctx, "old_entropy"), valid_order(ctx, "old_entropy")
    else:
        values = ctx.old_entropy[ctx.response_mask & rows[:, None]]
        order = OrderStatistics(values)
    n = values.numel()
    if n == 0:
        return {}
    metrics = {}
    if data_source is not None:
        metrics[metric_names.diagnostic("mean", data_source)] = float(values.sum(dtype=torch.float64)) / n
    quantiles, above = numpy_summary(order, QUANTILES, THRESHOLDS)
    metrics.update(
        {
            metric_names.diagnostic(f"p{round(q * 100)}", data_source): v
            for q, v in zip(QUANTILES, quantiles, strict=True)
        }
    )
    metrics.update(
        {
            metric_names.diagnostic(f"frac_above_{t:g}", data_source): count / n
            for t, count in zip(THRESHOLDS, above, strict=True)
        }
    )
    return metrics


def entropy_by_data_source(ctx: LossContext, data_sources: list[str]) -> dict[str, float]:
    """``entropy_distribution`` per data source (each response's ``data_sources`` entry), when the step holds several:
    one global number hides a collapse in one domain."""
    if len(set(data_sources)) < 2:
        return {}
    metrics = {}
    for source in sorted(set(data_sources)):
        rows = torch.tensor([s == source for s in data_sources], device=ctx.response_mask.device)
        metrics.update(entropy_distribution(ctx, rows, source))
    return metrics


def entropy_by_advantage_sign(ctx: LossContext) -> dict[str, float]:
    """Mean entropy of the valid tokens with positive, and with negative, advantage."""

    def sums(entropy, advantages):
        sign = advantages.sign()  # float masks without a comparison's bools: pos 1 where A > 0, neg 1 where A < 0
        pos = sign.clamp(min=0)
        neg = pos - sign
        return torch.stack([(entropy * pos).sum(), pos.sum(), (entropy * neg).sum(), neg.sum()]).double()

    fields = valid(ctx, "old_entropy"), valid(ctx, "advantages")
    pos_sum, pos_count, neg_sum, neg_count = chunked_reduce(sums, lambda s: s.sum(0), *fields).tolist()
    out = {}
    for name, total, count in (("pos_adv", pos_sum, pos_count), ("neg_adv", neg_sum, neg_count)):
        if count:
            out[metric_names.diagnostic(f"{name}_mean")] = total / count
    return out


def logp_advantage_covariance(ctx: LossContext) -> float:
    """mean over valid tokens of (log p - mean log p)(A - mean A): the mean of Clip-Cov's per-token covariance."""
    return float(valid_covariance(ctx).mean()) if valid_count(ctx) else math.nan


def predicted_entropy_change(ctx: LossContext) -> float:
    """-token-mean(A (S - E[S])): the first-order entropy change of a policy-gradient step on these tokens, per unit
    step size, for a softmax over free logits (exact there; a predictor up to scale for a network). E[S] is Clip-V's
    per-position expectation when the full-vocabulary sums are there, else the batch mean of S (as Clip-B uses)."""
    advantages, n = valid(ctx, "advantages"), max(valid_count(ctx), 1)
    if ctx.old_sum_p2 is not None:  # S - E[S] = -(N - S), Clip-V's gap, exactly (rounding is sign-symmetric)
        return chunked_sum(torch.mul, advantages, vocab_discriminator_gap(ctx)) / n
    mean = discriminator_mean_std(ctx)[0]
    return -chunked_sum(lambda a, s: a * (s - mean), advantages, valid_discriminator(ctx)) / n


def step_diagnostics(ctx: LossContext, data_sources: list[str] | None = None) -> dict[str, float]:
    """Every per-step diagnostic above, from a sampling-policy context (``LossContext.of_sampling_policy``), and with
    each response's data source, the entropy per source."""
    metrics = {**entropy_distribution(ctx), **entropy_by_advantage_sign(ctx)}
    metrics.update(entropy_by_data_source(ctx, data_sources) if data_sources else {})
    n = valid_count(ctx)
    if n:
        s_mean, s_std = discriminator_mean_std(ctx)
        s_negative = chunked_reduce(lambda s: torch.count_nonzero(s < 0), torch.sum, valid_discriminator(ctx))
        metrics.update(
            {
                metric_names.diagnostic("cov_logp_adv"): logp_advantage_covariance(ctx),
                metric_names.diagnostic("s_mean"): float(s_mean),
                metric_names.diagnostic("s_std"): float(s_std),
                metric_names.diagnostic("s_neg_frac"): int(s_negative) / n,
                metric_names.diagnostic("predicted_change"): predicted_entropy_change(ctx),
            }
        )
    return metrics


CHANGE_WINDOW = 10  # steps summed per window when the claims are checked over windows (per-step changes are noisy)
MIN_PAIRS = 3  # a correlation is reported from this many pairs (or windows) on


def correlation(x, y) -> float | None:
    """Pearson's r of two equal-length sequences over the pairs where both are finite; None with fewer than
    ``MIN_PAIRS`` such pairs or no spread."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    if len(x) < MIN_PAIRS or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def window_sums(values, window: int = CHANGE_WINDOW) -> list[float]:
    """Sums over consecutive non-overlapping windows of ``window`` values (a last partial window is dropped)."""
    return [float(sum(values[i : i + window])) for i in range(0, len(values) - window + 1, window)]


def change_noise_share(measured, window: int = CHANGE_WINDOW) -> dict[str, float]:
    """How much of the measured entropy changes is batch noise, from the changes alone. Each step's entropy is
    measured on a fresh batch, H_t = h_t + e_t with independent noise e_t of variance s2, so a change
    d_t = H_{t+1} - H_t carries e_{t+1} - e_t: variance 2 s2 and lag-1 autocovariance -s2 (consecutive changes share
    e_{t+1}). Hence s2 = -(lag-1 autocovariance of d) (a smooth true change adds positive autocovariance, so this
    errs low) and the noise's share of the variance of one change, 2 s2 / var(d), and of a ``window``-step sum, which
    telescopes to H_end - H_start and so carries the same 2 s2. A predictor of the true change h_{t+1} - h_t, however
    exact, correlates with the measured one by at most sqrt(1 - share). An estimate: over ~100 steps it scatters and
    can pass 1. NaN where there are too few changes or no spread."""
    d = np.asarray(measured, dtype=float)
    d = d[np.isfinite(d)]
    sums = np.asarray(window_sums(list(d), window))
    if len(d) < 2 * MIN_PAIRS or len(sums) < MIN_PAIRS:
        return {"step": math.nan, "window": math.nan}
    centred = d - d.mean()
    noise = max(-float(np.mean(centred[:-1] * centred[1:])), 0.0)
    return {kind: 2 * noise / var if var > 0 else math.nan for kind, var in (("step", d.var()), ("window", sums.var()))}


class EntropyChangeTracker:
    """Pairs each step's predicted change and -Cov(log p, A) with the change measured at the next step (token-mean
    entropy of the next rollout minus this one's) and keeps their running Pearson correlations, per step and over
    non-overlapping ``CHANGE_WINDOW``-step sums: batch noise dominates a single step's change (on the embedded default
    per-step correlations stay near 0 where the windowed ones do not), so the windowed one is the readable one."""

    def __init__(self):
        self.pending: tuple[float, float, float] | None = None  # (predicted change, -Cov, entropy) of the last step
        self.pairs: list[tuple[float, float, float]] = []  # (predicted, -Cov, measured)

    def update(self, predicted: float, entropy: float, cov: float = math.nan) -> dict[str, float]:
        metrics = {}
        if self.pending is not None:
            measured = entropy - self.pending[-1]
            self.pairs.append((*self.pending[:2], measured))
            metrics[metric_names.diagnostic("measured_change")] = measured
            metrics.update(self.correlations())
        self.pending = (float(predicted), -float(cov), float(entropy))
        return metrics

    def correlations(self) -> dict[str, float]:
        """``entropy/{predicted,neg_cov}_vs_measured_corr`` (per step) and ``..._corr_window`` (window sums), each
        once it has 3 pairs (3 windows) with spread."""
        if not self.pairs:
            return {}
        predicted, neg_cov, measured = (list(column) for column in zip(*self.pairs, strict=True))
        out = {}
        for name, values in (("predicted", predicted), ("neg_cov", neg_cov)):
            for suffix, x, y in (("", values, measured), ("_window", window_sums(values), window_sums(measured))):
                if (r := correlation(x, y)) is not None:
                    out[metric_names.diagnostic(f"{name}_vs_measured_corr{suffix}")] = r
        return out

    def state_dict(self) -> dict:
        return {"pending": self.pending, "pairs": self.pairs}

    def load_state_dict(self, state: dict) -> None:
        def widened(t):  # a checkpoint from before -Cov was tracked: (predicted, entropy or measured)
            return (t[0], math.nan, t[1]) if len(t) == 2 else tuple(t)

        self.pending = None if state["pending"] is None else widened(state["pending"])
        self.pairs = [widened(p) for p in state["pairs"]]
