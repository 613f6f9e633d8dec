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
    expected = {"embedded_grpo", "embedded_entropic", "top_entropy", "entropy_adv", "pos_adv_reweight", "clip_b", "clip_v",
                "steer", "clip_cov_global", "kl_cov_global", "sent", "w_reinforce", "psr", "nsr", "clip_higher", "cispo",
                "dr_grpo", "opo", "clip_cov", "kl_cov", "unlikeliness", "seed_grpo", "gdpo"}
    assert expected <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_config_composes_and_validates(name):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        config = compose(config_name=name)
    validate(config)
    assert config.trainer.experiment_name == name or name.startswith("embedded_")
    assert config.trainer.v1.trainer_mode == "entropy_sync" and config.actor_rollout_ref.rollout.name == "hf"


@pytest.mark.parametrize("name", NAMES)
def test_config_composes_with_the_gpu_cluster_base(name, tmp_path):
    """``base=cluster_gpu`` swaps the CPU base for verl's GPU path (vLLM, FSDP2, flash-attn packing) under every method
    config; the method's own keys stay. Only the mandatory model and data paths are added."""
    for path in ("model", "train.parquet", "val.parquet"):
        (tmp_path / path).touch()
    overrides = ["base=cluster_gpu", f"actor_rollout_ref.model.path={tmp_path / 'model'}",
                 f"data.train_files={tmp_path / 'train.parquet'}", f"data.val_files={tmp_path / 'val.parquet'}", "trainer.nnodes=2"]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        config = compose(config_name=name, overrides=overrides)
        cpu = compose(config_name=name)
    validate(config)
    rollout, actor = config.actor_rollout_ref.rollout, config.actor_rollout_ref.actor
    assert rollout.name == "vllm" and actor.strategy == "fsdp2" and config.actor_rollout_ref.model.use_remove_padding
    assert "attn_implementation" not in (config.actor_rollout_ref.model.get("override_config") or {})  # verl's default: flash-attn
    assert config.trainer.nnodes == 2 and config.trainer.n_gpus_per_node == 8 and config.trainer.device == "cuda"
    assert config.entropy_verl.loss == cpu.entropy_verl.loss and config.entropy_verl.controllers == cpu.entropy_verl.controllers
    assert config.algorithm.adv_estimator == cpu.algorithm.adv_estimator
    assert actor.policy_loss.loss_mode == cpu.actor_rollout_ref.actor.policy_loss.loss_mode
