"""Partial rollout with the ``hf`` server, as verl's async trainers drive it: a wave stopped by ``abort_all_requests``
returns each unfinished request with its tokens so far, requests behind the closed gate wait, new weights load while
nothing generates, and verl's resuming client (kept by the CPU agent-loop worker, recording each token's weights
version) finishes every request after ``resume_generation``. Each token's log-prob is that of the weights it was
sampled with: the tokens before the abort under the old weights, those after it under the new, as the trainer
recomputes them (teacher forcing)."""

from __future__ import annotations

import asyncio
import threading

import pytest
import torch

ray = pytest.importorskip("ray")

STOP_BEFORE_TOKEN = 5  # the abort lands after 5 tokens of the first wave
MAX_TOKENS = 12


def stepped_server_class():
    """Defined here, so that Ray ships the classes to its worker by value (a test module is not importable there)."""
    from entropy_verl.rollout.hf.server import HFRolloutServer

    class StopAfterTokens(threading.Event):
        """The server's stop flag, read by the engine before each token; before token ``at`` it waits (30 s at most)
        until ``abort_all_requests`` sets it, so the abort lands after exactly ``at`` tokens, whatever the speed."""

        def __init__(self, at: int):
            super().__init__()
            self.at, self.checks, self.reached = at, 0, threading.Event()

        def is_set(self) -> bool:
            self.checks += 1
            if self.checks == self.at + 1:
                self.reached.set()
                self.wait(timeout=30)
            return super().is_set()

    class SteppedServer(HFRolloutServer):
        """The real server, its stop flag replaced by ``StopAfterTokens``."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._stop_wave = StopAfterTokens(STOP_BEFORE_TOKEN)

        async def reached_stop_point(self) -> bool:
            return await asyncio.to_thread(self._stop_wave.reached.wait, 30)

        def weights(self) -> dict:
            return {k: v.clone() for k, v in self.engine.model.state_dict().items()}

    return SteppedServer


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A local Ray, the tiny embedded architecture saved to disk, and its rollout/model configs."""
    from omegaconf import OmegaConf

    from entropy_verl.embedded.model import make_model
    from entropy_verl.embedded.tokenizer import build_tokenizer
    from entropy_verl.main import compose_run, keep_ray_on_loopback

    path = str(tmp_path_factory.mktemp("model"))
    tokenizer = build_tokenizer(path)
    make_model(tokenizer, seed=0).save_pretrained(path)
    config = compose_run([f"actor_rollout_ref.model.path={path}", "actor_rollout_ref.rollout.name=hf"])
    OmegaConf.resolve(config)
    keep_ray_on_loopback()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield config
    ray.shutdown()


def teacher_forced(weights: dict, config, prompt: list[int], response: list[int]) -> torch.Tensor:
    """log p(response | prompt) per token under ``weights``, as the trainer recomputes it (temperature 1)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(config.actor_rollout_ref.model.path, torch_dtype=torch.float32)
    model.load_state_dict(weights)
    ids = torch.tensor([prompt + response])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(response)[:, None]).squeeze(-1)


def test_an_aborted_wave_resumes_on_the_new_weights_and_each_token_has_its_own_weights_log_prob(served):
    from verl.workers.rollout.llm_server import FullyAsyncLLMServerClient
    from verl.workers.rollout.router import get_router_handle

    from entropy_verl.rollout.hf.client import TOKEN_VERSIONS, HFBatchingClient, VersionRecordingClient

    config = served
    server = (
        ray.remote(stepped_server_class())
        .options(max_concurrency=64)
        .remote(config=config.actor_rollout_ref.rollout, model_config=config.actor_rollout_ref.model)
    )
    ray.get(server.set_global_steps.remote(0))
    old = ray.get(server.weights.remote())
    verl_client = FullyAsyncLLMServerClient(config, load_balancer_handle=get_router_handle({"hf_server_0": server}))
    client = HFBatchingClient.replacing(verl_client)  # what the CPU agent-loop worker does
    assert isinstance(client, VersionRecordingClient) and client._load_balancer is verl_client._load_balancer
    prompts = [[6, 18, 10, 18, 8, 17, 4, 9, 16], [7, 18, 9, 18, 12, 17, 5, 16], [3, 18, 3, 18, 3, 17, 9, 16]]
    params = {"temperature": 1.0, "max_tokens": MAX_TOKENS, "ignore_eos": True}
    torch.manual_seed(0)
    new = {k: v + 0.3 * torch.randn_like(v) if v.dim() == 2 else v for k, v in old.items()}

    async def trainer_step():
        """What verl's colocate_async trainer does between two steps: abort (on_sample_end), new weights and
        resume (on_step_end), while the agent loop's requests are in flight."""
        requests = [client.generate(f"r{i}", prompt_ids=p, sampling_params=dict(params)) for i, p in enumerate(prompts)]
        running = asyncio.gather(*requests)
        assert await server.reached_stop_point.remote()
        aborted = await server.abort_all_requests.remote()
        # behind the closed gate a rejecting server answers at once; a parking one holds the request
        rejected = await server.abort_all_requests.remote(reject_request=True)
        refused = await server.generate.remote(prompt_ids=prompts[0], sampling_params=params, request_id="late")
        await server.abort_all_requests.remote()  # back to parking, as verl's weight sync does
        await server.update_weights.remote(list(new.items()), global_steps=1)
        await server.resume_generation.remote()
        return aborted, rejected, refused, await running

    aborted, rejected, refused, outputs = asyncio.run(trainer_step())
    assert aborted["aborted_count"] == len(prompts) and rejected["aborted_count"] == 0
    assert refused.stop_reason == "aborted" and refused.token_ids == []
    for prompt, output in zip(prompts, outputs, strict=True):
        assert len(output.token_ids) == MAX_TOKENS == len(output.log_probs)
        # the trajectory spans two weight versions, as verl's staleness metrics read it
        assert (output.extra_fields["min_global_steps"], output.extra_fields["max_global_steps"]) == (0, 1)
        cut = STOP_BEFORE_TOKEN
        # and token by token, as the trainer splits the rollout/pi_old log-prob gap by weights
        assert output.extra_fields[TOKEN_VERSIONS] == [0] * cut + [1] * (MAX_TOKENS - cut)
        before = teacher_forced(old, config, prompt, output.token_ids[:cut])
        after = teacher_forced(new, config, prompt + output.token_ids[:cut], output.token_ids[cut:])
        assert torch.allclose(torch.tensor(output.log_probs[:cut]), before, atol=1e-4)
        assert torch.allclose(torch.tensor(output.log_probs[cut:]), after, atol=1e-4)
        # and not those of the other weights: the test can tell them apart
        assert not torch.allclose(
            torch.tensor(output.log_probs[cut:]),
            teacher_forced(old, config, prompt + output.token_ids[:cut], output.token_ids[cut:]),
            atol=1e-4,
        )
