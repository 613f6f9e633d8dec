"""Registering our estimators with verl, and reading each one's dataclass config from verl's ``algorithm`` node."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf
from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage, register_adv_est

ESTIMATOR_CONFIGS: dict[str, type] = {}  # our estimators -> their config dataclass (validated at start-up)
ESTIMATOR_NEEDS: dict[str, tuple[str, ...]] = {}  # our estimators -> the driver inputs they read (driver_inputs.py)


def register_estimator(name: str, config_cls: type, needs: tuple[str, ...] = ()):
    """verl's ``register_adv_est(name)``, also recording the config class read from ``algorithm.<name>`` and the
    per-response inputs the trainer must provide (``driver_inputs``)."""
    def decorator(fn):
        ESTIMATOR_CONFIGS[name] = config_cls
        ESTIMATOR_NEEDS[name] = tuple(needs)
        return register_adv_est(name)(fn)

    return decorator


def grpo_advantages(token_level_rewards, response_mask, index, algorithm_config):
    """verl's GRPO group normalisation, honouring ``algorithm.norm_adv_by_std_in_grpo`` (default True)."""
    norm_by_std = True if algorithm_config is None else bool(algorithm_config.get("norm_adv_by_std_in_grpo", True))
    return compute_grpo_outcome_advantage(token_level_rewards, response_mask, index, norm_adv_by_std_in_grpo=norm_by_std)


def estimator_config(algorithm_config, name: str):
    """``config_cls(**algorithm.<name>)``; defaults when the node is absent (or verl passes no config)."""
    node = None if algorithm_config is None else algorithm_config.get(name, None)
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)
    return ESTIMATOR_CONFIGS[name](**(node or {}))
