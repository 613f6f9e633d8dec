"""2-step runs of methods through verl's real v1 trainer on CPU (Ray, FSDP2 workers, hf rollout), on the smoke batch
(4 prompts x 4 samples) so each run is mostly start-up (~60 s on 2 cores)."""

from __future__ import annotations

import math

import pytest

from entropy_verl.main import group_options

# validate at step 2 with 4 samples on 8 prompts: pass@k, distinct answers (the law needs 3 validations)
VALIDATE = ["trainer.test_freq=2", "actor_rollout_ref.rollout.val_kwargs.n=4", "data.val_max_samples=8"]


def check_diagnostics(rows):
    """The trainer's entropy diagnostics every step, the measured change from the second, pass@k at validation."""
    for row in rows:
        assert 0.0 <= row["entropy/p10"] <= row["entropy/p50"] <= row["entropy/p90"] <= row["entropy/p99"]
        # what the controllers measure; verl's actor/entropy is the same number under token-mean (these runs' mode)
        assert row["entropy/token_mean"] == pytest.approx(row["actor/entropy"], abs=1e-6)
        assert math.isfinite(row["entropy/predicted_change"]) and math.isfinite(row["entropy/cov_logp_adv"])
    assert rows[1]["entropy/measured_change"] == pytest.approx(
        rows[1]["actor/entropy"] - rows[0]["actor/entropy"], abs=0.02
    )
    assert 0.0 <= rows[1]["val/pass@1"] <= rows[1]["val/pass@2"] <= rows[1]["val/pass@4"] <= 1.0
    assert 0.0 <= rows[1]["val/distinct_correct"] <= 4.0


@pytest.mark.slow
def test_every_loss_method_composed_with_an_estimator_in_one_run(smoke_run):
    """All eleven loss methods at once, on GDPO's advantages, under pg_unclipped (KL-Cov and SENT's loss_mode):
    whole-step statistics computed on the driver arrive unchanged in the workers, the driver's per-token selections
    (Clip-Cov, KL-Cov, SENT, Clip-V) reach the workers' losses through the batch, Clip-V's sums come from verl's
    old-log-prob forward on entropy_verl's engine (which entropy_verl.main selects for the run), the estimator gets
    the task's reward components, and the entropy diagnostics and pass@k are logged. Selection ratios are raised so
    a 16-sample step selects tokens. Two trainer ranks: every rank's loss uses the driver's coefficients, and the
    scheduled settings' values of each step."""
    methods = "entropy_adv,top_entropy,steer,clip_b,pos_adv_reweight,clip_cov_global,kl_cov_global,sent,clip_v"
    rows = smoke_run(
        f"method=[gdpo,{methods},entropic,adaptive_entropy]",
        "entropy_verl.controllers.pi.target_temperature=1.0",  # the paper target, stated for this temperature
        *VALIDATE,
        "trainer.n_gpus_per_node=2",  # two data-parallel workers: 8 rollout samples and 4 per mini-batch each
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8",
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=8",
        "entropy_verl.methods.clip_cov_global.ratio=0.05",
        "entropy_verl.methods.clip_cov_global.lower_bound=-100.0",
        "entropy_verl.methods.clip_cov_global.upper_bound=100.0",
        "entropy_verl.methods.kl_cov_global.ratio=0.05",
        "entropy_verl.methods.sent.k=0.1",
        "entropy_verl.methods.clip_v.mu=0.5",
        "entropy_verl.methods.clip_v.max_frac=0.05",
        # schedules: a loss method's setting (on the workers) and a controller's target (on the driver)
        "entropy_verl.methods.steer.lambda_min=[[0,0.9],[2,0.7]]",
        "entropy_verl.controllers.pi.target_entropy=[[1,0.5],[2,0.3]]",
    )
    check_diagnostics(rows)
    for row in rows:
        lambda_min, target = {1: (0.8, 0.5), 2: (0.7, 0.3)}[row["step"]]
        assert row["entropy_verl/schedule/steer/lambda_min"] == pytest.approx(lambda_min, abs=1e-12)
        assert row["entropy_control/pi/target"] == pytest.approx(target, abs=1e-12)
        assert row["entropy_control/pi/error"] == pytest.approx(row["entropy_control/pi/measurement"] - target)
        for stat in (
            "top_entropy/threshold",
            "steer/omega_max",
            "clip_b/s_mean",
            "clip_b/s_std",
            "alpha",
            "entropy_coef",
            "schedule/steer/lambda_min",
        ):
            driver = row[f"entropy_verl/driver_coef/{stat}"]
            used = [row[f"actor/entropy_verl/worker_coef/{stat}/{s}"] for s in ("min", "max")]  # over both ranks
            assert used == [pytest.approx(driver, abs=1e-12)] * 2, (stat, driver, used)
        assert row["entropy_verl/worker_coef_mismatch_steps"] == 0
        assert 0.1 < row["actor/top_entropy/kept_frac"] < 0.3
        assert row["actor/pos_adv_reweight/lambda"] == pytest.approx(0.1)
        assert lambda_min <= row["actor/steer/mean_lambda"] <= 1.0
        assert 0.0 < row["actor/clip_cov_global/detached_frac"] < 0.2
        assert 0.0 < row["actor/kl_cov_global/selected_frac"] < 0.2
        assert 0.0 < row["actor/sent/selected_frac"] < 0.3
        if row["critic/advantages/min"] < 0:  # Clip-V drops only A < 0 tokens
            assert 0.0 < row["actor/clip_v/dropped_frac"] <= 0.1
        else:  # sampling differs between runs: a step whose 4 groups each got one reward has A = 0 everywhere
            assert row["actor/clip_v/dropped_frac"] == 0.0
        assert 0.2 < row["actor/entropy"] < 1.5  # from the statistics pass, which replaces verl's entropy pass
        assert 0.5 <= row["entropy_verl/gdpo_v1/format_reward/mean"] <= 1.0 and math.isfinite(
            row["critic/advantages/mean"]
        )
        assert {"timing_s/entropy_step_read", "timing_s/entropy_step_inputs"} <= set(row)


@pytest.mark.slow
@pytest.mark.zoo  # its values are unit-tested; kept for `make smoke` so `make test` stays under ~20 minutes
def test_w_reinforce(smoke_run):
    rows = smoke_run("method=w_reinforce")
    for row in rows:  # +0.1 for correct responses, -1 for wrong ones, nothing else
        assert row["critic/advantages/max"] == pytest.approx(0.1) and row["critic/advantages/min"] == pytest.approx(
            -1.0
        )


@pytest.mark.slow
@pytest.mark.zoo  # in `make smoke`
def test_dr_grpo_logs_the_token_mean_entropy_beside_verls_length_normalised_one(smoke_run):
    """Dr. GRPO's loss_agg_mode (seq-mean-token-sum-norm) divides each response's token sum by the padded width of
    the batch (verl's default horizon: the longest response), so verl's actor/entropy is the token mean times (mean
    length / longest), below it whenever responses differ in length. entropy/token_mean, what the controllers and the
    reports read, stays the token mean (the study's first Dr. GRPO run: actor/entropy 0.466 at step 1, the token mean of
    its tokens' entropies matching GRPO's 0.62)."""
    for row in smoke_run("method=dr_grpo"):
        shortened = row["response_length/mean"] / row["response_length/max"]
        # equal when every response has the same length (the smoke model's often do)
        assert row["actor/entropy"] == pytest.approx(row["entropy/token_mean"] * shortened, rel=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,metric,low,high",
    [
        pytest.param(
            "unlikeliness",
            "unlikeliness/correct_reward_scale_mean",
            0.75,
            1.0,  # 1 - beta * rank / G, beta 0.25
            marks=pytest.mark.zoo,
        ),  # same driver-input path as seed_grpo; in `make smoke`
        pytest.param(
            "seed_grpo",
            "seed_grpo/advantage_scale_mean",
            0.5,
            1.0,  # 1 - alpha * SE / log G, alpha 0.5
            marks=pytest.mark.zoo,
        ),  # make test runs it as the second method of tests/e2e/test_compare_harness.py
        pytest.param(
            "gdpo",
            "gdpo_v1/format_reward/mean",
            0.5,
            1.0,  # the task's reward components (verl's reward loop)
            marks=pytest.mark.zoo,
        ),  # make test runs it in test_every_loss_method_composed_with_an_estimator
    ],
)
def test_estimators_with_driver_inputs(smoke_run, name, metric, low, high):
    """The trainer hands verl's advantage step each response's mean old log-prob / final answer / reward components,
    and the estimator's own metrics come back to the logger."""
    for row in smoke_run(f"method={name}"):
        assert low <= row[f"entropy_verl/{metric}"] <= high and math.isfinite(row["critic/advantages/mean"])


@pytest.mark.slow
@pytest.mark.zoo
@pytest.mark.parametrize(
    "selection",
    [f"method={m}" for m in group_options("method")] + [f"experiment={e}" for e in group_options("experiment")],
)
def test_every_method_and_experiment_runs_two_steps(smoke_run, selection):
    """Every shipped method file and experiment, as shipped, for 2 steps on the smoke batch. ~65 s each, so outside
    ``make test``: ``make smoke`` runs them all."""
    smoke_run(selection)
