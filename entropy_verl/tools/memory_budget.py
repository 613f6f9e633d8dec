"""Per-GPU memory of a composed run, computed from its config and the model's shape: the arithmetic behind
docs/cluster.md's budget, for any method, model or batch setting (no GPU needed; nothing here is measured on one).

    python -m entropy_verl.tools.memory_budget hardware=cluster_gpu task=gsm8k method=adaptive_entropy
    python -m entropy_verl.tools.memory_budget --model-config /models/qwen2.5-7b/config.json hardware=cluster_gpu ...

Three phases, each the largest moment of that phase on one GPU (GB = 1e9 bytes):
- generating: the actor's sharded fp32 weights and Adam state sleep beside vLLM's share of the GPU;
- log-probs (no gradient): a ``log_prob_max_token_len_per_gpu`` micro-batch's logits, log-softmax and entropy chunk;
- training: a ``ppo_max_token_len_per_gpu`` micro-batch at the start of its backward: the saved activations, the
  logits, their fp32 log-softmax and their gradient, and the entropy's saved tensors. verl's chunked entropy keeps
  each chunk's fp32 logits and softmax for backward when the loss takes its gradient (``calculate_entropy``): 2 N V
  4 bytes for N tokens, whatever ``entropy_checkpointing`` says (it recomputes the same chunks at backward, where they
  are all alive again); ``tests/tools/test_memory_budget.py`` measures that with saved-tensor hooks.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from omegaconf import OmegaConf

GB = 1e9
FP32, BF16 = 4, 2


@dataclass(frozen=True)
class ModelShape:
    """A decoder-only transformer's sizes (Hugging Face config names)."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    tie_word_embeddings: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def parameters(self) -> int:
        h, kv = self.hidden_size, self.num_key_value_heads * self.head_dim
        layer = 2 * h * h + 2 * h * kv + 3 * h * self.intermediate_size + 2 * h  # q, o, k, v, MLP, norms
        embeddings = self.vocab_size * h * (1 if self.tie_word_embeddings else 2)
        return self.num_hidden_layers * layer + embeddings

    @classmethod
    def from_config_json(cls, path: str) -> ModelShape:
        with open(path) as f:
            raw = json.load(f)
        return cls(**{name: raw[name] for name in cls.__dataclass_fields__ if name in raw})


QWEN25_7B = ModelShape(152_064, 3_584, 18_944, 28, 28, 4)  # the cluster group's model class


def entropy_saved_bytes(tokens: int, vocab: int) -> int:
    """What verl's chunked entropy keeps for backward when its gradient is taken: every chunk's fp32 logits and
    softmax (``entropy_from_logits_with_chunking``)."""
    return 2 * tokens * vocab * FP32


def _select(config, key: str, default=None):
    return OmegaConf.select(config, key, default=default)


def budget(config, model: ModelShape = QWEN25_7B, gpu_gb: float = 80.0) -> dict[str, dict[str, float]]:
    """{phase: {item: GB}} for one GPU of the run ``config`` (a composed run config)."""
    actor = config.actor_rollout_ref.actor
    world = int(config.trainer.nnodes) * int(config.trainer.n_gpus_per_node)
    fsdp = int(_select(config, "actor_rollout_ref.actor.fsdp_config.fsdp_size", -1) or -1)
    shards = world if fsdp < 1 else fsdp
    p, v, h = model.parameters, model.vocab_size, model.hidden_size
    sleeping = {
        "actor weights (fp32, sharded)": FP32 * p / shards / GB,
        "Adam moments (fp32, sharded)": 2 * FP32 * p / shards / GB,
    }
    tp = int(_select(config, "actor_rollout_ref.rollout.tensor_model_parallel_size", 1))
    vllm_share = float(_select(config, "actor_rollout_ref.rollout.gpu_memory_utilization", 0.5)) * gpu_gb
    vllm_weights = BF16 * p / tp / GB
    generating = {
        **sleeping,
        "vLLM weights (bf16)": vllm_weights,
        "vLLM KV cache and runtime (rest of gpu_memory_utilization)": vllm_share - vllm_weights,
    }
    chunk = int(_select(config, "actor_rollout_ref.actor.entropy_from_logits_chunk_size", 2048))
    chunked = bool(_select(config, "actor_rollout_ref.actor.entropy_from_logits_with_chunking", False))
    gathered = 2 * BF16 * p / model.num_hidden_layers / GB  # FSDP2: the current layer and the prefetched one

    def logits(tokens: int) -> dict[str, float]:
        return {
            "logits (bf16)": BF16 * tokens * v / GB,
            "log-softmax of the logits (fp32)": FP32 * tokens * v / GB,
        }

    def entropy_without_grad(tokens: int) -> float:  # one chunk's fp32 logits, softmax and product, or all rows
        return 3 * FP32 * (min(chunk, tokens) if chunked else tokens) * v / GB

    lp_tokens = int(_select(config, "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu", 0) or 0)
    log_probs = {**sleeping, "gathered FSDP layers (bf16)": gathered, **logits(lp_tokens)}
    log_probs["entropy (no gradient)"] = entropy_without_grad(lp_tokens)
    tokens = int(actor.ppo_max_token_len_per_gpu)
    layer_inputs = BF16 * tokens * h * model.num_hidden_layers / GB
    one_layer = BF16 * tokens * (3 * model.intermediate_size + 6 * h) / GB  # the layer recomputed in backward
    checkpointing = bool(_select(config, "actor_rollout_ref.model.enable_gradient_checkpointing", False))
    training = {
        **sleeping,
        "actor gradients (fp32, sharded)": FP32 * p / shards / GB,
        "gathered FSDP layers (bf16)": gathered,
        "activations": (layer_inputs + one_layer) if checkpointing else one_layer * model.num_hidden_layers,
        **logits(tokens),
        "gradient of the logits (bf16)": BF16 * tokens * v / GB,
    }
    if _select(config, "actor_rollout_ref.actor.calculate_entropy", False):
        training["entropy with gradient (saved fp32 chunks)"] = entropy_saved_bytes(tokens, v) / GB
    else:
        training["entropy (no gradient)"] = entropy_without_grad(tokens)
    return {"generating": generating, "log-probs": log_probs, "training": training}


def to_markdown(phases: dict[str, dict[str, float]], gpu_gb: float) -> str:
    lines = ["| phase | item | GB |", "|---|---|---|"]
    for phase, items in phases.items():
        lines += [f"| {phase} | {item} | {gb:.1f} |" for item, gb in items.items()]
        total = sum(items.values())
        lines.append(f"| {phase} | **total** | **{total:.1f}** ({total / gpu_gb:.0%} of {gpu_gb:g} GB) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    from entropy_verl.main import compose_run

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-config", help="a Hugging Face config.json (default: Qwen2.5-7B's shape)")
    parser.add_argument("--gpu-gb", type=float, default=80.0, help="memory of one GPU (default: %(default)s)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for python -m entropy_verl.main")
    args = parser.parse_args(argv)
    model = ModelShape.from_config_json(args.model_config) if args.model_config else QWEN25_7B
    phases = budget(compose_run(args.overrides), model, args.gpu_gb)
    print(f"{model.parameters / 1e9:.2f} B parameters, vocabulary {model.vocab_size:,}\n")
    print(to_markdown(phases, args.gpu_gb))
    return phases


if __name__ == "__main__":
    main()
