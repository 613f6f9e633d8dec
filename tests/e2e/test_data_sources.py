"""A run whose data mixes two data sources: entropy, its quantiles and held-out pass@k are logged per source under
verl's naming (``val-core/<data_source>/...``), the coefficients once each (min and max over the ranks)."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

SOURCES = ("countdown3", "countdown3_b")
# The task's reward for both sources: the countdown scorer, declared for the two (validation checks DATA_SOURCES).
REWARD = f"""
from entropy_verl.tasks.countdown import compute_score_components as countdown_score

DATA_SOURCES = {SOURCES!r}


def compute_score_components(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    return countdown_score("countdown3", solution_str, ground_truth, extra_info, **kwargs)
"""


def two_source_copy(path, out):
    """The embedded default's rows, every other one relabelled as the second source."""
    rows = pd.read_parquet(path)
    rows["data_source"] = [SOURCES[i % 2] for i in range(len(rows))]
    rows.to_parquet(out)
    return out


def test_a_two_source_run_logs_entropy_and_pass_at_k_per_source(smoke_run, tmp_path):
    from entropy_verl.embedded import ensure_embedded_default

    paths = ensure_embedded_default()
    (tmp_path / "two_sources.py").write_text(REWARD)
    rows = smoke_run(
        "method=entropic",
        "entropy_verl.controllers.pi.target_entropy=0.4",
        "entropy_verl.controllers.pi.target_temperature=1.0",
        f"entropy_verl.task.data_source=[{','.join(SOURCES)}]",
        "entropy_verl.task.answer_extractor=null",
        "entropy_verl.task.final_answer=null",
        f"reward.custom_reward_function.path={tmp_path / 'two_sources.py'}",
        f"data.train_files={two_source_copy(paths.train_parquet, tmp_path / 'train.parquet')}",
        f"data.val_files={two_source_copy(paths.val_parquet, tmp_path / 'val.parquet')}",
        "trainer.test_freq=2",
        "data.val_max_samples=16",
        "actor_rollout_ref.rollout.val_kwargs.n=4",
        "trainer.n_gpus_per_node=2",  # two data-parallel workers: 8 rollout samples and 4 per mini-batch each
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8",
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=8",
    )
    for row in rows:
        for source in SOURCES:  # every step's batch holds both (every other row)
            quantiles = [row[f"entropy/{source}/p{q}"] for q in (10, 50, 90, 99)]
            assert quantiles == sorted(quantiles) and 0 < row[f"entropy/{source}/mean"] < 3
        for stat in ("min", "max"):  # one key per coefficient over both ranks, equal to what the driver sent
            assert row[f"actor/entropy_verl/worker_coef/alpha/{stat}"] == row["entropy_verl/driver_coef/alpha"]
        assert row["entropy_verl/worker_coef_mismatch_steps"] == 0
        assert not [key for key in row if "/rank" in key]
    last, prompts = rows[-1], 16  # data.val_max_samples: some n of them from the first source, the rest the second
    pooled = [last[f"val/pass@{k}"] for k in (1, 2, 4)]
    first, second = ([last[f"val-core/{source}/pass@{k}"] for k in (1, 2, 4)] for source in SOURCES)
    # the pooled pass@k is the prompt-weighted mean of the per-source ones, for one n at every k
    assert any(
        all(
            p == pytest.approx((n * a + (prompts - n) * b) / prompts)
            for p, a, b in zip(pooled, first, second, strict=True)
        )
        for n in range(1, prompts)
    ), (pooled, first, second)
