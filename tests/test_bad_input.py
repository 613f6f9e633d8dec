"""Bad input fails in the driver, before Ray starts, with a message that names the offending key."""

import os
import subprocess
import sys

import pytest


def run_main(*overrides):
    return subprocess.run(
        [sys.executable, "-m", "entropy_verl.main", *overrides],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HYDRA_FULL_ERROR": "1"},
    )


@pytest.mark.parametrize(
    "override,key,value",
    [
        ("actor_rollout_ref.rollout.name=sglang_typo", "actor_rollout_ref.rollout.name", "sglang_typo"),
        ("actor_rollout_ref.model.path=/nonexistent/model", "actor_rollout_ref.model.path", "/nonexistent/model"),
        ("data.train_files=/nonexistent/train.parquet", "data.train_files", "/nonexistent/train.parquet"),
    ],
)
def test_bad_input_fails_before_ray(override, key, value):
    out = run_main(override)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "ConfigError" in text and key in text and value in text, text[-3000:]
    assert "Started a local Ray instance" not in text and "ray init kwargs" not in text
