"""The ``ray_store`` checkpoint engine through verl's registry, as verl's CheckpointEngineManager drives it: topology,
process group, rank 0 sends while the other trainer ranks drain, every rollout worker receives each set once, and
what it receives is a copy (the trainer's parameters change under it afterwards)."""

from __future__ import annotations

import asyncio

import pytest
import torch

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    from entropy_verl.main import keep_ray_on_loopback

    keep_ray_on_loopback()
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_rank_0_sends_each_set_once_and_every_rollout_worker_receives_a_copy(local_ray):
    from verl.checkpoint_engine.base import CheckpointEngineRegistry

    from entropy_verl.rollout import checkpoint_engine

    engine_cls = CheckpointEngineRegistry.get(checkpoint_engine.BACKEND)
    assert engine_cls is checkpoint_engine.RayStoreCheckpointEngine
    trainer = [CheckpointEngineRegistry.new("ray_store", bucket_size=1 << 20, is_master=r == 0) for r in range(2)]
    rollout = [CheckpointEngineRegistry.new("ray_store", bucket_size=1 << 20) for _ in range(3)]
    metadata = [engine.prepare() for engine in trainer + rollout]
    actor_kwargs, rollout_kwargs = engine_cls.build_topology(2, 3, metadata)
    assert actor_kwargs == {"rank": [0, -1]} and rollout_kwargs == {"rank": [1, 2, 3]}
    for engine, rank in zip(trainer + rollout, actor_kwargs["rank"] + rollout_kwargs["rank"], strict=True):
        engine.init_process_group(rank=rank)

    params = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(3)}
    drained = []

    def weights(who):
        for name, tensor in params.items():
            drained.append(who)
            yield name, tensor  # the live parameter, as FSDP's full-tensor generator yields on CPU

    async def receive(engine):
        return [(name, tensor) async for name, tensor in engine.receive_weights()]

    async def one_sync():
        sends = [engine.send_weights(weights(rank)) for rank, engine in enumerate(trainer)]
        results = await asyncio.gather(*sends, *(receive(engine) for engine in rollout))
        return results[len(trainer) :]

    for step in range(2):
        expected = {name: tensor.clone() for name, tensor in params.items()}
        received = asyncio.run(one_sync())
        params["w"].add_(100.0)  # the optimizer's step, after the sync: no rollout copy may change
        params["b"].mul_(-1.0)
        for got in received:
            assert [name for name, _ in got] == ["w", "b"]
            for name, tensor in got:
                assert torch.equal(tensor, expected[name]), (step, name)
        assert drained.count(0) == drained.count(1) == 2 * (step + 1)  # every trainer rank drained its generator
