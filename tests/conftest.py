"""Shared fixtures. Tests mirror the package (``tests/losses/`` for ``entropy_verl/losses/``, ...); ``tests/e2e/``
holds the runs of verl's real trainer through Ray. ``toy_policy.py`` is the toy softmax policy of the direction
tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
ENV = {**os.environ, "HYDRA_FULL_ERROR": "1"}


def make_token_ctx(
    probs,
    adv,
    mask,
    entropy=None,
    *,
    log_ratio=None,
    current_entropy=None,
    coefficients=None,
    step_stats=None,
    selections=None,
    global_batch_info=None,
    dtype=torch.float64,
):
    """A one-row ``LossContext`` from per-token lists: the sampled tokens' old probabilities, advantages, mask (1 =
    valid), the sampling policy's entropies; the current log-probs are the old ones + ``log_ratio`` (default 0)."""
    from entropy_verl.losses import LossContext

    def row(values):
        return None if values is None else torch.tensor([values], dtype=dtype)

    old_log_prob = torch.log(row(probs))
    log_prob = old_log_prob + (row(log_ratio) if log_ratio is not None else 0.0)
    return LossContext(
        log_prob=log_prob,
        old_log_prob=old_log_prob,
        advantages=row(adv),
        response_mask=torch.tensor([mask], dtype=torch.bool),
        entropy=row(current_entropy),
        old_entropy=row(entropy),
        coefficients=dict(coefficients or {}),
        step_stats=dict(step_stats or {}),
        selections=dict(selections or {}),
        global_batch_info=dict(global_batch_info or {}),
    )


@pytest.fixture
def token_ctx():
    """``token_ctx(probs, adv, mask, entropy, ...)`` -> a one-row LossContext (see ``make_token_ctx``)."""
    return make_token_ctx


@pytest.fixture
def method():
    """``method(name, **settings)`` -> (spec, config) of a registered method, built as a run config would build it."""
    from entropy_verl import registry
    from entropy_verl.config import build_entry, load_registry

    load_registry()

    def build(name, **settings):
        return build_entry(registry.get(name).block, name, settings)

    return build


@pytest.fixture
def actor_config():
    """verl's actor config as the policy losses see it (single rank, one micro-batch)."""
    from verl.workers.config import FSDPActorConfig

    def make(**fields):
        return FSDPActorConfig(
            strategy="fsdp2", ppo_mini_batch_size=1, ppo_micro_batch_size_per_gpu=1, rollout_n=1, **fields
        )

    return make


@pytest.fixture
def run_config():
    """``run_config(*overrides)`` -> the composed run config ``python -m entropy_verl.main <overrides>`` would get."""
    from entropy_verl.main import compose_run

    return lambda *overrides: compose_run(list(overrides))


@pytest.fixture
def run_main():
    """``run_main(*overrides, timeout=..., env=None)``: ``python -m entropy_verl.main`` in a subprocess, ``env``
    added to the environment (CompletedProcess)."""

    def run(*overrides, timeout=300, env: dict | None = None):
        return subprocess.run(
            [sys.executable, "-m", "entropy_verl.main", *overrides],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**ENV, **(env or {})},
            cwd=REPO,
        )

    return run


# A small but real build of the embedded default: every code path of the default build, about a second. One thread:
# two threads slow down several-fold when another process competes for the two cores.
SMALL_EMBEDDED = dict(
    sft_steps=2, sft_batch_size=32, n_train=64, n_val=16, n_eval=8, num_threads=1, show_progress=False
)


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    """The embedded default built small (``SMALL_EMBEDDED``) in a fresh directory: its ``EmbeddedPaths``."""
    from entropy_verl.embedded import ensure_embedded_default

    return ensure_embedded_default(str(tmp_path_factory.mktemp("cache") / "embedded"), **SMALL_EMBEDDED)


def write_rl_parquet(path, data_source: str, rows: int = 4) -> None:
    """A small dataset in verl's RL parquet format (the columns verl's RLHFDataset and reward loop read)."""
    import pandas as pd

    pd.DataFrame(
        [
            {
                "data_source": data_source,
                "prompt": [{"role": "user", "content": f"What is {i} + 3? End with '#### <number>'."}],
                "ability": "math",
                "reward_model": {"style": "rule", "ground_truth": str(i + 3)},
                "extra_info": {"split": "train", "index": i},
            }
            for i in range(rows)
        ]
    ).to_parquet(path)


@pytest.fixture
def user_run(tmp_path):
    """``user_run(data_source="openai/gsm8k", reward=None)`` -> overrides naming a model directory and train/val
    parquet files in verl's RL format made here (the model directory is empty: validation does not load it), and with
    ``reward`` (a function's source, named ``score``) the custom reward function's file."""

    def make(data_source="openai/gsm8k", reward=None):
        (tmp_path / "model").mkdir(exist_ok=True)
        overrides = [f"actor_rollout_ref.model.path={tmp_path / 'model'}"]
        for split in ("train", "val"):
            write_rl_parquet(tmp_path / f"{split}.parquet", data_source)
            overrides.append(f"data.{split}_files={tmp_path / f'{split}.parquet'}")
        if reward is not None:
            (tmp_path / "reward.py").write_text(reward)
            overrides += [
                f"reward.custom_reward_function.path={tmp_path / 'reward.py'}",
                "reward.custom_reward_function.name=score",
            ]
        return overrides

    return make


@pytest.fixture
def launch():
    """``launch("submit" | "sweep", *args)``: a launch/ tool in a subprocess, without any RAY_ADDRESS of ours and with
    Ray's token auth off (the tests' heads listen on 127.0.0.1 only)."""
    drop = ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")
    env = {**{k: v for k, v in os.environ.items() if k not in drop}, "RAY_AUTH_MODE": "disabled"}

    def run(tool, *args, timeout=900):
        return subprocess.run(
            [sys.executable, os.path.join(REPO, "launch", tool), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )

    return run


class LocalCluster:
    """``python -m entropy_verl.tools.local_cluster`` in its own process group, driven through its stdin."""

    def __init__(self, temp_dir, nodes: int = 2):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "entropy_verl.tools.local_cluster", "--nodes", str(nodes), "--temp-dir", temp_dir],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            start_new_session=True,
        )
        self.info = self.ask(None)

    def ask(self, command: str | None) -> dict:
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"local_cluster ended (exit {self.proc.poll()})"
        return json.loads(line)

    def stop(self) -> None:
        try:
            self.ask("stop") if self.proc.poll() is None else None
            self.proc.wait(timeout=60)
        except Exception:  # noqa: BLE001 - whatever happened, nothing of the cluster may outlive the test
            pass
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
