"""Token-weight and advantage-shaping methods against hand-computed values (masks, padding, edge cases), each run the
way the actor loss runs it (``run_method``: its own statistics and selection, metrics under its name)."""

from __future__ import annotations

import math

import pytest
import torch

from entropy_verl.losses import apply_loss_methods, run_method


def test_top_entropy_keeps_the_top_fraction_of_valid_tokens(token_ctx, method):
    # valid entropies 0.1 0.9 0.5 0.3 0.7 (the 6th token is padding with a huge entropy that must not count)
    ctx = token_ctx([0.5] * 6, [1.0] * 6, [1, 1, 1, 1, 1, 0], [0.1, 0.9, 0.5, 0.3, 0.7, 9.0])
    w, m = run_method(ctx, *method("top_entropy", rho=0.4, scope="micro_batch"))
    # 0.6-quantile of the sorted valid [0.1, 0.3, 0.5, 0.7, 0.9], linear interpolation at position 0.6 * 4 = 2.4:
    # 0.5 + 0.4 * (0.7 - 0.5) = 0.58
    assert m["top_entropy/threshold"] == pytest.approx(0.58)
    assert w.tolist() == [[0.0, 1.0, 0.0, 0.0, 1.0, 0.0]]
    assert m["top_entropy/kept_frac"] == pytest.approx(2 / 5)


def test_top_entropy_step_scope_uses_the_drivers_threshold_and_fails_without_it(token_ctx, method):
    ctx = token_ctx([0.5] * 3, [1.0] * 3, [1, 1, 1], [0.1, 0.2, 0.3], step_stats={"top_entropy": {"threshold": 0.15}})
    w, _ = run_method(ctx, *method("top_entropy", rho=0.2))
    assert w.tolist() == [[0.0, 1.0, 1.0]]
    ctx.step_stats = {"clip_b": {"threshold": 0.15}}  # another method's statistics are not top_entropy's
    with pytest.raises(RuntimeError, match="entropy_sync"):
        run_method(ctx, *method("top_entropy"))


def test_top_entropy_all_masked_selects_nothing(token_ctx, method):
    w, m = run_method(token_ctx([0.5] * 2, [1.0] * 2, [0, 0], [0.3, 0.4]), *method("top_entropy", scope="micro_batch"))
    assert m["top_entropy/kept_frac"] == 0.0 and not torch.isnan(w).any()


def test_entropy_advantage_hand_computed_and_sign_preserving(token_ctx, method):
    ctx = token_ctx([0.5] * 4, [1.0, -1.0, 0.2, 0.0], [1, 1, 1, 1], [1.0, 1.0, 1.0, 1.0])
    adv, m = run_method(ctx, *method("entropy_adv", alpha=0.4, kappa=2.0))
    # min(0.4*1, |A|/2): 0.4, 0.4, 0.1, 0.0
    assert adv[0].tolist() == pytest.approx([1.4, -0.6, 0.3, 0.0])
    assert m["entropy_adv/mean_bonus"] == pytest.approx(0.9 / 4)
    big = token_ctx([0.5], [-0.5], [1], [5.0])
    assert run_method(big, *method("entropy_adv"))[0].item() < 0  # bonus capped at |A|/kappa: sign kept


def test_pos_adv_reweight_fixed_and_from_the_controller(token_ctx, method):
    ctx = token_ctx([0.5] * 3, [1.0, -1.0, 0.0], [1, 1, 1], [0.5] * 3)
    spec, fixed = method("pos_adv_reweight", lam=0.1)
    assert run_method(ctx, spec, fixed)[0].tolist() == [[0.1, 1.0, 1.0]]
    scheduled = method("pos_adv_reweight", lam=None)[1]
    assert spec.reads_of(scheduled) == ("pos_adv_lambda",) and spec.reads_of(fixed) == ()
    with pytest.raises(RuntimeError, match="pos_adv_lambda"):  # the driver must broadcast what the method reads
        run_method(ctx, spec, scheduled)
    ctx.coefficients = {"pos_adv_lambda": 0.7}
    assert run_method(ctx, spec, scheduled)[0].tolist() == [[0.7, 1.0, 1.0]]


def test_clip_b_drops_only_negative_tokens_far_below_the_batch_mean(token_ctx, method):
    p = [0.9, 0.9, 0.9, 0.9, 0.05, 0.05]
    h = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    adv = [-1.0, 1.0, -1.0, 1.0, -1.0, 1.0]
    ctx = token_ctx(p, adv, [1] * 6, h)
    s = [pi * (hi + math.log(pi)) for pi, hi in zip(p, h, strict=True)]
    mean = sum(s) / 6
    std = math.sqrt(sum((x - mean) ** 2 for x in s) / 6)
    # S(0.9) = 0.9 * (0.5 + ln 0.9) = 0.355, S(0.05) = 0.05 * (0.5 + ln 0.05) = -0.125: only the p=0.05 tokens are
    # more than 0.5 sigma below the mean, and of those only the negative-advantage one is dropped
    w, m = run_method(ctx, *method("clip_b", mu=0.5, scope="micro_batch"))
    expected = [0.0 if (a < 0 and (x - mean) < -0.5 * std) else 1.0 for a, x in zip(adv, s, strict=True)]
    assert w.tolist() == [expected] and expected == [1.0, 1.0, 1.0, 1.0, 0.0, 1.0]
    assert m["clip_b/dropped_frac"] == pytest.approx(1 / 6)
    # scope step: the same drop from the driver's whole-step numbers
    spec, cfg = method("clip_b", mu=0.5)
    ctx.step_stats = {"clip_b": spec.step_stats(ctx, cfg)}
    assert run_method(ctx, spec, cfg)[0].tolist() == [expected]


def test_clip_b_zero_variance_drops_nothing(token_ctx, method):
    ctx = token_ctx([0.5] * 3, [-1.0] * 3, [1, 1, 1], [0.7] * 3)
    w, m = run_method(ctx, *method("clip_b", scope="micro_batch"))
    assert w.tolist() == [[1.0, 1.0, 1.0]] and m["clip_b/dropped_frac"] == 0.0


def clip_v_ctx(token_ctx, p, adv, mask, h, sum_p2, sum_p2_logp):
    ctx = token_ctx(p, adv, mask, h)
    ctx.old_sum_p2, ctx.old_sum_p2_logp = (torch.tensor([v], dtype=torch.float64) for v in (sum_p2, sum_p2_logp))
    return ctx


def test_clip_v_drops_negative_tokens_far_above_their_positions_expectation(token_ctx, method):
    # x = (H q + r) - p (H + log p) per token; sigma = population std of x over the valid tokens
    p, h = [0.9, 0.2, 0.2, 0.5, 0.5, 0.5], [0.3, 1.0, 1.0, 0.7, 0.7, 0.7]
    q, r = [0.82, 0.30, 0.30, 0.40, 0.40, 0.40], [-0.05, -0.20, -0.20, -0.20, -0.20, 0.50]
    adv = [-1.0, -1.0, 1.0, -1.0, 1.0, -1.0]
    mask = [1, 1, 1, 1, 1, 0]  # the last (padding) token would qualify and must not count
    x = [hi * qi + ri - pi * (hi + math.log(pi)) for pi, hi, qi, ri in zip(p, h, q, r, strict=True)]
    # x = 0.0208, 0.2219, 0.2219, 0.0766, 0.0766 on the valid tokens (0.7766 on the padding): mean 0.1235, sigma 0.0828
    valid = x[:5]
    mean = sum(valid) / 5
    sigma = math.sqrt(sum((v - mean) ** 2 for v in valid) / 5)
    assert sigma == pytest.approx(0.0828, abs=1e-4) and x[1] == pytest.approx(
        0.3 * 1.0 - 0.2 - 0.2 * (1.0 + math.log(0.2))
    )
    ctx = clip_v_ctx(token_ctx, p, adv, mask, h, q, r)
    spec, cfg = method("clip_v", mu=1.0, max_frac=1.0)
    ctx.selections = {"clip_v": spec.step_selection(ctx, cfg, None)}  # what the driver computes and the workers read
    w, m = run_method(ctx, spec, cfg)
    expected = [0.0 if (a < 0 and v > 1.0 * sigma and k) else 1.0 for a, v, k in zip(adv, x, mask, strict=True)]
    assert expected == [1.0, 0.0, 1.0, 1.0, 1.0, 1.0]  # token 2 has the same x but a positive advantage
    assert w.tolist() == [expected] and m["clip_v/dropped_frac"] == pytest.approx(1 / 5)


def test_clip_v_caps_the_dropped_tokens_at_max_frac_keeping_the_largest_gaps(token_ctx, method):
    n = 20
    p, h, q = [0.5] * n, [0.7] * n, [0.4] * n
    r = [-0.2] * 17 + [0.5, 0.9, 0.7]  # three tokens far above their expectation, all with A < 0
    ctx = clip_v_ctx(token_ctx, p, [-1.0] * n, [1] * n, h, q, r)
    spec, _ = method("clip_v")
    assert spec.step_selection(ctx, method("clip_v", mu=1.0, max_frac=0.15)[1], None).tolist()[0][17:] == [
        1.0,
        1.0,
        1.0,
    ]
    capped = spec.step_selection(ctx, method("clip_v", mu=1.0, max_frac=0.1)[1], None)  # cap int(0.1 * 20) = 2
    assert capped.tolist()[0][17:] == [0.0, 1.0, 1.0] and capped.sum() == 2
    one = spec.step_selection(ctx, method("clip_v", mu=1.0, max_frac=1e-4)[1], None)  # below one token: still one
    assert one.tolist()[0][18] == 1.0 and one.sum() == 1


def test_clip_v_zero_spread_empty_and_missing_statistics(token_ctx, method):
    spec, cfg = method("clip_v", mu=0.0)
    ctx = clip_v_ctx(token_ctx, [0.5] * 3, [-1.0] * 3, [1, 1, 1], [0.7] * 3, [0.4] * 3, [-0.2] * 3)
    assert spec.step_selection(ctx, cfg, None).sum() == 0  # sigma 0: nothing is "far"
    empty = clip_v_ctx(token_ctx, [0.5] * 3, [-1.0] * 3, [0, 0, 0], [0.7] * 3, [0.4] * 3, [-0.2] * 3)
    dropped = spec.step_selection(empty, cfg, None)
    assert dropped.sum() == 0 and torch.isfinite(dropped).all()
    with pytest.raises(RuntimeError, match="sum p\\^2"):
        spec.step_selection(token_ctx([0.5], [-1.0], [1], [0.7]), cfg, None)
    with pytest.raises(RuntimeError, match="token selection"):  # the workers' side without the driver's selection
        run_method(ctx, spec, cfg)


def test_steer_hand_computed_exp_and_linear(token_ctx, method):
    p, h, adv = [0.5, 0.9, 0.2, 0.5], [1.0, 0.3, 1.2, 9.0], [1.0, -2.0, 0.5, 3.0]
    ctx = token_ctx(p, adv, [1, 1, 1, 0], h)
    omega = [a * (1 - pi) * (math.log(pi) + hi) for pi, hi, a in zip(p, h, adv, strict=True)][:3]
    scale = max(max(abs(o) for o in omega), 0.02)
    k = -math.log(0.8) / scale
    w, m = run_method(ctx, *method("steer", lambda_min=0.8, scope="micro_batch"))
    assert w[0, :3].tolist() == pytest.approx([max(math.exp(-k * abs(o)), 0.8) for o in omega])
    assert min(w[0, :3].tolist()) == pytest.approx(0.8)  # the largest |Omega| gets lambda_min exactly
    assert m["steer/omega_max"] == pytest.approx(scale)
    w_lin, _ = run_method(ctx, *method("steer", lambda_min=0.8, mode="linear", scope="micro_batch"))
    assert w_lin[0, :3].tolist() == pytest.approx([1 - 0.2 * abs(o) / scale for o in omega])


def test_steer_tiny_changes_are_not_stretched_to_lambda_min(token_ctx, method):
    ctx = token_ctx([0.5, 0.5], [1e-4, -1e-4], [1, 1], [0.7, 0.7])
    w, _ = run_method(ctx, *method("steer", scope="micro_batch"))
    assert (w > 0.99).all()  # max|Omega| << 0.02 floor
    empty = token_ctx([0.5], [1.0], [0], [0.7])
    assert not torch.isnan(run_method(empty, *method("steer", scope="micro_batch"))[0]).any()


def test_token_weights_multiply_and_advantages_chain(token_ctx, method):
    ctx = token_ctx([0.5] * 4, [1.0, -1.0, 1.0, -1.0], [1] * 4, [0.1, 0.9, 0.8, 0.2])
    methods = [
        method("top_entropy", rho=0.5, scope="micro_batch"),
        method("pos_adv_reweight", lam=0.5),
        method("entropy_adv", alpha=0.4, kappa=2.0),
    ]
    shaped, weights, metrics = apply_loss_methods(ctx, methods)
    # advantages first (min(0.4H, 0.5)): 1.04, -0.64, 1.32, -0.92; then weights: top-50% entropy x lambda on A > 0
    assert shaped[0].tolist() == pytest.approx([1.04, -0.64, 1.32, -0.92])
    assert weights[0].tolist() == pytest.approx([0.0, 1.0, 0.5, 0.0])
    assert {"top_entropy/kept_frac", "pos_adv_reweight/lambda", "entropy_adv/mean_bonus"} <= set(metrics)
