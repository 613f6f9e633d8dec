"""Every named config in trainer_configs/ composes (verl's ppo_trainer + our base + the method) and passes the
start-up checks, so ``python -m entropy_verl.main --config-name <name>`` gets past validation for each."""

from __future__ import annotations

import os

import pytest
from hydra import compose, initialize_config_dir

from entropy_verl.main import CONFIG_DIR
from entropy_verl.validation import validate

NAMES = sorted(f[: -len(".yaml")] for f in os.listdir(CONFIG_DIR) if f.endswith(".yaml"))


def test_the_method_configs_are_there():
    expected = {"embedded_grpo", "embedded_entropic", "top_entropy", "entropy_adv", "pos_adv_reweight", "clip_b", "steer",
                "clip_cov_global", "kl_cov_global", "sent", "w_reinforce", "psr", "nsr", "clip_higher", "cispo", "dr_grpo",
                "opo", "clip_cov", "kl_cov", "unlikeliness", "seed_grpo"}
    assert expected <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_config_composes_and_validates(name):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        config = compose(config_name=name)
    validate(config)
    assert config.trainer.experiment_name == name or name.startswith("embedded_")
    assert config.trainer.v1.trainer_mode == "entropy_sync" and config.actor_rollout_ref.rollout.name == "hf"
