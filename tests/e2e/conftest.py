"""Runs of verl's real v1 trainer through Ray on this CPU machine (FSDP2 workers over gloo, the hf rollout)."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ENV = {**os.environ, "HYDRA_FULL_ERROR": "1"}

# 4 prompts x 4 samples a step: each 2-step run is mostly start-up (~60 s on 2 cores)
SMOKE = [
    "trainer.total_training_steps=2",
    "data.train_batch_size=4",
    "actor_rollout_ref.rollout.n=4",
    "actor_rollout_ref.actor.ppo_mini_batch_size=2",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=16",
    "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=16",
    "actor_rollout_ref.rollout.agent.num_workers=1",
]


def metrics_rows(run_dir) -> list[dict]:
    """metrics.jsonl of a run directory, one dict per step with its step number under "step"."""
    return [
        {"step": r["step"], **r["data"]} for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
    ]


def checkpointed(run_dir) -> int:
    """The step of the run's last complete checkpoint (verl's tracker; 0 when there is none)."""
    tracker = run_dir / "checkpoints" / "latest_checkpointed_iteration.txt"
    return int(tracker.read_text().strip() or 0) if tracker.exists() else 0


def assert_loopback_only(output: str) -> None:
    """A run that started its own Ray cluster kept every node on 127.0.0.1 (the trainer prints the nodes' addresses)."""
    nodes = re.findall(r"\[entropy_verl\] Ray nodes: (.*)", output)
    assert nodes and all(line.strip() == "127.0.0.1" for line in nodes), nodes


def run_until_checkpoint_then_kill(
    command: list[str], run_dir, step: int, timeout_s: float = 900, env: dict | None = None
) -> None:
    """Start ``command`` (a run writing to ``run_dir``; ``env`` added to the environment), and once step ``step`` is
    checkpointed and logged (verl logs a step after its validation), SIGKILL it and everything it started, its Ray
    included."""
    first = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**ENV, **(env or {})},
        start_new_session=True,
    )
    deadline, metrics = time.time() + timeout_s, run_dir / "metrics.jsonl"
    while not (checkpointed(run_dir) == step and metrics.exists() and f'"step":{step},' in metrics.read_text()):
        assert first.poll() is None and time.time() < deadline, f"the run ended before its step-{step} checkpoint"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "ray"), "stop", "--force"], capture_output=True)


@pytest.fixture
def kill_after_checkpoint():
    """``kill_after_checkpoint(command, run_dir, step)``: see ``run_until_checkpoint_then_kill``."""
    return run_until_checkpoint_then_kill


@pytest.fixture
def smoke_overrides():
    return list(SMOKE)


def smoke_for(steps: int) -> list[str]:
    """The smoke overrides for a run of ``steps`` steps."""
    return [o for o in SMOKE if not o.startswith("trainer.total_training_steps")] + [
        f"trainer.total_training_steps={steps}"
    ]


@pytest.fixture
def smoke_steps():
    """``smoke_steps(n)`` -> the smoke overrides for a run of n steps (see ``smoke_for``)."""
    return smoke_for


def assert_drivers_alpha_and_integral(rows: dict[int, dict], integral: float = 0.0, after: int = 0) -> None:
    """Every step of ``rows`` ({step: metrics}): every rank's alpha (min and max over ranks) is the driver's, to
    1e-12; from step ``after`` + 1 on, the PI integral continues from ``integral``: I_t = I_{t-1} + e_t, to 1e-12."""
    for step, row in sorted(rows.items()):
        driver = row["entropy_verl/driver_coef/alpha"]
        used = [row[f"actor/entropy_verl/worker_coef/alpha/{s}"] for s in ("min", "max")]
        assert used == [pytest.approx(driver, abs=1e-12)] * 2, (step, driver, used)
        if step > after:
            integral += row["entropy_control/pi/error"]
            assert row["entropy_control/pi/integral"] == pytest.approx(integral, abs=1e-12), step


@pytest.fixture
def drivers_alpha_and_integral():
    """``drivers_alpha_and_integral(rows, integral=0.0, after=0)``: see ``assert_drivers_alpha_and_integral``."""
    return assert_drivers_alpha_and_integral


@pytest.fixture
def last_checkpoint():
    """``last_checkpoint(run_dir)`` -> the step of the run's last complete checkpoint (see ``checkpointed``)."""
    return checkpointed


@pytest.fixture
def read_metrics():
    """``read_metrics(run_dir)`` -> the run's metric rows (see ``metrics_rows``)."""
    return metrics_rows


@pytest.fixture
def smoke_run(tmp_path, run_main):
    """``smoke_run(*overrides)``: a 2-step run on the smoke batch; asserts it succeeded with finite losses and returns
    its metric rows."""

    def run(*overrides, name="run"):
        run_dir = tmp_path / name
        out = run_main(*SMOKE, *overrides, f"entropy_verl.run_dir={run_dir}", timeout=900)
        assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-5000:])
        assert_loopback_only(out.stdout + out.stderr)
        rows = metrics_rows(run_dir)
        assert len(rows) == 2
        for row in rows:
            assert all(math.isfinite(row[k]) for k in ("actor/entropy", "actor/pg_loss", "actor/grad_norm"))
        return rows

    return run
