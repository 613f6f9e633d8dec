"""Quick accuracy / entropy evaluation of a countdown policy, independent of verl.

Used to record the embedded default's starting point in its manifest, and reusable to compare a
checkpoint after RL against it. Generation is a plain loop (no KV cache, no padding): prompts are grouped
by length, completions are at most a few tokens, so this is simpler than ``generate`` and exactly
reproducible from a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

from entropy_verl.tasks import countdown

# An answer is 5 characters + EOS; a little slack lets malformed (longer) completions show up as wrong.
DEFAULT_MAX_NEW_TOKENS = 8


@dataclass(frozen=True)
class EvalResult:
    sampled_acc: float  # one sample per prompt at the given temperature
    greedy_acc: float
    entropy: float  # mean per-token entropy (nats) of the sampled completions, EOS included
    n_prompts: int
    temperature: float


def _generate(model, prompt_ids, max_new_tokens, eos_id, temperature, generator, greedy):
    """Decode a batch of equal-length prompts.

    Returns (new token ids [B, T], per-token entropies [B, T], mask [B, T] of tokens up to and including
    the first EOS). Entropy is that of the temperature-scaled distribution the token was drawn from.
    """
    import torch

    seq = prompt_ids
    tokens, entropies, masks = [], [], []
    done = torch.zeros(seq.shape[0], dtype=torch.bool)
    for _ in range(max_new_tokens):
        logits = model(input_ids=seq, use_cache=False).logits[:, -1, :].float()
        if not greedy:
            logits = logits / temperature
        logp = torch.log_softmax(logits, dim=-1)
        if greedy:
            nxt = logits.argmax(dim=-1)
        else:
            nxt = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(-1)
        masks.append(~done)
        tokens.append(nxt)
        entropies.append(-(logp.exp() * logp).sum(-1))
        done = done | (nxt == eos_id)
        seq = torch.cat([seq, nxt[:, None]], dim=1)
        if bool(done.all()):
            break
    return torch.stack(tokens, 1), torch.stack(entropies, 1), torch.stack(masks, 1)


def _completion_text(tokenizer, ids, mask) -> str:
    """Decode a completion the way verl's reward manager does: valid tokens, special tokens skipped."""
    return tokenizer.decode(ids[mask].tolist(), skip_special_tokens=True)


def evaluate(
    model,
    tokenizer,
    n_prompts: int = 256,
    temperature: float = 1.0,
    *,
    seed: int = 0,
    split: str = "val",
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
) -> EvalResult:
    """Sampled accuracy (one sample per prompt at ``temperature``), greedy accuracy and mean token entropy.

    The prompts are the first ``n_prompts`` rows of ``make_rl_dataframe(n_prompts, seed, split)``, i.e.
    with the default seed the same prompts as the embedded default's validation parquet.
    """
    import torch

    rows = countdown.make_rl_rows(n_prompts, seed, split)
    problems = [countdown.parse_ground_truth(r["reward_model"]["ground_truth"]) for r in rows]
    prompts = [r["prompt"][0]["content"] for r in rows]
    encoded = [tokenizer.encode(p, add_special_tokens=False) for p in prompts]
    by_len: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        by_len.setdefault(len(ids), []).append(i)

    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    sampled_ok = greedy_ok = 0
    ent_sum, ent_count = 0.0, 0
    try:
        with torch.no_grad():
            for length in sorted(by_len):
                idx = by_len[length]
                batch = torch.tensor([encoded[i] for i in idx], dtype=torch.long)
                for greedy in (False, True):
                    ids, ent, mask = _generate(
                        model, batch, max_new_tokens, tokenizer.eos_token_id, temperature, generator, greedy
                    )
                    if not greedy:
                        ent_sum += float(ent[mask].sum())
                        ent_count += int(mask.sum())
                    for row, i in enumerate(idx):
                        text = _completion_text(tokenizer, ids[row], mask[row])
                        answer = countdown.extract_answer(text)
                        ok = countdown.is_correct(answer, *problems[i])
                        if greedy:
                            greedy_ok += ok
                        else:
                            sampled_ok += ok
    finally:
        model.train(was_training)
    return EvalResult(
        sampled_acc=sampled_ok / n_prompts,
        greedy_acc=greedy_ok / n_prompts,
        entropy=ent_sum / max(ent_count, 1),
        n_prompts=n_prompts,
        temperature=temperature,
    )
