"""``ray_store``: a verl checkpoint engine for CPU runs. The trainer's rank 0 puts each new set of weights into Ray's
object store once; every rollout worker reads it from there.

verl's ``separate_async`` trainer updates the rollout's weights through a checkpoint engine of verl's
``CheckpointEngineRegistry`` and refuses the colocated ``naive`` one; verl's others (nccl, nixl, hccl, mooncake) need
an accelerator's transport (cupy, ...). Importing this module registers ``ray_store``; verl imports it in every worker
when ``actor_rollout_ref.rollout.checkpoint_engine.custom_backend_module`` names it.

``ray.put`` serialises the tensors, so what the rollout reads is a copy: the optimizer's next step (on CPU the full
tensors FSDP yields may be the parameters themselves) cannot change it.
"""

from __future__ import annotations

import asyncio

import ray
import torch
from verl.checkpoint_engine.base import CheckpointEngine, CheckpointEngineRegistry
from verl.workers.rollout.utils import ensure_async_iterator

BACKEND = "ray_store"


@ray.remote(num_cpus=0)
class WeightsMailbox:
    """Where rank 0 leaves the reference to the n-th set of weights and each rollout worker picks it up."""

    def __init__(self):
        self.sets: dict[int, list] = {}
        self.changed = asyncio.Condition()

    async def put(self, seq: int, refs: list) -> None:
        async with self.changed:
            self.sets = {seq: refs}  # only the newest: the previous set's readers have all read it
            self.changed.notify_all()

    async def get(self, seq: int) -> list:
        async with self.changed:
            await self.changed.wait_for(lambda: seq in self.sets or max(self.sets, default=-1) > seq)
            if seq not in self.sets:
                raise RuntimeError(f"ray_store checkpoint engine: weights set {seq} was replaced before it was read")
            return self.sets[seq]


def mailbox():
    """This job's mailbox (created by whoever asks first)."""
    name = f"entropy_verl_weights_mailbox_{ray.get_runtime_context().get_job_id()}"
    return WeightsMailbox.options(name=name, get_if_exists=True).remote()


@CheckpointEngineRegistry.register(BACKEND)
class RayStoreCheckpointEngine(CheckpointEngine):
    """Args (verl's): ``bucket_size`` (unused: one object per set of weights), ``is_master`` (the trainer's rank 0)."""

    def __init__(self, bucket_size: int, is_master: bool = False, **unused) -> None:
        self.is_master = is_master
        self.rank, self.seq, self._mailbox = None, 0, None

    def prepare(self) -> dict:
        return {}

    @classmethod
    def build_topology(cls, actor_wg_world_size: int, rollout_world_size: int, metadata: list[dict]):
        # the trainer's rank 0 sends; its other ranks only gather (FSDP); rollout workers read
        actor = {"rank": [0] + [-1] * (actor_wg_world_size - 1)}
        rollout = {"rank": list(range(1, rollout_world_size + 1))}
        return actor, rollout

    def init_process_group(self, rank: int, **unused) -> None:
        self.rank = rank
        if self._mailbox is None:
            self._mailbox = mailbox()

    def finalize(self) -> None:
        return None

    @torch.no_grad()
    async def send_weights(self, weights, global_steps: int | None = None):
        # every rank iterates: FSDP gathers each full tensor collectively; only rank 0 keeps them
        named = []
        async for name, tensor in ensure_async_iterator(weights):
            if self.rank == 0:
                named.append((name, tensor.detach().cpu()))
        if self.rank == 0:
            await self._mailbox.put.remote(self.seq, [ray.put(named)])
        self.seq += 1
        return {}

    async def receive_weights(self, global_steps: int | None = None):
        refs = await self._mailbox.get.remote(self.seq)
        self.seq += 1
        for name, tensor in await refs[0]:
            yield name, tensor
