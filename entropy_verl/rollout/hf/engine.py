"""Batched autoregressive sampling with a KV cache, per-request temperature / top-k / top-p.

Returned log-probs are those of the sampled tokens under the *temperature-scaled* full distribution,
``log_softmax(logits / T)``, which is what verl's actor recomputes as ``old_log_prob`` at the rollout temperature.
Top-k/top-p only restrict which tokens may be drawn. With ``T == 0`` decoding is greedy and log-probs are at T=1.

``generate`` stops a wave early when ``should_stop`` turns true (checked before each token): the unfinished rows end
"aborted" with what they generated so far, which verl's resuming client sends again as prompt + partial response
once generation resumes (partial rollout, verl's colocate_async and separate_async trainers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_k: int = -1
    top_p: float = 1.0
    ignore_eos: bool = False


@dataclass
class GenerationResult:
    token_ids: list[int]
    log_probs: list[float]
    finish_reason: str  # "stop" (EOS), "length" or "aborted" (the wave was stopped; resumable)


@dataclass
class HFGenerationEngine:
    """Owns a causal LM and samples from it in left-padded batches."""

    model: torch.nn.Module
    eos_token_ids: tuple[int, ...]
    pad_token_id: int
    seed: int = 0
    _generator: torch.Generator | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        self.model.eval()
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(self.seed)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def load_weights(self, named_tensors) -> int:
        """Copy ``(name, tensor)`` pairs into the model; tied weights may be absent. Returns #tensors loaded."""
        params = self.model.state_dict(keep_vars=True)  # includes tied aliases such as lm_head.weight
        loaded = 0
        for name, tensor in named_tensors:
            if name not in params:
                raise KeyError(f"hf rollout: weight {name!r} does not exist in the rollout model")
            target = params[name]
            if tuple(target.shape) != tuple(tensor.shape):
                raise ValueError(
                    f"hf rollout: weight {name!r} has shape {tuple(tensor.shape)}, expected {tuple(target.shape)}"
                )
            target.copy_(tensor.to(device=target.device, dtype=target.dtype))
            loaded += 1
        return loaded

    @torch.no_grad()
    def generate(
        self, prompts: list[list[int]], params: list[SamplingParams], should_stop: Callable[[], bool] | None = None
    ) -> list[GenerationResult]:
        assert len(prompts) == len(params) and prompts, "one SamplingParams per prompt"
        device = self.device
        batch = len(prompts)
        width = max(len(p) for p in prompts)
        input_ids = torch.full((batch, width), self.pad_token_id, dtype=torch.long, device=device)
        attention = torch.zeros((batch, width), dtype=torch.long, device=device)
        for i, prompt in enumerate(prompts):  # left padding keeps every row's next token in the last column
            input_ids[i, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long, device=device)
            attention[i, width - len(prompt) :] = 1
        positions = (attention.cumsum(-1) - 1).clamp(min=0)

        temperature = torch.tensor([p.temperature for p in params], dtype=torch.float32, device=device)
        top_k = torch.tensor([p.top_k for p in params], dtype=torch.long, device=device)
        top_p = torch.tensor([p.top_p for p in params], dtype=torch.float32, device=device)
        max_tokens = torch.tensor([p.max_tokens for p in params], dtype=torch.long, device=device)
        stops_on_eos = torch.tensor([not p.ignore_eos for p in params], dtype=torch.bool, device=device)
        eos = torch.tensor(self.eos_token_ids, dtype=torch.long, device=device)

        tokens = torch.full((batch, int(max_tokens.max())), self.pad_token_id, dtype=torch.long, device=device)
        logps = torch.zeros(tokens.shape, dtype=torch.float32, device=device)
        lengths = torch.zeros(batch, dtype=torch.long, device=device)
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        hit_eos = torch.zeros(batch, dtype=torch.bool, device=device)
        aborted = torch.zeros(batch, dtype=torch.bool, device=device)

        out = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions, use_cache=True)
        past = out.past_key_values
        logits = out.logits[:, -1, :].float()
        for step in range(tokens.shape[1]):
            if should_stop is not None and should_stop():
                aborted = ~done
                break
            token, logp = self._sample(logits, temperature, top_k, top_p)
            active = ~done
            tokens[active, step] = token[active]
            logps[active, step] = logp[active]
            lengths += active.long()
            is_eos = torch.isin(token, eos) & stops_on_eos & active
            hit_eos |= is_eos
            done |= is_eos | (lengths >= max_tokens)
            if bool(done.all()):
                break
            attention = torch.cat([attention, active.long()[:, None]], dim=1)
            positions = positions[:, -1:] + 1
            out = self.model(
                input_ids=token[:, None],
                attention_mask=attention,
                position_ids=positions,
                past_key_values=past,
                use_cache=True,
            )
            past = out.past_key_values
            logits = out.logits[:, -1, :].float()

        results = []
        for i in range(batch):
            n = int(lengths[i])
            results.append(
                GenerationResult(
                    token_ids=tokens[i, :n].tolist(),
                    log_probs=logps[i, :n].tolist(),
                    finish_reason="aborted" if bool(aborted[i]) else "stop" if bool(hit_eos[i]) else "length",
                )
            )
        return results

    def _sample(self, logits, temperature, top_k, top_p):
        greedy = temperature <= 0
        scaled = logits / torch.where(greedy, torch.ones_like(temperature), temperature)[:, None]
        logprobs = torch.log_softmax(scaled, dim=-1)

        # Restrict the support per row: rank < top_k and cumulative mass before the token < top_p.
        sorted_logp, order = logprobs.sort(dim=-1, descending=True)
        ranks = torch.arange(logits.shape[-1], device=logits.device)[None, :]
        k = torch.where(top_k > 0, top_k, torch.full_like(top_k, logits.shape[-1]))
        mass_before = sorted_logp.exp().cumsum(-1) - sorted_logp.exp()
        keep_sorted = (ranks < k[:, None]) & (mass_before < top_p[:, None])
        keep_sorted[:, 0] = True
        keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
        probs = torch.where(keep, logprobs.exp(), torch.zeros_like(logprobs))

        sampled = torch.multinomial(probs, 1, generator=self._generator).squeeze(-1)
        token = torch.where(greedy, logprobs.argmax(-1), sampled)
        return token, logprobs.gather(-1, token[:, None]).squeeze(-1)
