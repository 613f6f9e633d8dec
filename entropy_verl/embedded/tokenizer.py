"""A tiny byte-level Qwen2 tokenizer for the embedded countdown model.

The embedded default must look like an ordinary Hugging Face checkpoint so that verl (and, on GPU, vLLM)
load it through ``AutoTokenizer.from_pretrained`` without any project-specific code. We therefore write
the same files a real Qwen2 checkpoint ships (vocab.json, merges.txt, tokenizer.json,
tokenizer_config.json) and a ``config.json`` with ``model_type: qwen2``: transformers 5 resolves the
tokenizer class from the model config, so without it the directory would not load as ``Qwen2Tokenizer``.

The vocabulary holds only what the countdown task needs, one token per character, so the model never
has to learn multi-character pieces and every answer character is exactly one generation step.
"""

from __future__ import annotations

import json
import os

# Special tokens. Order fixes their ids (0, 1, 2): pad/unk, chat start, EOS.
PAD_TOKEN = "<|endoftext|>"
IM_START_TOKEN = "<|im_start|>"
EOS_TOKEN = "<|im_end|>"
SPECIAL_TOKENS = (PAD_TOKEN, IM_START_TOKEN, EOS_TOKEN)

# Plain characters of the task alphabet. ">" is not used by countdown-3 but is reserved for variants.
TASK_CHARS = tuple("0123456789") + tuple("+-*=:,>") + (" ", "\n")

MODEL_MAX_LENGTH = 64

# Renders each message's content verbatim: the prompt is exactly the task string with no role markers, and
# an assistant turn ends with EOS so SFT data built through the template teaches the model to stop.
# add_generation_prompt adds nothing because the prompt already ends with "=".
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- message['content'] -}}"
    "{%- if message['role'] == 'assistant' -%}{{- '<|im_end|>' -}}{%- endif -%}"
    "{%- endfor -%}"
)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 style byte -> printable unicode char table used by byte-level BPE.

    Printable latin-1 bytes map to themselves; the rest (space, newline, control bytes, ...) are shifted
    to code points from 256 up, which is why space is stored as "Ġ" and newline as "Ċ".
    """
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    table: dict[int, str] = {}
    shift = 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + shift)
            shift += 1
    return table


def build_vocab() -> dict[str, int]:
    """Token -> id map: special tokens first, then the byte-level form of each task character."""
    byte_map = _bytes_to_unicode()
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in TASK_CHARS:
        (byte,) = ch.encode("utf-8")  # every task char is ASCII, hence one byte
        vocab[byte_map[byte]] = len(vocab)
    return vocab


def _tokenizer_json(vocab: dict[str, int]) -> dict:
    """The fast-tokenizer description, built with the ``tokenizers`` library (a BPE without merges)."""
    from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE

    tok = Tokenizer(BPE(vocab=dict(vocab), merges=[], unk_token=None, fuse_unk=False, byte_fallback=False))
    # use_regex=False: with single-character tokens and no merges the GPT-2 split regex changes nothing.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    return json.loads(tok.to_str())


def _tokenizer_config(vocab: dict[str, int]) -> dict:
    added = {
        str(vocab[t]): {
            "content": t,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "single_word": False,
            "special": True,
        }
        for t in SPECIAL_TOKENS
    }
    return {
        "tokenizer_class": "Qwen2Tokenizer",
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": [IM_START_TOKEN, EOS_TOKEN],
        "bos_token": None,
        "eos_token": EOS_TOKEN,
        "pad_token": PAD_TOKEN,
        "unk_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "errors": "replace",
        "model_max_length": MODEL_MAX_LENGTH,
        "split_special_tokens": False,
    }


def _write_json(path: str, obj: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")


def write_tokenizer_files(out_dir: str, write_model_config: bool = True) -> None:
    """Write all tokenizer files into ``out_dir`` (created if needed).

    ``write_model_config`` adds a minimal ``config.json`` (model_type qwen2) so the directory loads on its
    own; when the model is saved into the same directory later, its full config replaces this stub.
    """
    os.makedirs(out_dir, exist_ok=True)
    vocab = build_vocab()
    _write_json(os.path.join(out_dir, "vocab.json"), vocab)
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")  # header only: no merges, every token is a single character
    _write_json(os.path.join(out_dir, "tokenizer.json"), _tokenizer_json(vocab))
    _write_json(os.path.join(out_dir, "tokenizer_config.json"), _tokenizer_config(vocab))
    if write_model_config:
        _write_json(os.path.join(out_dir, "config.json"), {"model_type": "qwen2"})


def load_tokenizer(tok_dir: str):
    """Load the tokenizer the way verl does, through ``AutoTokenizer``."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tok_dir)


def build_tokenizer(out_dir: str):
    """Write the tokenizer files into ``out_dir`` and return the loaded tokenizer."""
    write_tokenizer_files(out_dir)
    return load_tokenizer(out_dir)
