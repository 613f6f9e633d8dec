"""``HFReplica``: verl's ``RolloutReplica`` for the ``hf`` backend: one server actor per replica, on the node
of the replica's first trainer worker (hybrid mode) or on its own resource pool (standalone)."""

from __future__ import annotations

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from verl.workers.rollout.replica import RolloutReplica

from . import ROLLOUT_NAME
from .server import HFRolloutServer


def server_actor_name(replica_rank: int) -> str:
    return f"{ROLLOUT_NAME}_server_{replica_rank}"


class HFReplica(RolloutReplica):
    async def launch_servers(self):
        if self.nnodes != 1:
            raise ValueError(
                f"actor_rollout_ref.rollout: the hf backend serves a replica from one node, but "
                f"tensor_model_parallel_size={self.config.tensor_model_parallel_size} spans {self.nnodes} nodes"
            )
        options = dict(name=server_actor_name(self.replica_rank), max_concurrency=self.max_concurrency, num_cpus=0)
        if self.workers:
            node_id = await self.workers[0].__ray_call__.remote(lambda worker: ray.get_runtime_context().get_node_id())
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
        server = (
            ray.remote(HFRolloutServer)
            .options(**options)
            .remote(config=self.config, model_config=self.model_config, replica_rank=self.replica_rank)
        )
        self.servers = [server]
        self._server_handle = server
        # verl's router keys servers by address; the hf server has no HTTP endpoint, so the address is its name.
        self._server_address = server_actor_name(self.replica_rank)
