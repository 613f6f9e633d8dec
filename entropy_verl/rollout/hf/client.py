"""``HFBatchingClient``: verl's LLM-server client, sending the generate calls of one event-loop turn to the ``hf``
server as one Ray call.

verl's client makes three Ray calls per sample (ask the load balancer for a server, generate, release the server):
on the embedded default that is 768 calls a step for 256 samples of ~6 tokens, more CPU than the generation. With
one rollout server there is nothing to balance, so this client asks the load balancer once, keeps the server's
handle, and queues each ``generate`` call; the calls queued in one turn of the agent-loop worker's event loop (a
prompt's n samples at least, since verl starts them together) go to ``HFRolloutServer.generate_batch`` together.
The server batches requests into waves either way, so what is sampled does not change, only how it is delivered.

Where verl's trainer resumes aborted requests (its async trainers use ``FullyAsyncLLMServerClient``: partial
rollout), verl's client is kept: one Ray call would return a whole turn's requests together, so none of them could
finish (and be trained) before the slowest, and the requests still running when the trainer pauses generation
would never be the partial ones. It is kept as ``VersionRecordingClient``: verl's resuming client, which also records
the weights version of every token (``extra_fields["token_global_steps"]``); verl keeps only a trajectory's first and
last version, and the trainer needs each token's to check the log-probs of a resumed trajectory against pi_old.

Used by the CPU agent-loop worker (``entropy_verl.rollout.agent_loop``) when ``rollout.name=hf``; other backends
and GPU runs keep verl's client.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import Any

import ray
from verl.workers.rollout.llm_server import FullyAsyncLLMServerClient, LLMServerClient
from verl.workers.rollout.replica import TokenOutput

from entropy_verl.rollout.turn_batch import TurnBatch

TOKEN_VERSIONS = "token_global_steps"  # extra_fields key: the weights version (global_steps) of each generated token

# (tokens, weights version) of each attempt of the request the current asyncio task is generating: verl's resuming
# client calls the base client once per attempt, in the same task
_ATTEMPTS: ContextVar[list[tuple[int, int | None]] | None] = ContextVar("entropy_verl_hf_attempts", default=None)


class _AttemptRecorder(LLMServerClient):
    """Placed between verl's resuming client and its base client (see ``VersionRecordingClient``'s bases): sees each
    attempt's output, before verl merges them."""

    async def generate(self, request_id, **kwargs: Any) -> TokenOutput:
        output = await super().generate(request_id, **kwargs)
        if (attempts := _ATTEMPTS.get()) is not None:
            attempts.append((len(output.token_ids), output.extra_fields.get("global_steps")))
        return output


class VersionRecordingClient(FullyAsyncLLMServerClient, _AttemptRecorder):
    """verl's ``FullyAsyncLLMServerClient`` (resumes aborted requests on the new weights) unchanged, and the weights
    version of each token it returns, in ``extra_fields[TOKEN_VERSIONS]`` (verl stores extra_fields with the sample)."""

    async def generate(self, request_id, **kwargs: Any) -> TokenOutput:
        attempts: list[tuple[int, int | None]] = []
        token = _ATTEMPTS.set(attempts)
        try:
            output = await super().generate(request_id, **kwargs)
        finally:
            _ATTEMPTS.reset(token)
        versions = [version for count, version in attempts for _ in range(count)]
        output.extra_fields[TOKEN_VERSIONS] = versions[: len(output.token_ids)]
        return output


class HFBatchingClient(LLMServerClient):
    def __init__(self, config, load_balancer_handle=None, **kwargs):
        super().__init__(config=config, load_balancer_handle=load_balancer_handle, **kwargs)
        self._server_lookup: asyncio.Task | None = None  # asks the load balancer once, shared by concurrent calls
        self._batch: TurnBatch | None = None  # the generate calls of the current event-loop turn

    @classmethod
    def replacing(cls, client: LLMServerClient) -> LLMServerClient:
        """This client in place of verl's ``client``, with the same config, load balancer and tokenizer; verl's
        resuming client (partial rollout) is kept, recording each token's weights version."""
        if isinstance(client, FullyAsyncLLMServerClient):
            replacement = VersionRecordingClient(
                config=client.config, load_balancer_handle=client._load_balancer, only_hybrid=client._only_hybrid
            )
        else:
            replacement = cls(config=client.config, load_balancer_handle=client._load_balancer)
        if hasattr(client, "tokenizer"):
            replacement.tokenizer = client.tokenizer
        return replacement

    async def _only_server(self) -> ray.actor.ActorHandle | None:
        """The server's handle if the load balancer has exactly one, else None (then verl's path balances)."""
        if self._server_lookup is None:
            self._server_lookup = asyncio.ensure_future(self._look_up_server())
        return await self._server_lookup

    async def _look_up_server(self) -> ray.actor.ActorHandle | None:
        if len(await self._load_balancer.get_all_servers.remote()) != 1:
            return None
        server_id, server = await self._acquire_server(request_id="hf-batching-client")
        self._release_server(server_id, request_id="hf-batching-client")
        return server

    async def generate(
        self,
        request_id,
        *,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        image_data=None,
        video_data=None,
        audio_data=None,
        mm_processor_kwargs=None,
        **kwargs: Any,
    ) -> TokenOutput:
        server = await self._only_server()
        if server is None or image_data is not None or video_data is not None or audio_data is not None:
            return await super().generate(
                request_id,
                prompt_ids=prompt_ids,
                sampling_params=sampling_params,
                image_data=image_data,
                video_data=video_data,
                audio_data=audio_data,
                mm_processor_kwargs=mm_processor_kwargs,
                **kwargs,
            )
        if self._batch is None:
            self._batch = TurnBatch(lambda requests: server.generate_batch.remote(requests))
        output: TokenOutput = await self._batch.add(
            {"prompt_ids": list(prompt_ids), "sampling_params": dict(sampling_params)}
        )
        # what verl's client records on each output: the weights version the tokens came from
        global_steps = output.extra_fields.get("global_steps")
        output.extra_fields.setdefault("min_global_steps", global_steps)
        output.extra_fields.setdefault("max_global_steps", global_steps)
        return output
