"""The embedded default policy: a ~0.86M-parameter Qwen2 causal LM.

Qwen2 because it is a stock architecture that verl, FSDP and vLLM all support, so the embedded default
exercises the same code paths as a real checkpoint, only small enough to train on two CPU cores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of the embedded model (vocab size comes from the tokenizer)."""

    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 4
    intermediate_size: int = 384
    max_position_embeddings: int = 64


def make_config(tokenizer, spec: ModelSpec = ModelSpec()):
    """A ``Qwen2Config`` sized by ``spec`` whose special-token ids come from ``tokenizer``.

    Qwen checkpoints set bos_token_id to ``<|endoftext|>`` although the tokenizer adds no BOS; we follow
    that convention so tools that read ``config.bos_token_id`` find a valid id.
    """
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,  # the vocab is tiny; a separate LM head would only add parameters
        bos_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
        use_cache=True,
        **asdict(spec),
    )


def make_model(tokenizer, seed: int = 0, spec: ModelSpec = ModelSpec()):
    """A randomly initialised ``Qwen2ForCausalLM``; the init depends only on ``seed``."""
    import torch
    from transformers import Qwen2ForCausalLM

    config = make_config(tokenizer, spec)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    return model.float()


def count_parameters(model) -> int:
    """Number of distinct parameters (tied embedding counted once)."""
    return sum(p.numel() for p in model.parameters())
