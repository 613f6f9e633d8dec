"""``HFServerAdapter``: the rollout object inside each trainer worker (verl's ``BaseRollout``).

verl's naive checkpoint engine hands it the freshly trained weights as ``(name, tensor)`` pairs after every step;
the first rank of each replica forwards them to that replica's server actor.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import ray
import torch
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.utils import ensure_async_iterator

from .replica import server_actor_name


class HFServerAdapter(BaseRollout):
    def __init__(self, config, model_config, device_mesh, replica_rank: int = -1):
        super().__init__(config, model_config, device_mesh)
        rollout_world_size = (
            self.config.tensor_model_parallel_size
            * self.config.data_parallel_size
            * self.config.pipeline_model_parallel_size
        )
        rank = int(os.environ.get("RANK", 0))
        self.replica_rank = rank // rollout_world_size if replica_rank == -1 else replica_rank
        self.is_leader_rank = rank % rollout_world_size == 0
        self._server = None

    @property
    def server(self):
        if self._server is None:  # the server starts after the trainer workers, so look it up lazily
            self._server = ray.get_actor(server_actor_name(self.replica_rank))
        return self._server

    async def resume(self, tags: list[str]):
        if self.config.free_cache_engine and self.is_leader_rank:
            await self.server.wake_up.remote(tags=tags)

    async def release(self):
        if self.config.free_cache_engine and self.is_leader_rank:
            await self.server.sleep.remote()

    @torch.no_grad()
    async def update_weights(
        self,
        weights: Generator[tuple[str, torch.Tensor], None, None],
        global_steps: int = None,
        wire_format: str = "named_tensors",
        **kwargs,
    ):
        if wire_format != "named_tensors":
            raise ValueError(f"hf rollout supports checkpoint_engine wire_format 'named_tensors', got {wire_format!r}")
        # Every rank must drain the generator: FSDP gathers each full tensor collectively. A checkpoint engine's
        # receiver (verl's separate_async) hands an async generator.
        named = [(name, tensor.detach().to("cpu", copy=True)) async for name, tensor in ensure_async_iterator(weights)]
        if self.is_leader_rank:
            await self.server.update_weights.remote(named, global_steps=global_steps)
