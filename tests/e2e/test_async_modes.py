"""Entropy control in verl's asynchronous v1 trainers, end to end on CPU (the embedded default, smoke sizes)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from conftest import ENV

from entropy_verl.rollout.hf.server import TOKEN_DELAY_DRILL_ENV

# Partial rollout: verl's colocate_async pauses generation once a step's batch is sampled, and the requests then in
# a running wave stop and finish on the next weights. Here generation is far faster than a training step and would
# rarely be caught running, so the hf server is slowed down (a drill: 20 ms before each token) and samples in waves of
# 4 requests. verl keeps one batch ahead (num_warmup_batches: 1): the pause lands a few tokens into the next batch's
# first wave (with 0.1 s a token it landed before the first). A cut group resumes behind the groups queued after it
# (verl's client resends it after 1 s), so it may be trained a step or two later: 6 steps leave room for that.
PARTIAL_ROLLOUT = ["actor_rollout_ref.rollout.max_num_seqs=4"]
SLOW_TOKENS = {TOKEN_DELAY_DRILL_ENV: "0.02"}
GAP = "entropy_verl/rollout_log_prob_gap"


def killed_then_resumed(command, run_dir, kill_after_checkpoint, read_metrics, env: dict | None = None):
    """``command`` killed once its step-2 checkpoint is written and logged, then run again to the end: the metric rows
    of each launch ({step: row}), the controllers' state saved at step 2, and the second launch's output."""
    kill_after_checkpoint(command, run_dir, 2, env=env)
    before = {row["step"]: row for row in read_metrics(run_dir)}
    saved = json.loads((run_dir / "checkpoints" / "global_step_2" / "entropy_controllers.json").read_text())
    second = subprocess.run(command, capture_output=True, text=True, timeout=900, env={**ENV, **(env or {})})
    assert second.returncode == 0, second.stderr[-6000:]
    after = {row["step"]: row for row in read_metrics(run_dir)}
    assert sorted(before) == [1, 2] and min(after) == 3  # resumed at step 3
    assert saved["controllers"]["pi"]["integral"] == pytest.approx(before[2]["entropy_control/pi/integral"], abs=1e-12)
    return before, after, saved, second


@pytest.mark.slow
def test_entropic_in_verls_colocate_async_trainer_with_partial_rollouts_survives_a_kill_exactly(
    tmp_path, smoke_steps, read_metrics, kill_after_checkpoint, drivers_alpha_and_integral
):
    """``trainer.v1.trainer_mode=entropy_colocate_async``: verl's colocated asynchronous trainer with EntroPIC's
    controller on the driver. The controller measures the batch the trainer trains (``actor/entropy``), every rank
    uses the driver's alpha, verl logs how many weight versions behind each batch was sampled and how many versions a
    trajectory spans, and a run killed after its step-2 checkpoint resumes at step 3 with the integral continuing.
    Requests cut by a pause resume on the new weights, are trained, and their resumed tokens' log-probs are the
    trainer's."""
    run_dir = tmp_path / "colocate_async"
    command = [
        sys.executable,
        "-m",
        "entropy_verl.main",
        "experiment=embedded_entropic",
        "trainer.v1.trainer_mode=entropy_colocate_async",
        "entropy_verl.controllers.pi.integral_limit=null",
        *smoke_steps(6),
        *PARTIAL_ROLLOUT,
        "trainer.save_freq=2",
        "trainer.resume_mode=auto",
        f"entropy_verl.run_dir={run_dir}",
    ]
    before, after, saved, second = killed_then_resumed(
        command, run_dir, kill_after_checkpoint, read_metrics, env=SLOW_TOKENS
    )
    assert sorted(after) == [3, 4, 5, 6]
    drivers_alpha_and_integral({**before, **after}, saved["controllers"]["pi"]["integral"], after=2)
    for row in (*before.values(), *after.values()):
        assert row["entropy_verl/worker_coef_mismatch_steps"] == 0
        assert row["entropy_control/pi/measurement"] == pytest.approx(row["actor/entropy"], rel=1e-6)
        assert row["training/off_policy/trajectory_staleness/max"] >= 0  # verl's, next to the entropy
    # partial rollout happened: the trainer's pauses stopped requests holding tokens of the old weights, they were
    # resumed on the new ones and trained (verl counts trajectories sampled across two or more weight versions), and
    # their resumed tokens were sampled by the weights the trainer then held as pi_old: their log-probs agree with
    # the trainer's (every token sampled by pi_old's weights does, to float error)
    rows = {**before, **after}
    spans = {step: row["training/off_policy/trajectory_spans/max"] for step, row in rows.items()}
    continued = {step: row["entropy_verl/partial_rollout/continued_tokens_total"] for step, row in rows.items()}
    paused = re.findall(
        r"generation paused: (\d+) request\(s\) stopped in a running wave, (\d+) of them partial \((\d+) tokens",
        second.stdout + second.stderr,
    )
    print(f"by step: spans (max) {spans}, continued tokens {continued}; resumed launch's pauses: {paused}")
    assert any(continued[step] > 0 and spans[step] >= 2 for step in rows), (spans, continued)
    # (a step may train no token of pi_old's weights: after the resume, verl restores the finished samples of its
    # TransferQueue checkpoint, sampled by older weights)
    pi_old = {step: row.get(f"{GAP}/pi_old_weights/max") for step, row in rows.items()}
    assert all(gap < 1e-4 for gap in pi_old.values() if gap is not None), pi_old
    assert sum(gap is not None for gap in pi_old.values()) >= 4, pi_old


# verl's separate_async on CPU: the rollout on its own resource pool (one logical slot), weights sent through the
# ray_store checkpoint engine every parameter_sync_step (4) local updates of ppo_mini_batch_size (1) prompt
SEPARATE_ASYNC = [
    "trainer.v1.trainer_mode=entropy_separate_async",
    "trainer.v1.separate_async.parameter_sync_step=4",
    "actor_rollout_ref.actor.ppo_mini_batch_size=1",
    "actor_rollout_ref.rollout.nnodes=1",
    "actor_rollout_ref.rollout.n_gpus_per_node=1",
    "actor_rollout_ref.rollout.checkpoint_engine.backend=ray_store",
    "actor_rollout_ref.rollout.checkpoint_engine.custom_backend_module=entropy_verl.rollout.checkpoint_engine",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4",  # divides a local update (1 prompt x 4)
    "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=4",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
    # an entropy bonus: every local update changes the weights even when a group's rewards are all equal (zero
    # advantages), so a pi_old that aliased the live weights shows in the later updates' old log-probs
    "actor_rollout_ref.actor.entropy_coeff=0.01",
]


# the rollout slower than training (a drill: 0.2 s before each token), so that each weight sync finds a wave running
SLOWER_THAN_TRAINING = {TOKEN_DELAY_DRILL_ENV: "0.2"}


@pytest.mark.slow
def test_entropic_in_verls_separate_async_trainer_with_partial_rollouts_and_pi_old_kept_on_cpu(
    tmp_path, smoke_steps, run_main, read_metrics, drivers_alpha_and_integral
):
    """``trainer.v1.trainer_mode=entropy_separate_async``, 4 steps, generation slower than training: every rank used
    the driver's alpha each step and the PI integral is exact; weight syncs cut running requests, which resume on the
    new weights and are trained (verl counts trajectories spanning 2+ versions); and pi_old is the policy that
    sampled: on every step and every local update, the tokens sampled by pi_old's weights (those of resumed
    trajectories included) have the rollout's log-probs to float error, while tokens of older weights do not. With
    verl's own actor worker on CPU the saved pi_old is the live policy, and local updates 2-4 differ there."""
    run_dir = tmp_path / "separate_async"
    out = run_main(
        "experiment=embedded_entropic",
        "entropy_verl.controllers.pi.integral_limit=null",
        *smoke_steps(4),
        *SEPARATE_ASYNC,
        *PARTIAL_ROLLOUT,
        f"entropy_verl.run_dir={run_dir}",
        timeout=900,
        env=SLOWER_THAN_TRAINING,
    )
    assert out.returncode == 0, out.stderr[-6000:]
    rows = {row["step"]: row for row in read_metrics(run_dir)}
    assert sorted(rows) == [1, 2, 3, 4]
    drivers_alpha_and_integral(rows)
    seen = {
        step: (
            row[f"{GAP}/pi_old_weights/max"],
            row.get(f"{GAP}/older_weights/max"),
            row["entropy_verl/partial_rollout/continued_tokens_total"],
            row["training/off_policy/trajectory_spans/max"],
        )
        for step, row in rows.items()
    }
    print(f"by step: (gap on pi_old's tokens, gap on older tokens, continued tokens, spans max): {seen}")
    assert rows[1]["training/rollout_probs_diff_max"] < 1e-4  # verl's own check: nothing is stale at step 1
    assert all(pi_old < 1e-4 for pi_old, _, _, _ in seen.values()), seen
    # partial rollout: trained trajectories begun on older weights and continued on pi_old's
    assert any(continued > 0 and spans >= 2 for _, _, continued, spans in seen.values()), seen
    assert max(older or 0.0 for _, older, _, _ in seen.values()) > 1e-3, seen  # the split can tell them apart


@pytest.mark.slow
def test_entropic_in_verls_separate_async_trainer_survives_a_kill_exactly(
    tmp_path, smoke_steps, read_metrics, kill_after_checkpoint, drivers_alpha_and_integral
):
    """``entropy_separate_async`` killed after its step-2 checkpoint: the same command resumes at step 3, the PI
    integral continues from the checkpoint (I_t = I_{t-1} + e_t) and every rank keeps using the driver's alpha."""
    run_dir = tmp_path / "separate_async"
    command = [
        sys.executable,
        "-m",
        "entropy_verl.main",
        "experiment=embedded_entropic",
        "entropy_verl.controllers.pi.integral_limit=null",
        *smoke_steps(4),
        *SEPARATE_ASYNC,
        "trainer.save_freq=2",
        "trainer.resume_mode=auto",
        f"entropy_verl.run_dir={run_dir}",
    ]
    before, after, saved, _ = killed_then_resumed(command, run_dir, kill_after_checkpoint, read_metrics)
    assert sorted(after) == [3, 4]
    drivers_alpha_and_integral({**before, **after}, saved["controllers"]["pi"]["integral"], after=2)
