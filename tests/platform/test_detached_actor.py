"""π_old on CPU: verl's FSDP2 sharded save returns the live parameters on CPU (so the "old" policy follows every
optimizer step); the save of ``CPUSafeDetachActorWorker`` owns its memory and stays the policy it saved."""

from __future__ import annotations

import socket

import pytest
import torch


@pytest.fixture
def fsdp2_model():
    """A two-layer model sharded with FSDP2 in a one-process gloo group on 127.0.0.1."""
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group(backend="gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
        for layer in model:
            fully_shard(layer)
        fully_shard(model)
        yield model
    finally:
        dist.destroy_process_group()


def optimizer_step(model):
    with torch.no_grad():
        for param in model.parameters():
            param.add_(1.0)


def saved_values(saved) -> dict[str, torch.Tensor]:
    state, _spec = saved
    return {name: tensor.clone() for name, (tensor, _) in state.items()}


def test_verls_save_aliases_the_live_policy_on_cpu_and_the_copying_save_does_not(fsdp2_model):
    from verl.utils.fsdp_utils import fsdp2_sharded_save_to_cpu

    from entropy_verl.platform.cpu.detached_actor import copying_save

    verls = fsdp2_sharded_save_to_cpu(fsdp2_model)
    ours = copying_save(fsdp2_sharded_save_to_cpu)(fsdp2_model)
    at_save = saved_values(ours)
    optimizer_step(fsdp2_model)
    # verl's "saved" pi_old moved with the step (the bug, on CPU; on a GPU .cpu() copies)
    assert all(not torch.equal(verls[0][name][0], value) for name, value in at_save.items())
    # ours is still the policy it saved, and has verl's structure (specs kept) for verl's restore
    assert all(torch.equal(ours[0][name][0], value) for name, value in at_save.items())
    assert ours[1] is verls[1] and {name: spec for name, (_, spec) in ours[0].items()} == {
        name: spec for name, (_, spec) in verls[0].items()
    }


def test_the_worker_wraps_verls_handler_once(monkeypatch):
    from entropy_verl.platform.cpu.detached_actor import CPUSafeDetachActorWorker

    worker = object.__new__(CPUSafeDetachActorWorker)  # the handler selection only, no Ray worker
    worker._strategy_handlers = None
    worker.config = type("Config", (), {"actor": type("Actor", (), {"strategy": "fsdp2"})()})()
    save, restore = worker._get_strategy_handlers()
    assert worker._get_strategy_handlers() == (save, restore)  # wrapped once, not again on every call
    assert save.__wrapped_by_entropy_verl__
