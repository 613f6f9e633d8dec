"""Steps that cannot train never pass silently, through verl's real trainer on CPU: a reward function that returns NaN
for some rows. Under ``nonfinite_reward=zero`` (the default) the run trains on, counting the rows and
naming them; under ``keep`` (verl's own behaviour) advantages, loss and gradient norm become NaN, each is counted,
and the run fails after ``max_nonfinite_steps`` bad steps in a row, with the cause named."""

from __future__ import annotations

import math

import pytest

# The embedded task's reward, except NaN (a float that is not a number) for every fourth row of the dataset (never
# row 0, which start-up validation scores). (A reward of None leaves verl with no score for the sample at all; the
# trainer stops on it with that said.)
REWARD = """
from entropy_verl.tasks.countdown import compute_score_components as countdown_score


def compute_score_components(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    if (extra_info or {}).get("index", 0) % 4 == 3:
        return {"score": float("nan"), "accuracy_reward": 0.0, "format_reward": 0.0}
    return countdown_score(data_source, solution_str, ground_truth, extra_info, **kwargs)
"""


def run(run_main, tmp_path, smoke, name, *overrides):
    reward = tmp_path / "flaky_reward.py"
    reward.write_text(REWARD)
    run_dir = tmp_path / name
    out = run_main(
        *smoke,
        f"reward.custom_reward_function.path={reward}",
        "data.train_batch_size=8",  # 8 prompts a step: some row with index % 4 == 3 in every step
        f"entropy_verl.run_dir={run_dir}",
        *overrides,
        timeout=900,
    )
    return out, run_dir


@pytest.mark.slow
def test_non_number_rewards_are_zeroed_counted_and_named_and_kept_ones_fail_the_run(
    tmp_path, smoke_overrides, read_metrics, run_main
):
    zeroed, run_dir = run(run_main, tmp_path, smoke_overrides, "zero")
    assert zeroed.returncode == 0, zeroed.stderr[-4000:]
    rows = read_metrics(run_dir)
    assert len(rows) == 2
    for row in rows:
        assert row["entropy_control/nonfinite/reward"] > 0  # counted every step
        assert math.isfinite(row["actor/pg_loss"]) and math.isfinite(row["actor/grad_norm"])  # and it trained
        assert row["entropy_control/nonfinite/advantages"] == 0
    assert rows[-1]["entropy_control/nonfinite/consecutive"] == 2
    assert "non-finite reward" in zeroed.stderr + zeroed.stdout and "countdown3 #" in zeroed.stderr + zeroed.stdout

    kept, run_dir = run(
        run_main,
        tmp_path,
        smoke_overrides,
        "keep",
        "entropy_verl.safety.nonfinite_reward=keep",
        "entropy_verl.safety.max_nonfinite_steps=2",
        "trainer.total_training_steps=3",
    )
    assert kept.returncode != 0
    said = kept.stdout + kept.stderr
    assert "NonFiniteError" in said and "for 2 consecutive steps" in said, said[-4000:]
    first = read_metrics(run_dir)[0]  # step 1 trained on NaN and said so; step 2 stopped the run
    assert first["entropy_control/nonfinite/reward"] > 0 and first["entropy_control/nonfinite/advantages"] > 0
    assert first["entropy_control/nonfinite/loss"] > 0 and first["entropy_control/nonfinite/grad_norm"] == 1
