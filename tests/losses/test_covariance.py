"""Clip-Cov, KL-Cov and SENT: the driver-side covariance selections (hand-computed) and the terms the workers add."""

from __future__ import annotations

import math

import pytest
import torch

from entropy_verl.losses import run_method
from entropy_verl.losses.covariance import randperm_prefix, token_covariance


def test_token_covariance_hand_computed_and_padding_never_selected(token_ctx):
    ctx = token_ctx([0.5, 0.25, 0.125, 0.9], [2.0, 0.0, -2.0, 5.0], [1, 1, 1, 0], [0.5] * 4)
    lp = [math.log(0.5), math.log(0.25), math.log(0.125)]
    a_mean, lp_mean = 0.0, sum(lp) / 3
    expected = [(a - a_mean) * (x - lp_mean) for a, x in zip([2.0, 0.0, -2.0], lp, strict=True)]
    cov = token_covariance(ctx)
    assert cov[0, :3].tolist() == pytest.approx(expected) and cov[0, 3].item() == float("-inf")


def test_clip_cov_selection_is_seeded_bounded_and_counted(token_ctx, method):
    torch.manual_seed(0)
    n = 400
    ctx = token_ctx(torch.rand(n).clamp(0.01, 0.99).tolist(), (torch.randn(n) * 2).tolist(), [1] * n, [0.5] * n)
    spec, cfg = method("clip_cov_global", ratio=0.02, lower_bound=0.5, upper_bound=3.0)
    sel = spec.step_selection(ctx, cfg, torch.Generator().manual_seed(7))
    cov = token_covariance(ctx)
    assert int(sel.sum()) == 8  # int(0.02 * 400)
    assert torch.all((cov[sel.bool()] > 0.5) & (cov[sel.bool()] < 3.0))
    assert torch.equal(sel, spec.step_selection(ctx, cfg, torch.Generator().manual_seed(7)))  # same seed, same tokens
    assert not torch.equal(sel, spec.step_selection(ctx, cfg, torch.Generator().manual_seed(8)))
    ctx.selections = {"clip_cov_global": sel}
    w, m = run_method(ctx, spec, cfg)
    assert torch.equal(w, 1.0 - sel) and m["clip_cov_global/detached_frac"] == pytest.approx(8 / n)


@pytest.mark.parametrize(
    ("n", "count"), [(0, 3), (1, 1), (2, 1), (5, 2), (5, 3), (5, 4), (7, 5), (1000, 7), (1000, 999), (3_000_000, 5001)]
)
def test_randperm_prefix_is_randperms_prefix_and_leaves_the_generator_as_randperm_does(n, count):
    ours, theirs = torch.Generator().manual_seed(n + count), torch.Generator().manual_seed(n + count)
    assert torch.equal(randperm_prefix(n, count, ours), torch.randperm(n, generator=theirs)[:count])
    assert torch.equal(torch.randint(0, 2**62, (4,), generator=ours), torch.randint(0, 2**62, (4,), generator=theirs))


def test_clip_cov_with_no_candidates_selects_nothing_and_without_the_trainer_fails_clearly(token_ctx, method):
    ctx = token_ctx([0.5] * 3, [1.0] * 3, [1, 1, 1], [0.5] * 3)  # zero-variance advantages: every Cov is 0
    spec, cfg = method("clip_cov_global")
    assert spec.step_selection(ctx, cfg, torch.Generator()).sum() == 0
    with pytest.raises(RuntimeError, match="entropy_sync"):
        run_method(ctx, spec, cfg)


def test_kl_cov_global_top_k_and_penalty_value(token_ctx, method):
    ctx = token_ctx(
        [0.5, 0.25, 0.125, 0.9], [2.0, 0.0, -2.0, 1.0], [1, 1, 1, 1], [0.5] * 4, log_ratio=[0.1, -0.3, 0.2, -0.05]
    )
    spec, cfg = method("kl_cov_global", ratio=0.5, coef=2.0)
    sel = spec.step_selection(ctx, cfg, torch.Generator())
    # A - mean(A) = [1.75, -0.25, -2.25, 0.75], logp - mean(logp) = [0.373, -0.320, -1.013, 0.961]
    # Cov = [0.653, 0.080, 2.280, 0.721]: the top 2 of 4 are tokens 2 and 3
    assert sel[0].tolist() == [0.0, 0.0, 1.0, 1.0]
    ctx.selections = {"kl_cov_global": sel}
    loss, m = run_method(ctx, spec, cfg)
    assert loss.item() == pytest.approx(2.0 * (0.2 + 0.05) / 4)  # token-mean over all 4 valid tokens
    assert m["kl_cov_global/selected_frac"] == pytest.approx(0.5)


def test_sent_selection_low_entropy_tokens_high_and_low_covariance(token_ctx, method):
    p = [0.9, 0.8, 0.3, 0.6, 0.2, 0.7, 0.5, 0.4, 0.1, 0.95]
    adv = [1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0]
    entropy = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 5.0]  # the 10th token is the only high-entropy one
    ctx = token_ctx(p, adv, [1] * 10, entropy, log_ratio=[0.1] * 10)
    spec, cfg = method("sent", k=0.25, coef=0.1, low_entropy_fraction=0.8)
    weights = spec.step_selection(ctx, cfg, torch.Generator())
    # 0.8-quantile of the ten entropies: position 0.8 * 9 = 7.2 -> 0.8 + 0.2 * 0.1 = 0.82, so the first 8 are "low"
    cov = token_covariance(ctx)[0, :8]
    order = torch.argsort(cov, descending=True).tolist()
    m = int(0.25 * 8)  # 2
    expected = [0.0] * 10
    for i in order[:m]:
        expected[i] = 2.0
    for i in order[-m:]:
        expected[i] = 0.5
    assert weights[0].tolist() == expected
    ctx.selections = {"sent": weights}
    loss, _ = run_method(ctx, spec, cfg)
    assert loss.item() == pytest.approx(0.1 * (2 * 2.0 + 2 * 0.5) * 0.1 / 10)
    few = token_ctx([0.5] * 3, [1.0] * 3, [1] * 3, [0.1] * 3)
    assert spec.step_selection(few, method("sent")[1], torch.Generator()).sum() == 0  # k*n < 1


def test_pg_unclipped_has_no_clip(actor_config):
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    old = torch.log(torch.tensor([[0.2, 0.5]]))
    new = (old + torch.tensor([[math.log(2.0), math.log(0.5)]])).requires_grad_()
    adv = torch.tensor([[1.0, -1.0]])
    loss, _ = get_policy_loss_fn("pg_unclipped")(
        old_log_prob=old,
        log_prob=new,
        advantages=adv,
        response_mask=torch.ones(1, 2, dtype=torch.bool),
        loss_agg_mode="token-mean",
        config=actor_config(),
    )
    assert loss.item() == pytest.approx((-2.0 + 0.5) / 2)  # vanilla PPO would clip r=2 to 1.2 and r=0.5 to 0.8
