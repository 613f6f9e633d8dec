"""The driver's whole-step work at cluster size: a step of 4096 responses x 8192 tokens (2^25 valid tokens, twice
what ``torch.quantile`` accepts) through every registered method's whole-step statistics and token selection and
the per-step diagnostics, as the trainer runs them (``trainer/whole_step.py``)."""

from __future__ import annotations

import math

import pytest
import torch

from entropy_verl import registry
from entropy_verl.config import load_registry
from entropy_verl.diagnostics.token_stats import step_diagnostics
from entropy_verl.losses.masked import TORCH_QUANTILE_MAX, quantile, selection_count
from entropy_verl.trainer.whole_step import StepFields, whole_step_values

BSZ, T = 4096, 8192


@pytest.fixture(scope="module")
def cluster_step():
    """Every token valid; entropies, log-probs and full-vocabulary sums in their ranges; +-1 advantages per response."""
    gen = torch.Generator().manual_seed(0)
    entropy = torch.rand(BSZ, T, generator=gen).mul_(3.0)
    old_log_probs = torch.rand(BSZ, T, generator=gen).mul_(-4.0)
    sum_p2 = torch.rand(BSZ, T, generator=gen).mul_(0.9).add_(0.05)
    sum_p2_logp = torch.rand(BSZ, T, generator=gen).mul_(-3.0).mul_(sum_p2)
    fields = StepFields(torch.ones(BSZ, T, dtype=torch.bool), old_log_probs, entropy, sum_p2, sum_p2_logp)
    advantages = torch.randint(0, 2, (BSZ, 1), generator=gen).float().mul_(2).sub_(1).expand(BSZ, T)
    return fields, fields.context(advantages)


def test_every_whole_step_statistic_selection_and_diagnostic_runs_at_2_to_the_25_tokens(cluster_step):
    fields, ctx = cluster_step
    n = BSZ * T
    assert n == 2**25 > TORCH_QUANTILE_MAX
    load_registry()
    methods = [
        (spec, spec.config_cls())
        for spec in registry.specs(*registry.LOSS_KINDS)
        if spec.step_stats or spec.step_selection
    ]
    expected = {"top_entropy", "clip_b", "steer", "clip_cov_global", "kl_cov_global", "sent", "clip_v"}
    assert {s.name for s, _ in methods} >= expected
    stats, selections = whole_step_values(ctx, methods, torch.Generator().manual_seed(1))
    assert all(math.isfinite(v) for v in stats.values()), stats
    # 80/20: the threshold keeps rho of the tokens (ties aside: entropies are continuous here)
    kept = int((ctx.old_entropy >= stats["top_entropy/threshold"]).sum())
    assert abs(kept - 0.2 * n) <= 2
    for name, values in selections.items():
        assert values.shape == (BSZ, T) and torch.isfinite(values).all(), name
    assert int(selections["kl_cov_global"].sum()) == selection_count(2e-3, n)
    assert int(selections["clip_cov_global"].sum()) <= selection_count(2e-4, n)
    assert int(selections["clip_v"].sum()) <= selection_count(1e-4, n)
    low = int((ctx.old_entropy <= quantile(ctx.old_entropy.flatten(), 0.8)).sum())
    assert int((selections["sent"] > 0).sum()) == 2 * int(2e-4 * low)  # top and bottom k of the low-entropy tokens
    metrics = step_diagnostics(ctx)
    assert len(metrics) >= 12 and all(math.isfinite(v) for v in metrics.values()), metrics
    assert 0.0 <= metrics["entropy/p10"] <= metrics["entropy/p50"] <= metrics["entropy/p99"] <= 3.0
    assert fields.token_mean_entropy() == pytest.approx(1.5, abs=1e-3)
    assert fields.sequence_mean_old_log_prob().shape == (BSZ,)


def test_quantile_is_torch_quantile_where_torch_works_and_exact_beyond():
    gen = torch.Generator().manual_seed(2)
    for n in (1, 2, 5, 1000, 4097):
        for values in (torch.rand(n, generator=gen), torch.randint(0, 4, (n,), generator=gen).float()):
            for q in (0.0, 0.2, 0.5, 0.8, 1 - 2e-4, 1.0):
                assert torch.equal(quantile(values, q), torch.quantile(values, q)), (n, q)
    big = torch.arange(TORCH_QUANTILE_MAX * 2, dtype=torch.float32).flip(0)  # n - 1 = 2^25 - 1: rank 0.25 * that
    assert quantile(big, 0.25).item() == pytest.approx(0.25 * (2**25 - 1), abs=1.0)
    assert math.isnan(quantile(torch.empty(0), 0.5).item())
