"""Token-weight and advantage-shaping methods: values against hand-computed numbers (masks, padding, edge cases),
composition through verl's real ``ppo_loss``, and each method's claimed direction on a toy softmax policy."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from verl.utils import tensordict_utils as tu
from verl.workers.config import FSDPActorConfig

from entropy_verl.losses import (
    LossContext,
    apply_loss_methods,
    entropy_aware_loss,
    get_loss_method,
)
from entropy_verl.losses.clip_b import ClipBConfig, clip_b_weight
from entropy_verl.losses.clip_v import ClipVConfig, clip_v_selection, clip_v_weight
from entropy_verl.losses.entropy_advantage import (
    EntropyAdvantageConfig,
    entropy_advantage,
)
from entropy_verl.losses.pos_adv_reweight import PosAdvReweightConfig, pos_adv_reweight
from entropy_verl.losses.steer import SteerConfig, steer_weight
from entropy_verl.losses.top_entropy import TopEntropyConfig, top_entropy_weight


def ctx_of(old_prob, adv, mask, old_entropy, coefficients=None):
    log_prob = torch.log(torch.tensor([old_prob], dtype=torch.float64))
    return LossContext(
        log_prob=log_prob.clone(), old_log_prob=log_prob, advantages=torch.tensor([adv], dtype=torch.float64),
        response_mask=torch.tensor([mask], dtype=torch.bool), entropy=None,
        old_entropy=torch.tensor([old_entropy], dtype=torch.float64), coefficients=coefficients or {},
    )


# ---- values -----------------------------------------------------------------------------------------------------

def test_top_entropy_keeps_the_top_fraction_of_valid_tokens():
    # valid entropies 0.1 0.9 0.5 0.3 0.7 (the 6th token is padding with a huge entropy that must not count)
    ctx = ctx_of([0.5] * 6, [1.0] * 6, [1, 1, 1, 1, 1, 0], [0.1, 0.9, 0.5, 0.3, 0.7, 9.0])
    w, m = top_entropy_weight(ctx, TopEntropyConfig(rho=0.4, scope="micro_batch"))
    # 0.6-quantile of the sorted valid [0.1, 0.3, 0.5, 0.7, 0.9], linear interpolation at position 0.6 * 4 = 2.4:
    # 0.5 + 0.4 * (0.7 - 0.5) = 0.58
    assert m["top_entropy/threshold"] == pytest.approx(0.58)
    assert w.tolist() == [[0.0, 1.0, 0.0, 0.0, 1.0, 0.0]]
    assert m["top_entropy/kept_frac"] == pytest.approx(2 / 5)


def test_top_entropy_step_scope_uses_the_drivers_threshold_and_fails_without_it():
    ctx = ctx_of([0.5] * 3, [1.0] * 3, [1, 1, 1], [0.1, 0.2, 0.3], coefficients={"top_entropy/threshold": 0.15})
    w, _ = top_entropy_weight(ctx, TopEntropyConfig(rho=0.2))
    assert w.tolist() == [[0.0, 1.0, 1.0]]
    ctx.coefficients = {}
    with pytest.raises(RuntimeError, match="entropy_sync"):
        top_entropy_weight(ctx, TopEntropyConfig())


def test_top_entropy_all_masked_selects_nothing():
    w, m = top_entropy_weight(ctx_of([0.5] * 2, [1.0] * 2, [0, 0], [0.3, 0.4]), TopEntropyConfig(scope="micro_batch"))
    assert m["top_entropy/kept_frac"] == 0.0 and not torch.isnan(w).any()


def test_entropy_advantage_hand_computed_and_sign_preserving():
    ctx = ctx_of([0.5] * 4, [1.0, -1.0, 0.2, 0.0], [1, 1, 1, 1], [1.0, 1.0, 1.0, 1.0])
    adv, _ = entropy_advantage(ctx, EntropyAdvantageConfig(alpha=0.4, kappa=2.0))
    # min(0.4*1, |A|/2): 0.4, 0.4, 0.1, 0.0
    assert adv[0].tolist() == pytest.approx([1.4, -0.6, 0.3, 0.0])
    big = ctx_of([0.5], [-0.5], [1], [5.0])
    assert entropy_advantage(big, EntropyAdvantageConfig())[0].item() < 0  # bonus capped at |A|/kappa: sign kept
    with pytest.raises(ValueError, match="kappa"):
        EntropyAdvantageConfig(kappa=1.0)


def test_pos_adv_reweight_fixed_and_from_the_controller():
    ctx = ctx_of([0.5] * 3, [1.0, -1.0, 0.0], [1, 1, 1], [0.5] * 3)
    assert pos_adv_reweight(ctx, PosAdvReweightConfig(lam=0.1))[0].tolist() == [[0.1, 1.0, 1.0]]
    ctx.coefficients = {"pos_adv_lambda": 0.7}
    cfg = PosAdvReweightConfig(lam=None)
    assert cfg.reads_coefficient == "pos_adv_lambda" and PosAdvReweightConfig().reads_coefficient is None
    assert pos_adv_reweight(ctx, cfg)[0].tolist() == [[0.7, 1.0, 1.0]]


def test_clip_b_drops_only_negative_tokens_far_below_the_batch_mean():
    p = [0.9, 0.9, 0.9, 0.9, 0.05, 0.05]
    h = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    adv = [-1.0, 1.0, -1.0, 1.0, -1.0, 1.0]
    ctx = ctx_of(p, adv, [1] * 6, h)
    s = [pi * (hi + math.log(pi)) for pi, hi in zip(p, h)]
    mean = sum(s) / 6
    std = math.sqrt(sum((x - mean) ** 2 for x in s) / 6)
    # S(0.9) = 0.9 * (0.5 + ln 0.9) = 0.355, S(0.05) = 0.05 * (0.5 + ln 0.05) = -0.125: only the p=0.05 tokens are
    # more than 0.5 sigma below the mean, and of those only the negative-advantage one is dropped
    w, m = clip_b_weight(ctx, ClipBConfig(mu=0.5, scope="micro_batch"))
    expected = [0.0 if (a < 0 and (x - mean) < -0.5 * std) else 1.0 for a, x in zip(adv, s)]
    assert w.tolist() == [expected] and expected == [1.0, 1.0, 1.0, 1.0, 0.0, 1.0]
    assert m["clip_b/dropped_frac"] == pytest.approx(1 / 6)


def test_clip_b_zero_variance_drops_nothing():
    ctx = ctx_of([0.5] * 3, [-1.0] * 3, [1, 1, 1], [0.7] * 3)
    w, m = clip_b_weight(ctx, ClipBConfig(scope="micro_batch"))
    assert w.tolist() == [[1.0, 1.0, 1.0]] and m["clip_b/dropped_frac"] == 0.0


def clip_v_ctx(p, adv, mask, h, sum_p2, sum_p2_logp):
    ctx = ctx_of(p, adv, mask, h)
    ctx.old_sum_p2, ctx.old_sum_p2_logp = (torch.tensor([v], dtype=torch.float64) for v in (sum_p2, sum_p2_logp))
    return ctx


def test_clip_v_drops_negative_tokens_far_above_their_positions_expectation():
    # x = (H q + r) - p (H + log p) per token; sigma = population std of x over the valid tokens
    p, h = [0.9, 0.2, 0.2, 0.5, 0.5, 0.5], [0.3, 1.0, 1.0, 0.7, 0.7, 0.7]
    q, r = [0.82, 0.30, 0.30, 0.40, 0.40, 0.40], [-0.05, -0.20, -0.20, -0.20, -0.20, 0.50]
    adv = [-1.0, -1.0, 1.0, -1.0, 1.0, -1.0]
    mask = [1, 1, 1, 1, 1, 0]  # the last (padding) token would qualify and must not count
    x = [hi * qi + ri - pi * (hi + math.log(pi)) for pi, hi, qi, ri in zip(p, h, q, r)]
    # x = 0.0208, 0.2219, 0.2219, 0.0766, 0.0766 on the valid tokens (0.7766 on the padding): mean 0.1235, sigma 0.0828
    valid = x[:5]
    mean = sum(valid) / 5
    sigma = math.sqrt(sum((v - mean) ** 2 for v in valid) / 5)
    assert sigma == pytest.approx(0.0828, abs=1e-4) and x[1] == pytest.approx(0.3 * 1.0 - 0.2 - 0.2 * (1.0 + math.log(0.2)))
    ctx = clip_v_ctx(p, adv, mask, h, q, r)
    cfg = ClipVConfig(mu=1.0, max_frac=1.0)
    ctx.selections = {"clip_v": clip_v_selection(ctx, cfg, None)}  # what the driver computes and the workers read
    w, m = clip_v_weight(ctx, cfg)
    expected = [0.0 if (a < 0 and v > 1.0 * sigma and k) else 1.0 for a, v, k in zip(adv, x, mask)]
    assert expected == [1.0, 0.0, 1.0, 1.0, 1.0, 1.0]  # token 2 has the same x but a positive advantage
    assert w.tolist() == [expected] and m["clip_v/dropped_frac"] == pytest.approx(1 / 5)


def test_clip_v_caps_the_dropped_tokens_at_max_frac_keeping_the_largest_gaps():
    n = 20
    p, h, q = [0.5] * n, [0.7] * n, [0.4] * n
    r = [-0.2] * 17 + [0.5, 0.9, 0.7]  # three tokens far above their expectation, all with A < 0
    ctx = clip_v_ctx(p, [-1.0] * n, [1] * n, h, q, r)
    assert clip_v_selection(ctx, ClipVConfig(mu=1.0, max_frac=0.15), None).tolist()[0][17:] == [1.0, 1.0, 1.0]  # cap 3
    capped = clip_v_selection(ctx, ClipVConfig(mu=1.0, max_frac=0.1), None)  # cap int(0.1 * 20) = 2: the two largest
    assert capped.tolist()[0][17:] == [0.0, 1.0, 1.0] and capped.sum() == 2
    one = clip_v_selection(ctx, ClipVConfig(mu=1.0, max_frac=1e-4), None)  # below one token: still at most one
    assert one.tolist()[0][18] == 1.0 and one.sum() == 1


def test_clip_v_zero_spread_empty_and_missing_statistics():
    ctx = clip_v_ctx([0.5] * 3, [-1.0] * 3, [1, 1, 1], [0.7] * 3, [0.4] * 3, [-0.2] * 3)
    assert clip_v_selection(ctx, ClipVConfig(mu=0.0), None).sum() == 0  # sigma 0: nothing is "far"
    empty = clip_v_ctx([0.5] * 3, [-1.0] * 3, [0, 0, 0], [0.7] * 3, [0.4] * 3, [-0.2] * 3)
    dropped = clip_v_selection(empty, ClipVConfig(mu=0.0), None)
    assert dropped.sum() == 0 and torch.isfinite(dropped).all()
    with pytest.raises(RuntimeError, match="sum p\\^2"):
        clip_v_selection(ctx_of([0.5], [-1.0], [1], [0.7]), ClipVConfig(), None)
    with pytest.raises(ValueError, match="max_frac"):
        ClipVConfig(max_frac=0.0)


def test_steer_hand_computed_exp_and_linear():
    p, h, adv = [0.5, 0.9, 0.2, 0.5], [1.0, 0.3, 1.2, 9.0], [1.0, -2.0, 0.5, 3.0]
    ctx = ctx_of(p, adv, [1, 1, 1, 0], h)
    omega = [a * (1 - pi) * (math.log(pi) + hi) for pi, hi, a in zip(p, h, adv)][:3]
    scale = max(max(abs(o) for o in omega), 0.02)
    k = -math.log(0.8) / scale
    w, m = steer_weight(ctx, SteerConfig(lambda_min=0.8, scope="micro_batch"))
    assert w[0, :3].tolist() == pytest.approx([max(math.exp(-k * abs(o)), 0.8) for o in omega])
    assert min(w[0, :3].tolist()) == pytest.approx(0.8)  # the largest |Omega| gets lambda_min exactly
    w_lin, _ = steer_weight(ctx, SteerConfig(lambda_min=0.8, mode="linear", scope="micro_batch"))
    assert w_lin[0, :3].tolist() == pytest.approx([1 - 0.2 * abs(o) / scale for o in omega])


def test_steer_tiny_changes_are_not_stretched_to_lambda_min():
    ctx = ctx_of([0.5, 0.5], [1e-4, -1e-4], [1, 1], [0.7, 0.7])
    w, _ = steer_weight(ctx, SteerConfig(scope="micro_batch"))
    assert (w > 0.99).all()  # max|Omega| << 0.02 floor
    empty = ctx_of([0.5], [1.0], [0], [0.7])
    assert not torch.isnan(steer_weight(empty, SteerConfig(scope="micro_batch"))[0]).any()


def test_token_weights_multiply_and_advantages_chain():
    ctx = ctx_of([0.5] * 4, [1.0, -1.0, 1.0, -1.0], [1] * 4, [0.1, 0.9, 0.8, 0.2])
    methods = [(get_loss_method("top_entropy"), TopEntropyConfig(rho=0.5, scope="micro_batch")),
               (get_loss_method("pos_adv_reweight"), PosAdvReweightConfig(lam=0.5)),
               (get_loss_method("entropy_adv"), EntropyAdvantageConfig(alpha=0.4, kappa=2.0))]
    shaped, weights, metrics = apply_loss_methods(ctx, methods)
    # advantages first (min(0.4H, 0.5)): 1.04, -0.64, 1.32, -0.92; then weights: top-50% entropy x lambda on A > 0
    assert shaped[0].tolist() == pytest.approx([1.04, -0.64, 1.32, -0.92])
    assert weights[0].tolist() == pytest.approx([0.0, 1.0, 0.5, 0.0])
    assert {"top_entropy/kept_frac", "pos_adv_reweight/lambda", "entropy_adv/mean_bonus"} <= set(metrics)


# ---- through verl's real ppo_loss on a no-padding (nested) micro-batch ------------------------------------------

def nested(rows):
    return torch.nested.as_nested_tensor([torch.tensor(r) for r in rows], layout=torch.jagged)


def micro_batch(response_log_probs, advantages, prompt_len=2):
    """A micro-batch as verl's actor hands it to the loss: nested prompts/responses, rmpad log-probs of the whole
    sequences, in which the response token t is predicted at position prompt_len + t - 1."""
    seq_values, prompts, responses = [], [], []
    for lp in response_log_probs:
        prompts.append([1] * prompt_len)
        responses.append([2] * len(lp))
        seq_values += [0.0] * (prompt_len - 1) + list(lp) + [0.0]
    values = torch.tensor(seq_values, dtype=torch.float32, requires_grad=True)
    data = TensorDict({
        "prompts": nested(prompts), "responses": nested(responses),
        "response_mask": nested([[1] * len(lp) for lp in response_log_probs]),
        "old_log_probs": nested([[float(x) for x in lp] for lp in response_log_probs]),
        "advantages": nested(advantages),
    }, batch_size=len(response_log_probs))
    for key, val in {"dp_size": 1, "batch_num_tokens": None, "global_batch_size": None}.items():
        tu.assign_non_tensor_data(data, key, val)
    return values, data


def actor_config():
    return FSDPActorConfig(strategy="fsdp2", ppo_mini_batch_size=2, ppo_micro_batch_size_per_gpu=2, rollout_n=1)


def test_entropy_aware_loss_applies_weights_inside_verls_ppo_loss():
    lp = [[math.log(0.5), math.log(0.25), math.log(0.8)], [math.log(0.4), math.log(0.9)]]
    adv = [[1.0, 1.0, 1.0], [-1.0, -1.0]]
    values, data = micro_batch(lp, adv)
    methods = (get_loss_method("pos_adv_reweight"), PosAdvReweightConfig(lam=0.25)),
    loss, metrics = entropy_aware_loss(actor_config(), {"log_probs": values}, data, methods=methods)
    # on-policy r = 1: vanilla token-mean of -A*r*w = -(3*0.25*1 + 2*1*(-1)) / 5
    assert loss.item() == pytest.approx(-(0.75 - 2.0) / 5, rel=1e-6)
    loss.backward()
    # d loss / d logp_t = -A_t w_t / 5 at the response positions (prompt_len + t - 1 = 1, 2, 3 and 6, 7)
    assert values.grad[[1, 2, 3, 6, 7]].tolist() == pytest.approx([-0.05, -0.05, -0.05, 0.2, 0.2])
    assert "actor/pos_adv_reweight/lambda" in metrics
    # the caller's micro-batch is untouched
    assert "rollout_is_weights" not in data.keys()


def test_entropy_aware_loss_shaped_advantages_reach_verls_loss():
    lp = [[math.log(0.5), math.log(0.5)]]
    values, data = micro_batch(lp, [[1.0, -1.0]])
    tu.assign_non_tensor_data(data, "dp_size", 1)
    data["entropy"] = nested([[1.0, 1.0]])
    methods = (get_loss_method("entropy_adv"), EntropyAdvantageConfig(alpha=0.4, kappa=2.0)),
    loss, _ = entropy_aware_loss(actor_config(), {"log_probs": values}, data, methods=methods)
    assert loss.item() == pytest.approx(-(1.4 - 0.6) / 2, rel=1e-6)


# ---- covariance selections (driver side) and their terms ---------------------------------------------------------

def test_token_covariance_hand_computed_and_padding_never_selected():
    from entropy_verl.losses.covariance import token_covariance

    ctx = ctx_of([0.5, 0.25, 0.125, 0.9], [2.0, 0.0, -2.0, 5.0], [1, 1, 1, 0], [0.5] * 4)
    lp = [math.log(0.5), math.log(0.25), math.log(0.125)]
    a_mean, lp_mean = 0.0, sum(lp) / 3
    expected = [(a - a_mean) * (x - lp_mean) for a, x in zip([2.0, 0.0, -2.0], lp)]
    cov = token_covariance(ctx)
    assert cov[0, :3].tolist() == pytest.approx(expected) and cov[0, 3].item() == float("-inf")


def test_clip_cov_selection_is_seeded_bounded_and_counted():
    from entropy_verl.losses.covariance import (
        ClipCovConfig,
        clip_cov_selection,
        clip_cov_weight,
        token_covariance,
    )

    torch.manual_seed(0)
    n = 400
    ctx = ctx_of(torch.rand(n).clamp(0.01, 0.99).tolist(), (torch.randn(n) * 2).tolist(), [1] * n, [0.5] * n)
    cfg = ClipCovConfig(ratio=0.02, lower_bound=0.5, upper_bound=3.0)
    sel = clip_cov_selection(ctx, cfg, torch.Generator().manual_seed(7))
    cov = token_covariance(ctx)
    assert int(sel.sum()) == 8  # int(0.02 * 400)
    assert torch.all((cov[sel.bool()] > 0.5) & (cov[sel.bool()] < 3.0))
    assert torch.equal(sel, clip_cov_selection(ctx, cfg, torch.Generator().manual_seed(7)))  # same seed, same tokens
    assert not torch.equal(sel, clip_cov_selection(ctx, cfg, torch.Generator().manual_seed(8)))
    ctx.selections = {"clip_cov_global": sel}
    w, m = clip_cov_weight(ctx, cfg)
    assert torch.equal(w, 1.0 - sel) and m["clip_cov_global/detached_frac"] == pytest.approx(8 / n)


def test_clip_cov_with_no_candidates_selects_nothing_and_without_the_trainer_fails_clearly():
    from entropy_verl.losses.covariance import (
        ClipCovConfig,
        clip_cov_selection,
        clip_cov_weight,
    )

    ctx = ctx_of([0.5] * 3, [1.0] * 3, [1, 1, 1], [0.5] * 3)  # zero-variance advantages: every Cov is 0
    assert clip_cov_selection(ctx, ClipCovConfig(), torch.Generator()).sum() == 0
    with pytest.raises(RuntimeError, match="entropy_sync"):
        clip_cov_weight(ctx, ClipCovConfig())


def test_kl_cov_global_top_k_and_penalty_value():
    from entropy_verl.losses.covariance import (
        KLCovConfig,
        kl_cov_selection,
        kl_cov_term,
    )

    ctx = ctx_of([0.5, 0.25, 0.125, 0.9], [2.0, 0.0, -2.0, 1.0], [1, 1, 1, 1], [0.5] * 4)
    cfg = KLCovConfig(ratio=0.5, coef=2.0)
    sel = kl_cov_selection(ctx, cfg, torch.Generator())
    # A - mean(A) = [1.75, -0.25, -2.25, 0.75], logp - mean(logp) = [0.373, -0.320, -1.013, 0.961]
    # Cov = [0.653, 0.080, 2.280, 0.721]: the top 2 of 4 are tokens 2 and 3
    assert sel[0].tolist() == [0.0, 0.0, 1.0, 1.0]
    ctx.log_prob = ctx.old_log_prob + torch.tensor([[0.1, -0.3, 0.2, -0.05]], dtype=torch.float64)
    ctx.selections = {"kl_cov_global": sel}
    loss, _ = kl_cov_term(ctx, cfg)
    assert loss.item() == pytest.approx(2.0 * (0.2 + 0.05) / 4)  # token-mean over all 4 valid tokens


def test_sent_selection_low_entropy_tokens_high_and_low_covariance():
    from entropy_verl.losses.covariance import token_covariance
    from entropy_verl.losses.sent import SentConfig, sent_selection, sent_term

    p = [0.9, 0.8, 0.3, 0.6, 0.2, 0.7, 0.5, 0.4, 0.1, 0.95]
    adv = [1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0]
    entropy = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 5.0]  # the 10th token is the only high-entropy one
    ctx = ctx_of(p, adv, [1] * 10, entropy)
    weights = sent_selection(ctx, SentConfig(k=0.25, coef=0.1, low_entropy_fraction=0.8), torch.Generator())
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
    ctx.log_prob = ctx.old_log_prob + 0.1
    ctx.selections = {"sent": weights}
    loss, _ = sent_term(ctx, SentConfig(k=0.25, coef=0.1))
    assert loss.item() == pytest.approx(0.1 * (2 * 2.0 + 2 * 0.5) * 0.1 / 10)
    assert sent_selection(ctx_of([0.5] * 3, [1.0] * 3, [1] * 3, [0.1] * 3), SentConfig(), torch.Generator()).sum() == 0  # k*n < 1


def test_pg_unclipped_has_no_clip():
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    old = torch.log(torch.tensor([[0.2, 0.5]]))
    new = (old + torch.tensor([[math.log(2.0), math.log(0.5)]])).requires_grad_()
    adv = torch.tensor([[1.0, -1.0]])
    loss, _ = get_policy_loss_fn("pg_unclipped")(old_log_prob=old, log_prob=new, advantages=adv, response_mask=torch.ones(1, 2, dtype=torch.bool),
                                                  loss_agg_mode="token-mean", config=actor_config())
    assert loss.item() == pytest.approx((-2.0 + 0.5) / 2)  # vanilla PPO would clip r=2 to 1.2 and r=0.5 to 0.8


def test_vocab_stats_match_the_formulas_across_chunk_boundaries():
    from entropy_verl.engine.vocab_stats import entropy_and_vocab_stats

    logits = torch.randn(2, 5, 7, generator=torch.Generator().manual_seed(0)) * 3
    entropy, sum_p2, sum_p2_logp = entropy_and_vocab_stats(logits, chunk_size=3)  # 10 positions: chunks 3, 3, 3, 1
    p = torch.softmax(logits, -1)
    assert torch.allclose(entropy, -(p * p.log()).sum(-1), atol=1e-5)
    assert torch.allclose(sum_p2, (p * p).sum(-1), atol=1e-6)
    assert torch.allclose(sum_p2_logp, (p * p * p.log()).sum(-1), atol=1e-5)
    peaked = torch.tensor([[50.0, 0.0, 0.0]])  # one-hot in float32: H 0, sum p^2 1, no NaN from 0 * log 0
    e, q, r = entropy_and_vocab_stats(peaked)
    assert e.item() == pytest.approx(0.0, abs=1e-6) and q.item() == pytest.approx(1.0) and torch.isfinite(r).all()


def test_bench_writes_a_row_per_loss_method(tmp_path):
    """``make bench`` at toy sizes: the results files exist and cover every registered loss method (no timing asserted)."""
    import json

    from entropy_verl.bench import main
    from entropy_verl.losses import LOSS_METHODS

    main(["--batch", "2", "--length", "16", "--vocab", "50", "--vocab-tokens", "16", "--chunk", "4", "--repeats", "1",
          "--loss-repeats", "1", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "results.json").read_text())
    assert {row["method"] for row in result["losses"]} == {"vanilla (verl)", *LOSS_METHODS}
    assert result["vocab_stats"]["vocab"] == 50 and (tmp_path / "results.md").read_text().startswith("# entropy_verl benchmark")
    assert result["diagnostics"]["metrics"] >= 12 and result["diagnostics"]["tokens"] > 0
