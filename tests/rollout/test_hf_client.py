"""``HFBatchingClient`` against verl's own load balancer in a local Ray: concurrent generate calls reach a single
server as one Ray call, each caller gets its own output, errors reach every caller, and with several servers the
client leaves the routing to verl. The server here is a stand-in recording what it receives (the real one is
exercised by every e2e run)."""

from __future__ import annotations

import asyncio

import pytest

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    from entropy_verl.main import keep_ray_on_loopback

    keep_ray_on_loopback()  # listen on 127.0.0.1 only
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@ray.remote
class RecordingServer:
    """Answers each request with its prompt reversed; records the calls."""

    def __init__(self, fail: bool = False):
        self.calls: list[tuple[str, int]] = []
        self.fail = fail

    def _answer(self, prompt_ids):
        from verl.workers.rollout.replica import TokenOutput

        return TokenOutput(token_ids=list(reversed(prompt_ids)), extra_fields={"global_steps": 7})

    async def generate(self, prompt_ids, sampling_params, request_id, **unused):
        self.calls.append(("generate", 1))
        return self._answer(prompt_ids)

    async def generate_batch(self, requests):
        self.calls.append(("generate_batch", len(requests)))
        if self.fail:
            raise RuntimeError("engine failed")
        return [self._answer(r["prompt_ids"]) for r in requests]

    def recorded(self):
        return self.calls


def make_client(servers: dict):
    from omegaconf import OmegaConf
    from verl.workers.rollout.router import get_router_handle

    from entropy_verl.rollout.hf.client import HFBatchingClient

    config = OmegaConf.create({"actor_rollout_ref": {"rollout": {"name": "hf"}}})
    return HFBatchingClient(config=config, load_balancer_handle=get_router_handle(servers=servers))


async def generate_all(client, prompts):
    return await asyncio.gather(
        *(client.generate(f"req{i}", prompt_ids=p, sampling_params={"temperature": 1.0}) for i, p in enumerate(prompts))
    )


def test_concurrent_calls_reach_one_server_as_one_call_and_each_caller_gets_its_output(local_ray):
    server = RecordingServer.remote()
    client = make_client({"hf_server_0": server})
    prompts = [[i, i + 1, i + 2] for i in range(8)]
    outputs = asyncio.run(generate_all(client, prompts))
    assert [o.token_ids for o in outputs] == [list(reversed(p)) for p in prompts]
    assert all(o.extra_fields["min_global_steps"] == o.extra_fields["max_global_steps"] == 7 for o in outputs)
    assert ray.get(server.recorded.remote()) == [("generate_batch", 8)]


def test_a_failed_batch_fails_every_caller(local_ray):
    client = make_client({"hf_server_0": RecordingServer.remote(fail=True)})

    async def gather_errors():
        calls = [client.generate(f"r{i}", prompt_ids=[i], sampling_params={}) for i in range(3)]
        return await asyncio.gather(*calls, return_exceptions=True)

    errors = asyncio.run(gather_errors())
    assert len(errors) == 3 and all("engine failed" in str(e) for e in errors)


def test_with_several_servers_verl_routes_each_call(local_ray):
    servers = {f"hf_server_{i}": RecordingServer.remote() for i in range(2)}
    client = make_client(servers)
    outputs = asyncio.run(generate_all(client, [[1, 2], [3, 4], [5, 6], [7, 8]]))
    assert [o.token_ids for o in outputs] == [[2, 1], [4, 3], [6, 5], [8, 7]]
    calls = [c for s in servers.values() for c in ray.get(s.recorded.remote())]
    assert calls == [("generate", 1)] * 4
