"""pass@k and the entropy-performance law against hand-computed / combinatorial values."""

from __future__ import annotations

import math
from itertools import combinations

import pytest

from entropy_verl.diagnostics.entropy_law import OnlineEntropyLaw, fit_entropy_law
from entropy_verl.diagnostics.pass_at_k import k_values, pass_at_k, pass_at_k_metrics
from entropy_verl.losses import LossContext


@pytest.mark.parametrize(
    "n,c,k", [(8, 0, 1), (8, 1, 1), (8, 3, 2), (8, 3, 4), (8, 6, 4), (8, 8, 8), (5, 2, 5), (16, 1, 16)]
)
def test_pass_at_k_is_the_fraction_of_k_subsets_with_a_correct_sample(n, c, k):
    samples = [True] * c + [False] * (n - c)
    subsets = list(combinations(range(n), k))
    exact = sum(any(samples[i] for i in s) for s in subsets) / len(subsets)
    assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-12)


def test_k_values_and_bad_counts():
    assert k_values(8) == [1, 2, 4, 8] and k_values(6) == [1, 2, 4, 6] and k_values(1) == [1]
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)


def test_pass_at_k_metrics_average_over_prompts_and_count_distinct_correct_answers():
    correct = [[True, False, False, True], [False, False, False, False]]
    answers = [["7*3-5", "x", None, "3*7-5"], ["a", "b", "c", "d"]]
    m = pass_at_k_metrics(correct, answers)
    assert m["val/pass@1"] == pytest.approx((0.5 + 0.0) / 2)
    assert m["val/pass@2"] == pytest.approx((1 - math.comb(2, 2) / math.comb(4, 2)) / 2)
    assert m["val/pass@4"] == pytest.approx(0.5) and m["val/distinct_correct"] == pytest.approx(1.0)


def test_law_fit_recovers_a_and_b_from_synthetic_points():
    a, b = 0.4, 1.1
    entropies = [0.2 + 0.05 * i for i in range(12)]
    rewards = [-a * math.exp(h) + b + (0.002 if i % 2 else -0.002) for i, h in enumerate(entropies)]  # +-0.002 noise
    fit = fit_entropy_law(entropies, rewards)
    assert fit.a == pytest.approx(a, abs=0.01) and fit.b == pytest.approx(b, abs=0.01)
    assert fit.ceiling == pytest.approx(b - a, abs=0.02) and fit.rmse < 0.003
    assert fit.predict(0.0) == pytest.approx(fit.ceiling)


def test_law_fit_needs_points_and_spread_and_online_state_round_trips():
    assert fit_entropy_law([0.3, 0.4], [0.1, 0.2]) is None
    assert fit_entropy_law([0.3, 0.3, 0.3], [0.1, 0.2, 0.3]) is None
    law = OnlineEntropyLaw()
    for h in (0.6, 0.5, 0.4):
        law.add(h, 1.0 - 0.5 * math.exp(h))
    m = law.metrics()
    assert m["entropy_law/a"] == pytest.approx(0.5) and m["entropy_law/ceiling"] == pytest.approx(0.5)
    other = OnlineEntropyLaw()
    other.load_state_dict(law.state_dict())
    assert other.metrics() == m


# ---- per-step token diagnostics ------------------------------------------------------------------------------------


def test_token_diagnostics_hand_computed_with_padding():
    import torch

    from entropy_verl.diagnostics.token_stats import step_diagnostics

    entropy = torch.tensor([[0.2, 1.5, 9.0], [0.6, 0.05, 9.0]])  # 9.0 is padding and must not count anywhere
    log_prob = torch.log(torch.tensor([[0.9, 0.2, 0.5], [0.5, 0.99, 0.5]]))
    adv = torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]], dtype=torch.bool)
    m = step_diagnostics(LossContext.of_sampling_policy(log_prob, adv, mask, entropy))
    valid_h = [0.2, 1.5, 0.6, 0.05]
    assert m["entropy/p50"] == pytest.approx(0.4) and m["entropy/frac_above_0.5"] == pytest.approx(0.5)
    assert m["entropy/frac_above_2"] == 0.0 and m["entropy/p99"] < 1.5
    assert m["entropy/pos_adv_mean"] == pytest.approx(0.85) and m["entropy/neg_adv_mean"] == pytest.approx(0.325)
    lp = [math.log(x) for x in (0.9, 0.2, 0.5, 0.99)]
    a = [1.0, 1.0, -1.0, -1.0]
    cov = sum((x - sum(lp) / 4) * (y - 0.0) for x, y in zip(lp, a, strict=True)) / 4
    assert m["entropy/cov_logp_adv"] == pytest.approx(cov, rel=1e-5)
    s = [math.exp(x) * (h + x) for x, h in zip(lp, valid_h, strict=True)]
    assert m["entropy/s_mean"] == pytest.approx(sum(s) / 4, rel=1e-5)
    assert m["entropy/s_neg_frac"] == pytest.approx(sum(v < 0 for v in s) / 4)
    # predicted change with the batch mean of S as E[S]: -mean(A (S - mean S))
    assert m["entropy/predicted_change"] == pytest.approx(
        -sum(ai * (si - sum(s) / 4) for ai, si in zip(a, s, strict=True)) / 4, rel=1e-5
    )


def test_token_diagnostics_with_nothing_valid_are_empty_not_nan():
    import torch

    from entropy_verl.diagnostics.token_stats import step_diagnostics

    m = step_diagnostics(
        LossContext.of_sampling_policy(
            torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(2, 3, dtype=torch.bool), torch.ones(2, 3)
        )
    )
    assert m == {}


def test_predicted_entropy_change_matches_a_small_policy_gradient_step_on_a_softmax():
    """A tabular softmax (32 positions x 6 tokens), one SGD step of verl's vanilla policy loss (token-mean, on-policy)
    with a small learning rate: the first-order prediction (lr / positions) x predicted_change, using each position's
    exact E[S] = H sum p^2 + sum p^2 log p, has the measured change's sign and is within 10% of it."""
    import torch
    from verl.trainer.ppo.core_algos import get_policy_loss_fn
    from verl.workers.config import FSDPActorConfig

    from entropy_verl.diagnostics.token_stats import predicted_entropy_change

    k, v, g, lr = 32, 6, 8, 0.05
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(k, v, generator=gen, dtype=torch.float64) * 0.8).requires_grad_()
    p = torch.softmax(logits.detach(), -1)
    h = -(p * p.log()).sum(-1)
    tokens = torch.multinomial(p, g, replacement=True, generator=gen)
    reward = (tokens % 2 == 0).double()
    adv = (reward - reward.mean(1, keepdim=True)) / (reward.std(1, keepdim=True) + 1e-6)
    old_lp = p.log().gather(1, tokens).reshape(1, -1)
    expand = lambda x: x[:, None].expand(k, g).reshape(1, -1)
    mask = torch.ones(1, k * g, dtype=torch.bool)
    predicted = predicted_entropy_change(
        LossContext.of_sampling_policy(
            old_lp, adv.reshape(1, -1), mask, expand(h), expand((p * p).sum(-1)), expand((p * p * p.log()).sum(-1))
        )
    )
    config = FSDPActorConfig(strategy="fsdp2", ppo_mini_batch_size=1, ppo_micro_batch_size_per_gpu=1, rollout_n=1)
    log_prob = torch.log_softmax(logits, -1).gather(1, tokens).reshape(1, -1)
    loss, _ = get_policy_loss_fn("vanilla")(
        old_log_prob=old_lp,
        log_prob=log_prob,
        advantages=adv.reshape(1, -1),
        response_mask=mask,
        loss_agg_mode="token-mean",
        config=config,
    )
    loss.backward()
    with torch.no_grad():
        q = torch.softmax(logits - lr * logits.grad, -1)
        measured = float((-(q * q.log()).sum(-1)).mean() - h.mean())
    first_order = lr / k * predicted
    assert measured != 0 and math.copysign(1, first_order) == math.copysign(1, measured)
    assert abs(first_order - measured) <= 0.1 * abs(measured), (first_order, measured)


def test_entropy_change_tracker_pairs_prediction_with_the_next_steps_change_and_correlates():
    from entropy_verl.diagnostics.token_stats import EntropyChangeTracker

    tracker = EntropyChangeTracker()
    assert tracker.update(-0.02, 0.60) == {}
    m = tracker.update(-0.01, 0.58)
    assert m["entropy/measured_change"] == pytest.approx(-0.02) and "entropy/predicted_vs_measured_corr" not in m
    tracker.update(-0.03, 0.57)
    m = tracker.update(0.0, 0.54)  # pairs: (-0.02, -0.02), (-0.01, -0.01), (-0.03, -0.03): perfectly correlated
    assert m["entropy/predicted_vs_measured_corr"] == pytest.approx(1.0)
    other = EntropyChangeTracker()
    other.load_state_dict(tracker.state_dict())
    assert other.update(0.0, 0.5) == tracker.update(0.0, 0.5)


def test_entropy_per_data_source_only_when_the_step_holds_several():
    import torch

    from entropy_verl.diagnostics.token_stats import step_diagnostics

    entropy = torch.tensor([[0.2, 1.5, 9.0], [0.6, 0.05, 9.0], [1.0, 3.0, 2.0]])  # 9.0 is padding
    log_prob = torch.log(torch.full((3, 3), 0.5))
    adv = torch.tensor([[1.0] * 3, [-1.0] * 3, [1.0] * 3])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    ctx = LossContext.of_sampling_policy(log_prob, adv, mask, entropy)
    m = step_diagnostics(ctx, ["math", "code", "math"])
    # math: rows 0 and 2 -> 0.2, 1.5, 1.0, 3.0, 2.0 (mean 1.54, median 1.5); code: row 1 -> 0.6, 0.05
    assert m["entropy/math/mean"] == pytest.approx(1.54) and m["entropy/math/p50"] == pytest.approx(1.5)
    assert m["entropy/code/mean"] == pytest.approx(0.325) and m["entropy/code/frac_above_0.5"] == pytest.approx(0.5)
    assert m["entropy/math/frac_above_2"] == pytest.approx(0.2) and m["entropy/p50"] == pytest.approx(1.0)
    assert not [k for k in step_diagnostics(ctx, ["math"] * 3) if k.startswith("entropy/math/")]  # one source


def test_validation_pass_at_k_per_data_source_in_verls_naming():
    from entropy_verl.diagnostics.step import DiagnosticsConfig, StepDiagnostics
    from entropy_verl.tasks.countdown import extract_answer

    uids = ["a"] * 2 + ["b"] * 2 + ["c"] * 2
    sources = ["math"] * 4 + ["code"] * 2
    m = StepDiagnostics(DiagnosticsConfig(), extract_answer).validation(
        0, uids, [1, 0, 0, 0, 1, 1], ["7*3-5", "x", "x", "x", "1+2", "2+1"], sources
    )
    # math: a has 1 of 2 correct, b none -> pass@1 (0.5 + 0) / 2, pass@2 (1 + 0) / 2; code: c both correct
    assert m["val-core/math/pass@1"] == pytest.approx(0.25) and m["val-core/math/pass@2"] == pytest.approx(0.5)
    assert m["val-core/code/pass@1"] == 1.0 and m["val-core/code/distinct_correct"] == 2.0
    assert m["val-core/math/distinct_correct"] == pytest.approx(0.5)
    assert m["val/pass@1"] == pytest.approx((0.5 + 0 + 1) / 3)  # and over all prompts


def test_validation_pass_at_k_distinct_answers_and_the_law_from_grouped_samples():
    from entropy_verl.diagnostics.step import DiagnosticsConfig, StepDiagnostics
    from entropy_verl.tasks.countdown import extract_answer

    diag = StepDiagnostics(DiagnosticsConfig(), extract_answer)
    uids = ["a"] * 4 + ["b"] * 4 + ["c"] * 3  # c lost a sample: left out of pass@k, reported
    rewards = [1, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1]
    outputs = ["7*3-5", "7*3", "3*7-5", "7*3-5", "x", "x", "x", "x", "1+2", "1+2", "1+2"]
    m = diag.validation(0, uids, rewards, outputs)
    assert m["val/pass@1"] == pytest.approx((0.75 + 0.0) / 2) and m["val/pass@4"] == pytest.approx(0.5)
    assert m["val/distinct_correct"] == pytest.approx((2 + 0) / 2)  # a: 7*3-5 and 3*7-5
    assert m["val/prompts_missing_samples"] == 1.0 and "entropy_law/a" not in m  # no step yet: no entropy
    for step, (h, r) in enumerate(((0.6, 0.2), (0.5, 0.3), (0.4, 0.38)), start=1):
        diag.entropy = h
        m = diag.validation(step, ["a", "a"], [r * 2, 0.0], ["7*3-5", "x"])
    assert m["entropy_law/points"] == 3.0 and "entropy_law/ceiling" in m
    assert (m["entropy_law/entropy"], m["entropy_law/reward"]) == (
        0.4,
        pytest.approx(0.38),
    )  # the pair, for offline fits
    resumed = StepDiagnostics(DiagnosticsConfig(), extract_answer)
    resumed.load_state_dict(diag.state_dict())
    m = resumed.validation(3, ["a", "a"], [1.0, 0.0], ["7*3-5", "x"])  # a resumed run re-validating its checkpoint step
    assert "entropy_law/reward" not in m and len(resumed.law.rewards) == 3 and m["val/pass@1"] == 0.5


def write_run(path, rows):
    import json

    path.mkdir()
    with open(path / "metrics.jsonl", "w") as f:
        for step, data in enumerate(rows, start=1):
            f.write(json.dumps({"step": step, "data": data}) + "\n")
    return path


def test_offline_law_fit_reads_the_logged_pairs_and_falls_back_to_verls_validation_mean(tmp_path):
    from entropy_verl.tools.law import main

    a, b = 0.5, 1.2
    hs = [0.9, 0.8, 0.7, 0.6, 0.5]
    logged = [
        {"actor/entropy": h + 0.3, "entropy_law/entropy": h, "entropy_law/reward": -a * math.exp(h) + b} for h in hs
    ]
    logged.insert(2, {"actor/entropy": 0.75})  # a step without validation contributes no pair
    verl_only = [{"actor/entropy": h, "val-aux/countdown3/reward/mean@8": -a * math.exp(h) + b} for h in hs]
    fits = main(
        [
            str(write_run(tmp_path / "ours", logged)),
            str(write_run(tmp_path / "plain_verl", verl_only)),
            "--out",
            str(tmp_path / "law.png"),
        ]
    )
    for fit in (fits["ours"]["fit"], fits["plain_verl"]["fit"]):
        assert (
            fit.points == 5
            and fit.a == pytest.approx(a)
            and fit.b == pytest.approx(b)
            and fit.ceiling == pytest.approx(b - a)
        )
    assert (tmp_path / "law.png").read_bytes()[:4] == b"\x89PNG"


def test_offline_law_fit_first_k_predicts_the_held_out_validations(tmp_path, capsys):
    from entropy_verl.tools.law import main

    hs = [1.0, 0.9, 0.8, 0.7, 0.6]
    rows = [{"actor/entropy": h, "val-core/x/reward/mean@4": -0.4 * math.exp(h) + 1.0} for h in hs]
    rows[-1]["val-core/x/reward/mean@4"] += 0.1  # the last validation beats the early-run law by 0.1
    fit = main([str(write_run(tmp_path / "run", rows)), "--fit-first", "3"])["run"]
    assert fit["fit"].points == 3 and fit["fit"].a == pytest.approx(0.4)
    assert fit["held_out_rmse"] == pytest.approx(math.sqrt(0.1**2 / 2))
    assert fit["last_measured"] - fit["last_predicted"] == pytest.approx(0.1)
    assert "| run | 5 | 0.4000 | 1.0000 | 0.6000 |" in capsys.readouterr().out


def test_offline_law_fit_names_the_ambiguous_reward_keys(tmp_path):
    from entropy_verl.tools.law import main

    rows = [{"actor/entropy": 0.5, "val-core/a/reward/mean@4": 0.1, "val-core/b/reward/mean@4": 0.2}]
    with pytest.raises(SystemExit):
        main([str(write_run(tmp_path / "two_sources", rows))])
    from entropy_verl.tools.law import reward_key

    with pytest.raises(ValueError, match="val-core/a/reward/mean@4, val-core/b/reward/mean@4"):
        reward_key(rows)
    assert reward_key(rows, "val-core/b/reward/mean@4") == "val-core/b/reward/mean@4"


def test_the_tracker_correlates_prediction_and_minus_cov_per_step_and_over_ten_step_windows():
    """Changes d_t with prediction 2 d_t and Cov 5 d_t: every correlation is +1 (prediction) or -1 (-Cov); the
    windowed ones appear once 3 windows of 10 steps are complete. A checkpoint of the old (predicted, entropy) state
    loads, its pairs without -Cov."""
    from entropy_verl.diagnostics.token_stats import EntropyChangeTracker, window_sums

    assert window_sums([1, 2, 3, 4, 5, 6, 7], 3) == [6, 15]  # the partial window (7) is dropped
    tracker, entropy, metrics = EntropyChangeTracker(), 0.6, {}
    for t in range(31):
        d = 0.01 * ((3 * t) % 7 - 3)
        metrics = tracker.update(2 * d, entropy, 5 * d)
        if t == 29:
            assert "entropy/predicted_vs_measured_corr_window" not in metrics  # 29 pairs: two full windows
        entropy += d
    assert metrics["entropy/predicted_vs_measured_corr"] == pytest.approx(1.0)
    assert metrics["entropy/predicted_vs_measured_corr_window"] == pytest.approx(1.0)
    assert metrics["entropy/neg_cov_vs_measured_corr"] == pytest.approx(-1.0)
    assert metrics["entropy/neg_cov_vs_measured_corr_window"] == pytest.approx(-1.0)
    old = EntropyChangeTracker()
    old.load_state_dict({"pending": (-0.01, 0.5), "pairs": [(-0.02, -0.02), (-0.01, -0.01), (-0.03, -0.03)]})
    m = old.update(0.0, 0.49, 0.1)
    assert m["entropy/measured_change"] == pytest.approx(-0.01)
    assert m["entropy/predicted_vs_measured_corr"] == pytest.approx(1.0) and "entropy/neg_cov_vs_measured_corr" not in m


def test_the_noise_share_of_entropy_changes_by_hand_and_on_a_simulated_run():
    """By hand: d = [1, 0, 2, 0, 3, 0], windows of 2: lag-1 autocovariance -1.2, var(d) 4/3, window sums [1, 2, 3]
    with variance 2/3, so shares 2.4 / (4/3) and 2.4 / (2/3). Simulated: a true change of mean -0.003 and sd 0.01 per
    step, measured on batches with noise sd 0.02: a step's share 2(0.02^2) / (0.01^2 + 2(0.02^2)) = 8/9, a 10-step
    sum's 8e-4 / (10e-4 + 8e-4) = 4/9; without noise the estimate is 0 (clipped at 0)."""
    import numpy as np

    from entropy_verl.diagnostics.token_stats import change_noise_share

    share = change_noise_share([1, 0, 2, 0, 3, 0], window=2)
    assert share["step"] == pytest.approx(1.8) and share["window"] == pytest.approx(3.6)
    assert all(math.isnan(v) for v in change_noise_share([0.1, -0.1, 0.2]).values())  # too few changes
    rng = np.random.default_rng(0)
    true = np.concatenate([[0.6], 0.6 + np.cumsum(rng.normal(-0.003, 0.01, 40_000))])
    measured = np.diff(true + rng.normal(0, 0.02, true.shape))
    share = change_noise_share(measured)
    assert share["step"] == pytest.approx(8 / 9, abs=0.03) and share["window"] == pytest.approx(4 / 9, abs=0.05)
    assert change_noise_share(np.diff(true))["step"] < 0.03
