"""The driver's whole-step work at cluster size: a step of 4096 responses x 8192 tokens (2^25 valid tokens, twice
what ``torch.quantile`` accepts) through every registered method's whole-step statistics and token selection and
the per-step diagnostics, as the trainer runs them (``trainer/whole_step.py``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from entropy_verl import registry
from entropy_verl.config import load_registry
from entropy_verl.diagnostics.token_stats import QUANTILES, THRESHOLDS, step_diagnostics
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


# ---- the same selections and statistics as the straightforward whole-tensor code -------------------------------------


def straightforward(ctx, methods, generator):
    """What the driver computed before the chunked passes and the radix select (torch.topk, torch.randperm, masked
    whole-tensor ops, torch.quantile, numpy's quantile): the reference for exactness."""
    mask = ctx.response_mask
    count = mask.sum().clamp(min=1)
    cov = (ctx.advantages - (ctx.advantages * mask).sum() / count) * (
        ctx.old_log_prob - (ctx.old_log_prob * mask).sum() / count
    )
    cov = cov.masked_fill(~mask, float("-inf"))
    n, out = int(mask.sum()), {}
    for spec, cfg in methods:
        selected = torch.zeros_like(ctx.advantages)
        if spec.name == "kl_cov_global":
            selected.view(-1)[torch.topk(cov.flatten(), selection_count(cfg.ratio, n)).indices] = 1.0
        elif spec.name == "clip_cov_global":
            candidates = torch.nonzero(mask & (cov > cfg.lower_bound) & (cov < cfg.upper_bound))
            chosen = candidates[torch.randperm(len(candidates), generator=generator)[: selection_count(cfg.ratio, n)]]
            selected[chosen[:, 0], chosen[:, 1]] = 1.0
        elif spec.name == "sent":
            low = mask & (ctx.old_entropy <= torch.quantile(ctx.old_entropy[mask], cfg.low_entropy_fraction))
            m = int(cfg.k * int(low.sum()))
            flat = selected.view(-1)
            flat[torch.topk(cov.masked_fill(~low, float("inf")).flatten(), m, largest=False).indices] = 0.5
            flat[torch.topk(cov.masked_fill(~low, float("-inf")).flatten(), m).indices] = 2.0
        elif spec.name == "clip_v":
            s = ctx.old_prob * (ctx.old_entropy + ctx.old_log_prob)
            x = ctx.old_entropy * ctx.old_sum_p2 + ctx.old_sum_p2_logp - s
            sigma = ((x - x[mask].mean()) ** 2)[mask].mean().sqrt()
            candidates = mask & (ctx.advantages < 0) & (x > cfg.mu * sigma)
            top = torch.topk(x.masked_fill(~candidates, float("-inf")).flatten(), selection_count(cfg.max_frac, n))
            selected.view(-1)[top.indices] = 1.0
        elif spec.name == "top_entropy":
            out["top_entropy/threshold"] = torch.quantile(ctx.old_entropy[mask], 1.0 - cfg.rho).item()
            continue
        else:
            continue
        out[spec.name] = selected
    entropy = ctx.old_entropy[mask].double().numpy()
    out.update(
        {f"entropy/p{round(q * 100)}": v for q, v in zip(QUANTILES, np.quantile(entropy, QUANTILES), strict=True)}
    )
    out.update({f"entropy/frac_above_{t:g}": float((entropy > t).mean()) for t in THRESHOLDS})
    out["entropy/cov_logp_adv"] = float(cov[mask].mean())
    return out


def test_selections_and_quantiles_are_the_straightforward_codes_on_the_radix_path(method):
    """512 x 1024 tokens (the radix select's sizes), values with ties, -0.0 and tiny negative entropies; Clip-V with
    more candidates than its cap. Every selection, threshold and entropy quantile is the reference's, exactly."""
    gen = torch.Generator().manual_seed(3)
    shape = (512, 1024)
    entropy = (torch.rand(shape, generator=gen) * 24).round() / 8  # ties
    entropy[:, ::9] = -0.0
    entropy[:, 1::13] = -1e-7
    old_log_prob = -torch.rand(shape, generator=gen) * 4
    sum_p2 = torch.rand(shape, generator=gen) * 0.9 + 0.05
    sum_p2_logp = sum_p2 * -torch.rand(shape, generator=gen) * 3
    advantages = torch.randn(shape[0], 1, generator=gen).expand(shape)
    mask = torch.ones(shape, dtype=torch.bool)
    ctx = StepFields(mask, old_log_prob, entropy, sum_p2, sum_p2_logp).context(advantages)
    load_registry()
    methods = [
        method("top_entropy"),
        method("kl_cov_global"),
        method("clip_cov_global", lower_bound=0.5, upper_bound=3.0),
        method("sent", k=0.01),
        method("clip_v", mu=1.0, max_frac=1e-3),
    ]
    stats, selections = whole_step_values(ctx, methods, torch.Generator().manual_seed(5))
    metrics = step_diagnostics(ctx)
    expected = straightforward(ctx, methods, torch.Generator().manual_seed(5))
    for name, selected in selections.items():
        assert torch.equal(selected, expected[name]), name
    assert selections["clip_v"].sum() == selection_count(1e-3, mask.numel())  # the cap bit
    assert stats["top_entropy/threshold"] == expected["top_entropy/threshold"]
    for key in [k for k in expected if k.startswith("entropy/")]:
        assert metrics[key] == expected[key], key


def test_a_padded_step_selects_the_same_tokens_as_its_valid_tokens_packed(method):
    """The selections of a step with padding are those of its valid tokens alone (packed into full rows), placed back
    at the valid positions: the padding (garbage here) is never read."""
    gen = torch.Generator().manual_seed(4)
    rows, length = 64, 2048
    lengths = torch.randint(length // 4, length + 1, (rows,), generator=gen)
    mask = torch.arange(length)[None] < lengths[:, None]
    n = int(mask.sum())
    fields = [torch.rand(n, generator=gen) * 3, -torch.rand(n, generator=gen) * 4]
    fields += [torch.rand(n, generator=gen) * 0.9 + 0.05, -torch.rand(n, generator=gen)]
    advantages = torch.randn(rows, generator=gen).repeat_interleave(lengths)

    def padded(values):
        return torch.full((rows, length), 37.0).masked_scatter_(mask, values)

    entropy, old_log_prob, sum_p2, sum_p2_logp = fields
    packed = StepFields(
        torch.ones(1, n, dtype=torch.bool), old_log_prob[None], entropy[None], sum_p2[None], sum_p2_logp[None]
    )
    with_padding = StepFields(mask, *(padded(f) for f in (old_log_prob, entropy, sum_p2, sum_p2_logp)))
    methods = [method("kl_cov_global"), method("sent", k=0.01), method("clip_cov_global"), method("clip_v", mu=1.0)]
    _, alone = whole_step_values(packed.context(advantages[None]), methods, torch.Generator().manual_seed(0))
    _, placed = whole_step_values(with_padding.context(padded(advantages)), methods, torch.Generator().manual_seed(0))
    for name in alone:
        assert torch.equal(placed[name][mask], alone[name][0]) and not placed[name][~mask].any(), name
    assert with_padding.token_mean_entropy() == pytest.approx(float(entropy.double().mean()), rel=1e-6)


def test_the_rollout_gap_split_by_the_weights_that_sampled_each_token_by_hand():
    """Three responses trained at a step whose pi_old is weights version 3: one sampled wholly by version 3, one cut
    by a sync (two tokens of version 2, then two of 3), one with no record (-1). Gaps |rollout - old| by hand."""
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    old = torch.tensor([[-1.0, -2.0, -0.5, 0.0], [-1.0, -1.0, -1.0, -1.0], [-3.0, -3.0, 0.0, 0.0]])
    rollout = old + torch.tensor([[1e-6, 2e-6, 0.0, 9.0], [0.2, 0.1, 3e-6, 0.0], [0.5, 0.5, 0.0, 0.0]])
    versions = torch.tensor([[3, 3, 3, 3], [2, 2, 3, 3], [-1, -1, -1, -1]])
    fields = StepFields(mask, old, torch.zeros_like(old), rollout_log_probs=rollout, token_versions=versions)
    stats, continued = fields.rollout_log_prob_gap_by_weights(pi_old_version=3)
    # version 3's valid tokens: 1e-6, 2e-6, 0 (row 0; the padded 9.0 is not valid) and 3e-6, 0 (row 1)
    assert stats["pi_old_weights/max"] == pytest.approx(3e-6, abs=2e-7)  # float32 around -1
    assert stats["pi_old_weights/mean"] == pytest.approx(6e-6 / 5, abs=2e-7)
    assert stats["older_weights/max"] == pytest.approx(0.2, rel=1e-5)
    assert stats["older_weights/mean"] == pytest.approx(0.15, rel=1e-5)
    assert continued == 2  # row 1's two version-3 tokens continue a trajectory begun on version 2
    # nothing recorded (another rollout backend): nothing to split
    assert StepFields(mask, old, torch.zeros_like(old), rollout_log_probs=rollout).rollout_log_prob_gap_by_weights(
        3
    ) == (
        {},
        0,
    )
