"""End to end: the comparison harness (``python -m entropy_verl.tools.compare``) runs GRPO and SEED-GRPO on the embedded
default through verl's v1 trainer and Ray on this CPU machine, then writes the figure and the table. Its GRPO run
doubles as the check that the default config trains end to end, its SEED-GRPO run as the smoke run of an advantage
estimator that needs driver inputs (each response's final answer)."""

import json
import math
import os
import subprocess
import sys

import pytest

STEPS = 3
METHODS = ("grpo", "seed_grpo")
# 8 prompts x 4 samples a step, pass@k at the last step on 8 validation prompts x 4 samples
SMALL = [
    "data.train_batch_size=8",
    "actor_rollout_ref.rollout.n=4",
    "actor_rollout_ref.actor.ppo_mini_batch_size=4",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=16",
    "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=16",
    "actor_rollout_ref.rollout.agent.num_workers=1",
    "data.val_max_samples=8",
    "actor_rollout_ref.rollout.val_kwargs.n=4",
]


@pytest.fixture(scope="module")
def compare_out(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("compare")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "entropy_verl.tools.compare",
            "--methods",
            *METHODS,
            "--steps",
            str(STEPS),
            "--window",
            "2",
            "--out",
            str(out_dir),
            "--",
            *SMALL,
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "HYDRA_FULL_ERROR": "1"},
    )
    assert out.returncode == 0, (out.stdout[-4000:], out.stderr[-6000:])
    for name in METHODS:
        assert f"run directory: {out_dir / name}" in out.stdout
    return out_dir


def rows_of(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_compare_writes_the_figure_and_one_table_row_per_method(compare_out):
    png = (compare_out / "compare.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    table = [line for line in (compare_out / "results.md").read_text().splitlines() if line.startswith("| ")]
    assert [line.split("|")[1].strip() for line in table] == ["method", *METHODS]  # header, then a row per method
    results = json.loads((compare_out / "results.json").read_text())["results"]
    assert [r["method"] for r in results] == list(METHODS)
    for r in results:  # the last step validated (verl validates the last step whenever test_freq > 0)
        assert r["steps"] == STEPS and r["n"] == 4 and 0.0 <= r["pass@1"] <= r["pass@n"] <= 1.0
        assert math.isfinite(r["entropy_end"]) and r["step_s"] > 0


@pytest.mark.slow
def test_jsonl_has_reward_and_entropy_every_step(compare_out):
    rows = rows_of(compare_out / "grpo")
    assert [row["step"] for row in rows] == list(range(1, STEPS + 1))
    for row in rows:
        metrics = row["data"]
        for key in (
            "actor/entropy",
            "critic/score/mean",
            "actor/pg_loss",
            "timing_s/gen",
            "timing_s/update_actor",
            "entropy/p50",
            "entropy/cov_logp_adv",
            "timing_s/entropy_diagnostics",
        ):
            assert key in metrics and math.isfinite(metrics[key]), key
        assert 0.05 < metrics["actor/entropy"] < 3.2  # a warm-started policy: neither random (ln 22) nor collapsed
        assert 0.0 < metrics["critic/score/mean"] < 1.0  # the warm start solves some prompts, not all


@pytest.mark.slow
def test_rollout_serves_the_weights_the_trainer_just_updated(compare_out):
    # verl compares the rollout's token probabilities with the trainer's recomputed ones every step (fp32 on both
    # sides: they agree to ~1e-6). The first optimizer steps run at lr 0 (warm-up), the second step's at lr > 0, so
    # by step 3 an hf server that kept stale weights disagrees: with weight updates disabled it measured 0.084 here.
    rows = [row["data"] for row in rows_of(compare_out / "grpo")]
    assert abs(rows[-1]["actor/ppo_kl"]) > 0.0  # the policy did move within step 3, so stale weights would show
    for metrics in rows:
        assert metrics["training/rollout_probs_diff_max"] < 1e-4
    assert rows[-1]["actor/grad_norm"] > 0.0


@pytest.mark.slow
def test_seed_grpo_gets_each_responses_answer_from_the_trainer(compare_out):
    """The trainer hands verl's advantage step each response's final answer; the estimator's metric comes back."""
    for row in rows_of(compare_out / "seed_grpo"):
        assert (
            0.5 <= row["data"]["entropy_verl/seed_grpo/advantage_scale_mean"] <= 1.0
        )  # 1 - alpha * SE / log G, alpha 0.5
        assert math.isfinite(row["data"]["critic/advantages/mean"])
