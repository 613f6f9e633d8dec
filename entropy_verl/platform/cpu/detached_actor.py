"""π_old that stays old on CPU: verl's ``DetachActorWorker`` with a save that owns its memory.

verl's ``separate_async`` trainer keeps the policy that sampled a batch (π_old) when ``parameter_sync_step > 1``: its
actor worker, ``DetachActorWorker``, saves each rank's parameter shards "to CPU" and restores them to compute old
log-probs. The save (``verl.utils.fsdp_utils.fsdp2_sharded_save_to_cpu``, and its FSDP1 twin) is
``param.detach().cpu()``, which on a GPU copies and on a CPU returns the parameter itself: the "saved" π_old is the live
policy, and every optimizer step changes it (measured in the issue that found it: ``rollout_probs_diff_max`` 0.046 at
step 1 with ``parameter_sync_step=4``, vs ~1e-6 with 1). ``CPUSafeDetachActorWorker`` wraps verl's save handler
(its ``_get_strategy_handlers`` extension point) and copies any saved tensor that shares memory with a parameter; on a
GPU nothing does, and it copies nothing. Used only when ``trainer.device=cpu`` (``EntropySeparateAsyncTrainer``).
Upstream fix proposed in docs/upstream/separate-async-cpu-pi-old.md.
"""

from __future__ import annotations

import torch
from verl.experimental.separation.engine_workers import DetachActorWorker


def parameter_storages(module: torch.nn.Module) -> set[int]:
    """The data pointers of the module's parameters (their local shards for DTensors)."""
    pointers = set()
    for param in module.parameters():
        local = param.to_local() if hasattr(param, "to_local") else param
        pointers.add(local.untyped_storage().data_ptr())
    return pointers


def owning_copies(saved, live: set[int]):
    """``saved`` (nested dicts, tuples and lists of tensors, as verl's save handlers return) with every tensor whose
    memory is one of ``live`` replaced by a copy; other values are returned as they are."""
    if isinstance(saved, torch.Tensor):
        return saved.clone() if saved.untyped_storage().data_ptr() in live else saved
    if isinstance(saved, dict):
        return {key: owning_copies(value, live) for key, value in saved.items()}
    if isinstance(saved, (tuple, list)):
        return type(saved)(owning_copies(value, live) for value in saved)
    return saved


def copying_save(save):
    """verl's save handler ``save(module)``, its result owning its memory."""

    def save_copy(module, *args, **kwargs):
        return owning_copies(save(module, *args, **kwargs), parameter_storages(module))

    return save_copy


class CPUSafeDetachActorWorker(DetachActorWorker):
    """verl's ``DetachActorWorker`` whose saved π_old never aliases the live parameters."""

    def _get_strategy_handlers(self):
        save, restore = super()._get_strategy_handlers()
        if getattr(save, "__wrapped_by_entropy_verl__", False):
            return save, restore
        save = copying_save(save)
        save.__wrapped_by_entropy_verl__ = True
        self._strategy_handlers = (save, restore)
        return self._strategy_handlers
