"""``HFRolloutServer``: the Ray actor that serves verl's token-in/token-out ``generate`` calls.

verl's agent loop sends one ``generate`` call per sample, all concurrently. The server parks them in a queue and a
single batcher task runs them through ``HFGenerationEngine`` in waves, so one forward pass serves many requests.
The model runs on CUDA when the server's process sees a GPU, else on the CPU.

Partial rollout (verl's async trainers): ``abort_all_requests`` closes the admission gate, stops the running wave
before its next token (its unfinished requests return "aborted" with their tokens so far) and waits until the engine
is idle; queued requests keep their place and start on the new weights, and requests arriving behind the closed gate
wait for ``resume_generation`` (or, with ``reject_request``, return "aborted" at once). verl's resuming client
(``FullyAsyncLLMServerClient``) sends an aborted request again as prompt + tokens so far. Weights are never loaded
while a wave runs, and each output carries the weights version (``global_steps``) its wave was sampled with.
Returning queued requests "aborted" too starved them: verl's client resends an aborted request after 1 s, behind the
next step's batch, and the next pause found it queued again (a colocate_async run trained none of them).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import torch
from verl.workers.rollout.replica import TokenOutput

from .engine import GenerationResult, HFGenerationEngine, SamplingParams

# Drill for tests: seconds the server waits before each token. On this machine generation is far faster than a
# training step, so the trainer's pause rarely finds a wave running; slowed down, it does (partial rollout). Unset
# in any real run.
TOKEN_DELAY_DRILL_ENV = "ENTROPY_VERL_HF_DRILL_TOKEN_DELAY_S"


class HFRolloutServer:
    def __init__(self, config, model_config, replica_rank: int = 0):
        from transformers import AutoModelForCausalLM
        from verl.utils.config import omega_conf_to_dataclass
        from verl.workers.config import HFModelConfig

        config = omega_conf_to_dataclass(config)
        model_config = omega_conf_to_dataclass(model_config, dataclass_type=HFModelConfig)
        self.config = config
        self.replica_rank = replica_rank
        self.global_steps: int | None = None
        self.weights_version = 0
        self.max_batch = int(getattr(config, "max_num_seqs", 256) or 256)
        engine_kwargs = dict((getattr(config, "engine_kwargs", None) or {}).get("hf", None) or {})
        num_threads = int(engine_kwargs.get("num_threads", 0) or os.cpu_count() or 1)
        torch.set_num_threads(num_threads)

        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.float32 if device == "cpu" else getattr(torch, str(config.dtype))
        model = AutoModelForCausalLM.from_pretrained(
            model_config.local_path,
            torch_dtype=dtype,
            attn_implementation="sdpa",
            trust_remote_code=model_config.trust_remote_code,
        ).to(device)
        tokenizer = model_config.tokenizer
        eos = _as_list(model.generation_config.eos_token_id) + _as_list(getattr(tokenizer, "eos_token_id", None))
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
        self.max_model_len = int(config.max_model_len or (config.prompt_length + config.response_length))
        self.engine = HFGenerationEngine(
            model=model, eos_token_ids=tuple(dict.fromkeys(eos)), pad_token_id=pad, seed=int(config.seed) + replica_rank
        )
        self._queue: asyncio.Queue = None
        self._batcher: asyncio.Task | None = None  # held so the batcher task is not garbage-collected
        self._engine_idle = asyncio.Lock()  # held while a wave runs or weights load: the two never overlap
        self._admitting = asyncio.Event()  # the admission gate: cleared by abort_all_requests, set by resume
        self._admitting.set()
        self._rejecting = False  # a closed gate answers "aborted" at once instead of parking requests
        self._stop_wave = threading.Event()  # read by the engine's thread before each token
        self._token_delay_s = float(os.environ.get(TOKEN_DELAY_DRILL_ENV, 0) or 0)
        self._cut: list[int] = []  # since the last pause: the tokens each request a stopped wave returned had

    # ---- generation -------------------------------------------------------------------------------------------

    async def generate(
        self, prompt_ids: list[int], sampling_params: dict[str, Any], request_id: str, **unused: Any
    ) -> TokenOutput:
        if unused.get("image_data") or unused.get("video_data") or unused.get("audio_data"):
            raise NotImplementedError("hf rollout serves text-only models")
        return await self._queued(prompt_ids, sampling_params)

    async def generate_batch(self, requests: list[dict[str, Any]]) -> list[TokenOutput]:
        """Several ``generate`` calls in one Ray call (``prompt_ids`` and ``sampling_params`` each): what
        ``HFBatchingClient`` sends, saving a Ray round trip per sample."""
        return list(await asyncio.gather(*(self._queued(r["prompt_ids"], r["sampling_params"]) for r in requests)))

    async def _queued(self, prompt_ids: list[int], sampling_params: dict[str, Any]) -> TokenOutput:
        params = self._sampling_params(list(prompt_ids), dict(sampling_params))
        while not self._admitting.is_set():  # generation paused (a weight sync): park, or refuse
            if self._rejecting:
                return self._output(GenerationResult([], [], "aborted"), self._versions())
            await self._admitting.wait()
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._batcher = asyncio.get_running_loop().create_task(self._run_batches())
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((list(prompt_ids), params, future))
        result, versions = await future
        return self._output(result, versions)

    def _should_stop(self) -> bool:
        """Read by the engine's thread before each token."""
        if self._token_delay_s > 0:
            time.sleep(self._token_delay_s)
        return self._stop_wave.is_set()

    def _versions(self) -> dict[str, int | None]:
        """The weights now loaded: verl's step number and this server's count of loads."""
        return {"global_steps": self.global_steps, "weights_version": self.weights_version}

    @staticmethod
    def _output(result: GenerationResult, versions: dict[str, int | None]) -> TokenOutput:
        return TokenOutput(
            token_ids=result.token_ids,
            log_probs=result.log_probs,
            stop_reason="aborted" if result.finish_reason == "aborted" else "completed",
            extra_fields=dict(versions),
        )

    def _sampling_params(self, prompt_ids: list[int], sp: dict[str, Any]) -> SamplingParams:
        room = self.max_model_len - len(prompt_ids)
        if room < 1:
            raise ValueError(
                f"prompt of {len(prompt_ids)} tokens leaves no room within max_model_len={self.max_model_len}"
            )
        max_tokens = sp.get("max_tokens", sp.get("max_new_tokens", self.config.response_length))
        return SamplingParams(
            max_tokens=max(1, min(int(max_tokens), int(self.config.response_length), room)),
            temperature=float(sp.get("temperature", 1.0)),
            top_k=int(sp.get("top_k", -1) if sp.get("top_k") is not None else -1),
            top_p=float(sp.get("top_p", 1.0) if sp.get("top_p") is not None else 1.0),
            ignore_eos=bool(sp.get("ignore_eos", False)),
        )

    async def _run_batches(self):
        while True:
            first = await self._queue.get()
            await asyncio.sleep(0.005)  # let the rest of a wave of concurrent requests arrive
            while True:
                await self._admitting.wait()  # paused: queued requests wait for the new weights
                async with self._engine_idle:
                    if not self._admitting.is_set():
                        continue  # paused while this wave waited for the engine
                    await self._run_wave(first)
                    break

    async def _run_wave(self, first) -> None:
        wave = [first]
        while not self._queue.empty() and len(wave) < self.max_batch:
            wave.append(self._queue.get_nowait())
        versions = self._versions()  # the weights this wave samples with
        try:
            results = await asyncio.to_thread(
                self.engine.generate, [w[0] for w in wave], [w[1] for w in wave], self._should_stop
            )
        except Exception as exc:  # surface the failure to every waiting caller
            for _, _, future in wave:
                if not future.done():
                    future.set_exception(exc)
            return
        self._cut += [len(result.token_ids) for result in results if result.finish_reason == "aborted"]
        for (_, _, future), result in zip(wave, results, strict=True):
            if not future.done():
                future.set_result((result, versions))

    # ---- weights ----------------------------------------------------------------------------------------------

    async def update_weights(self, named_tensors: list[tuple[str, torch.Tensor]], global_steps: int | None = None):
        async with self._engine_idle:  # never under a running wave
            loaded = await asyncio.to_thread(self.engine.load_weights, named_tensors)
            self.weights_version += 1
            if global_steps is not None:
                self.global_steps = global_steps
        return loaded

    async def set_global_steps(self, global_steps: int):
        self.global_steps = global_steps

    # ---- verl's replica control surface: memory and scheduling are trivial here ------------------------------

    async def wake_up(self, tags: list[str] | None = None):
        if torch.cuda.is_available():
            self.engine.model.to("cuda")

    async def sleep(self):
        # On a GPU shared with the FSDP trainer, give the memory back between rollouts.
        if torch.cuda.is_available():
            self.engine.model.to("cpu")
            torch.cuda.empty_cache()

    async def clear_kv_cache(self):
        return None  # the KV cache lives only inside one generate wave

    async def release_kv_cache(self):
        return None

    async def resume_kv_cache(self):
        return None

    async def abort_all_requests(self, reject_request: bool = False) -> dict[str, Any]:
        """Pause generation: close the gate, stop the running wave before its next token, and wait until the engine
        is idle. Its unfinished requests return "aborted" (their callers resume them after ``resume_generation``);
        queued requests that have not started wait, and start on the new weights."""
        self._admitting.clear()
        self._rejecting = reject_request
        self._stop_wave.set()
        async with self._engine_idle:  # the running wave has returned what it had
            cut, self._cut = self._cut, []
        running, partial, tokens = len(cut), sum(n > 0 for n in cut), sum(cut)
        queued = self._queue.qsize() if self._queue is not None else 0
        print(
            f"[hf rollout] generation paused: {running} request(s) stopped in a running wave, {partial} of them "
            f"partial ({tokens} tokens kept, resumed on the next weights); {queued} queued request(s) wait",
            flush=True,
        )
        return {"aborted_count": running, "request_ids": []}

    async def resume_generation(self):
        self._stop_wave.clear()
        self._rejecting = False
        self._admitting.set()

    async def start_profile(self, **kwargs):
        return None

    async def stop_profile(self):
        return None


def _as_list(value) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]
