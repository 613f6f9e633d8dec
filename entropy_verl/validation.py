"""Start-up checks that run in the driver before Ray starts: bad input fails here, naming the offending key."""

from __future__ import annotations

import os

from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    """A configuration value entropy_verl cannot run with. The message starts with the key."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}")


def _raw(config: DictConfig, key: str):
    """The unresolved value at ``key`` (an interpolation stays a ``${...}`` string)."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(config, parent_key, default=None) if parent_key else config
    node = parent._get_node(leaf) if isinstance(parent, DictConfig) else None  # noqa: SLF001
    return None if node is None else node._value()  # noqa: SLF001


def _is_embedded(config: DictConfig, key: str) -> bool:
    # Interpolations into the embedded default are built on demand, so there is nothing to check yet.
    raw = _raw(config, key)
    return isinstance(raw, str) and raw.startswith("${embedded:")


def _looks_local(path: str) -> bool:
    """Hub ids (``org/name``) and remote URIs are verl's to fetch; paths we can check are local-looking ones."""
    return path.startswith(("/", "./", "../", "~"))


def check_local_path(config: DictConfig, key: str, what: str) -> None:
    if _is_embedded(config, key):
        return
    value = OmegaConf.select(config, key, default=None, throw_on_missing=False)
    if value is None or value == "???":
        raise ConfigError(key, f"{what} is not set")
    for path in value if isinstance(value, (list, tuple)) or OmegaConf.is_list(value) else [value]:
        path = str(path)
        if "://" in path:
            continue
        if _looks_local(path) and not os.path.exists(os.path.expanduser(path)):
            raise ConfigError(key, f"{what} {path!r} does not exist")


def check_rollout_name(config: DictConfig) -> None:
    from verl.workers.rollout.base import _ROLLOUT_REGISTRY
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    key = "actor_rollout_ref.rollout.name"
    name = OmegaConf.select(config, key, default=None, throw_on_missing=False)
    mode = OmegaConf.select(config, "actor_rollout_ref.rollout.mode", default="async")
    known = sorted(RolloutReplicaRegistry._registry)  # noqa: SLF001 - verl exposes no accessor
    if name in (None, "???") or name not in known or (name, mode) not in _ROLLOUT_REGISTRY:
        raise ConfigError(key, f"unknown rollout backend {name!r}; registered: {known}")


def check_entropy_control(config: DictConfig) -> None:
    """Controllers and loss methods exist, their values are valid, and what they need is configured."""
    from entropy_verl.controllers import build_controller
    from entropy_verl.trainer.sync import TRAINER_NAME, entropy_control_spec

    controllers, loss = entropy_control_spec(config)
    if not controllers and not loss.methods:
        return
    mode_key = "trainer.v1.trainer_mode"
    if OmegaConf.select(config, mode_key) != TRAINER_NAME:
        raise ConfigError(mode_key, f"entropy controllers and loss methods run in the {TRAINER_NAME!r} trainer, got {OmegaConf.select(config, mode_key)!r}")
    if OmegaConf.select(config, "algorithm.rollout_correction.bypass_mode", default=False):
        raise ConfigError("algorithm.rollout_correction.bypass_mode", "entropy control needs the per-token entropy verl computes "
                          "when it recomputes old log-probs, and bypass mode skips that recomputation")
    produced = set()
    for name, cfg in controllers.items():
        key = f"entropy_verl.controllers.{name}"
        try:
            controller = build_controller(name, cfg)  # the trainer builds it the same way
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(key, str(exc).strip("'\"")) from None
        produced.update(controller.outputs)
    calculate_entropy = bool(OmegaConf.select(config, "actor_rollout_ref.actor.calculate_entropy", default=False))
    for method in loss.methods:
        try:
            spec, method_cfg = loss.build_method(method)  # the trainer builds it the same way
        except KeyError as exc:
            raise ConfigError("entropy_verl.loss.methods", str(exc).strip("'\"")) from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"entropy_verl.loss.method_configs.{method}", str(exc)) from None
        if spec.needs_entropy and not calculate_entropy:
            raise ConfigError("actor_rollout_ref.actor.calculate_entropy", f"loss method {method!r} needs the current policy's entropy "
                              "with gradient: set it to true")
        mode_key = "actor_rollout_ref.actor.policy_loss.loss_mode"
        if spec.loss_mode and OmegaConf.select(config, mode_key) != spec.loss_mode:
            raise ConfigError(mode_key, f"loss method {method!r} is defined with loss_mode {spec.loss_mode!r} (no PPO clip), "
                              f"got {OmegaConf.select(config, mode_key)!r}")
        if spec.needs_vocab_stats:
            check_vocab_stats_engine(config, method)
        coefficient = getattr(method_cfg, "reads_coefficient", spec.coefficient)
        if coefficient and coefficient not in produced:
            raise ConfigError("entropy_verl.controllers", f"loss method {method!r} reads coefficient {coefficient!r}, which no "
                              f"configured controller produces (configured: {sorted(controllers) or 'none'})")


def check_vocab_stats_engine(config: DictConfig, method: str) -> None:
    """The full-vocabulary sums come from entropy_verl's engine, selected through verl's VERL_ENGINE_VENDOR, and need
    the full logits (no fused kernels)."""
    from entropy_verl.engine import ENGINE_VENDOR_KEY, VOCAB_STATS_VENDOR

    key = "actor_rollout_ref.model.use_fused_kernels"
    if OmegaConf.select(config, key, default=False):
        raise ConfigError(key, f"loss method {method!r} needs full-vocabulary statistics of the logits, which fused "
                          "kernels never materialise: set it to false")
    vendor = OmegaConf.select(config, ENGINE_VENDOR_KEY, default=None) or os.environ.get("VERL_ENGINE_VENDOR")
    if vendor not in (None, VOCAB_STATS_VENDOR):
        raise ConfigError(ENGINE_VENDOR_KEY, f"loss method {method!r} runs on entropy_verl's engine (vendor {VOCAB_STATS_VENDOR!r}), "
                          f"which this run sets itself; got {vendor!r}")


def check_advantage_estimator(config: DictConfig) -> None:
    """The estimator is registered with verl (ours included), and our estimators' ``algorithm.<name>`` values are valid."""
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    from entropy_verl.advantages import ESTIMATOR_CONFIGS, estimator_config
    from entropy_verl.advantages.gdpo import gdpo_reward_keys

    key = "algorithm.adv_estimator"
    name = str(OmegaConf.select(config, key))
    try:
        get_adv_estimator_fn(name)
    except ValueError as exc:
        raise ConfigError(key, f"unknown advantage estimator {name!r} ({exc})") from None
    if name == "gdpo" and OmegaConf.select(config, "trainer.use_v1", default=True):
        raise ConfigError(key, "verl 0.9.1's 'gdpo' cannot run under the v1 trainer (its advantage step never passes the "
                          "reward components, so it fails at the first step); use 'gdpo_v1' (same keys: "
                          "algorithm.gdpo_reward_keys / gdpo_reward_weights), see trainer_configs/gdpo.yaml")
    if name == "gdpo_v1":
        try:
            gdpo_reward_keys(config.algorithm)
        except ValueError as exc:
            raise ConfigError("algorithm.gdpo_reward_keys", str(exc)) from None
    if name in ESTIMATOR_CONFIGS:
        try:
            estimator_config(config.algorithm, name)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"algorithm.{name}", str(exc)) from None


def check_batch_divisibility(config: DictConfig) -> None:
    """verl asserts these deep inside a worker after start-up; catch them here with the key to change."""
    if OmegaConf.select(config, "actor_rollout_ref.actor.use_dynamic_bsz", default=False):
        return
    n = int(OmegaConf.select(config, "actor_rollout_ref.rollout.n", default=1))
    world = int(config.trainer.nnodes) * int(config.trainer.n_gpus_per_node)
    samples = int(config.data.train_batch_size) * n
    mini = int(config.actor_rollout_ref.actor.ppo_mini_batch_size) * n
    checks = [
        ("data.train_batch_size", samples, "rollout samples per step (train_batch_size x rollout.n)"),
        ("actor_rollout_ref.actor.ppo_mini_batch_size", mini, "samples per mini-batch (ppo_mini_batch_size x rollout.n)"),
    ]
    for key, total, what in checks:
        if total % world:
            raise ConfigError(key, f"{what} = {total} is not divisible by nnodes x n_gpus_per_node = {world}")
    micro = [
        ("actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu", samples // world),
        ("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu", mini // world),
    ]
    for key, per_worker in micro:
        size = OmegaConf.select(config, key, default=None)
        if size and per_worker % int(size):
            raise ConfigError(key, f"{size} does not divide the {per_worker} samples each of the {world} workers gets")


def check_diagnostics(config: DictConfig) -> None:
    from entropy_verl.trainer.sync import build_diagnostics

    try:
        build_diagnostics(config)  # the trainer builds them the same way
    except (TypeError, ValueError) as exc:
        raise ConfigError("entropy_verl.diagnostics", str(exc)) from None


def validate(config: DictConfig) -> None:
    """All entropy_verl start-up checks, cheapest first."""
    check_rollout_name(config)
    check_diagnostics(config)
    check_batch_divisibility(config)
    check_entropy_control(config)
    check_advantage_estimator(config)
    check_local_path(config, "actor_rollout_ref.model.path", "model path")
    check_local_path(config, "data.train_files", "training data")
    check_local_path(config, "data.val_files", "validation data")
