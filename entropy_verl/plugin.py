"""verl plugin entry point (``[project.entry-points."verl.plugins"]``).

``import verl`` imports this module in every process, Ray workers and vLLM's processes included, so it must cost
nothing where nothing of ours is needed (a GPU node's vLLM workers, say). It registers eagerly only what is cheap;
each registration that needs a heavy verl module waits until verl imports that module itself (``after_import``), and
the CPU platform and Clip-V's engine are registered only in runs that ask for them. verl swallows plugin import errors
at DEBUG level; we log ours at ERROR level and keep the exception in ``LOAD_ERROR`` so ``check_loaded()`` (called by
``entropy_verl.main`` and the tests) can raise it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import logging
import os
import sys
import traceback
from collections.abc import Callable

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


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs registrations right after a module finished importing (``after_import``)."""

    def __init__(self):
        self.pending: dict[str, list[Callable[[], None]]] = {}
        self._finding = False

    def find_spec(self, name, path=None, target=None):
        if name not in self.pending or self._finding:
            return None
        self._finding = True
        try:
            spec = importlib.util.find_spec(name)  # the finders after us find the real module
        finally:
            self._finding = False
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenRegister(spec.loader, self.pending.pop(name))
        return spec


class _ThenRegister(importlib.abc.Loader):
    def __init__(self, loader, hooks):
        self.loader, self.hooks = loader, hooks

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        for hook in self.hooks:
            _guarded(hook)

    def __getattr__(self, name):  # get_source, is_package, ... as the real loader
        return getattr(self.loader, name)


_AFTER_IMPORT = _AfterImport()
sys.meta_path.insert(0, _AFTER_IMPORT)


def after_import(module: str, register: Callable[[], None]) -> None:
    """Run ``register`` once ``module`` is imported (now, if it already is)."""
    if module in sys.modules:
        register()
    else:
        _AFTER_IMPORT.pending.setdefault(module, []).append(register)


def _guarded(register: Callable[[], None]) -> None:
    try:
        register()
    except Exception as exc:  # noqa: BLE001 - verl would hide it at DEBUG level; we keep it for check_loaded()
        _report(exc)


def _report(exc: BaseException) -> None:
    global LOAD_ERROR
    LOAD_ERROR = LOAD_ERROR or exc
    logger.error("entropy_verl plugin failed to register with verl:\n%s", traceback.format_exc())
    print(f"[entropy_verl] plugin failed to register with verl: {exc!r}", file=sys.stderr)


def _register_vocab_stats_engine() -> None:
    from entropy_verl.engine.fsdp import register_vocab_stats_engine

    register_vocab_stats_engine()


def _register_rollout_adapter() -> None:
    from verl.workers.rollout import base as rollout_base

    from entropy_verl.rollout.hf import ADAPTER_FQN, ROLLOUT_NAME

    rollout_base._ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = ADAPTER_FQN


def _register_rollout_replica() -> None:
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    from entropy_verl.rollout.hf import ROLLOUT_NAME, load_replica_class

    RolloutReplicaRegistry.register(ROLLOUT_NAME, load_replica_class)


def _register_vllm_cpu() -> None:
    from entropy_verl.rollout.vllm_cpu.metadata import install_version_alias

    install_version_alias()  # only where vllm-cpu is installed and vllm is not (CPU machines)


def _register_trainer() -> None:
    import entropy_verl.trainer.sync  # noqa: F401  - @register_trainer("entropy_sync") runs on import


def _register_advantages() -> None:
    import entropy_verl.advantages  # noqa: F401  - @register_adv_est(...) runs on import


def register_cpu() -> bool:
    """The CPU platform and verl's FSDP engines for it, where the CPU is wanted; also called by entropy_verl.main once
    the run's config says ``trainer.device=cpu``. Returns whether the CPU platform is active."""
    global CPU_PLATFORM_ACTIVE
    from entropy_verl.platform.cpu import register_cpu_platform

    if not CPU_PLATFORM_ACTIVE and register_cpu_platform():
        CPU_PLATFORM_ACTIVE = True
        after_import("verl.workers.engine", _register_cpu_engines)
    return CPU_PLATFORM_ACTIVE


def register_all() -> None:
    from entropy_verl import resolvers
    from entropy_verl.engine import VOCAB_STATS_VENDOR

    resolvers.register()  # our configs' ${embedded:...} and friends resolve under verl's own entry point too
    register_cpu()
    _register_vllm_cpu()
    if os.environ.get("VERL_ENGINE_VENDOR") == VOCAB_STATS_VENDOR:  # Clip-V runs (entropy_verl.main sets it)
        after_import("verl.workers.engine", _register_vocab_stats_engine)
    after_import("verl.workers.rollout.base", _register_rollout_adapter)
    after_import("verl.workers.rollout.replica", _register_rollout_replica)
    after_import("verl.trainer.ppo.v1", _register_trainer)  # the package, once its __init__ has run
    after_import("verl.trainer.ppo.core_algos", _register_advantages)


def check_loaded() -> None:
    """Run every registration still waiting for its verl module (the driver calls this before Ray starts, so an
    error a worker would hit shows here), then raise the first error the plugin hit, if any."""
    for module in list(_AFTER_IMPORT.pending):
        importlib.import_module(module)
    if LOAD_ERROR is not None:
        raise RuntimeError(f"entropy_verl's verl plugin failed to load: {LOAD_ERROR!r}") from LOAD_ERROR


_guarded(register_all)
