"""Short supervised warm start of the embedded model on synthetic countdown problems.

The goal is *not* a good solver: RL needs a policy that is sometimes right (non-zero reward) and still
uncertain (non-zero entropy). A brief SFT run on uniformly random valid solutions gives exactly that,
a policy that spreads probability over several answers and solves a minority of problems.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass

from entropy_verl.tasks import countdown

IGNORE_INDEX = -100


@dataclass(frozen=True)
class SFTConfig:
    steps: int = 250  # 100 steps leave sampled accuracy ~0.10; 250 give ~0.27 at entropy ~0.58
    batch_size: int = 256
    lr: float = 1e-3
    warmup_steps: int = 30
    weight_decay: float = 0.01
    seed: int = 0
    # SFT data comes from the train split only, so validation prompts stay unseen by the warm start.
    split: str = "train"
    show_progress: bool = True


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Temporarily fix torch's intra-op thread count: float reductions, hence weights, depend on it."""
    import torch

    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def make_sft_batch(tokenizer, problems, rng: random.Random):
    """Token ids, attention mask and labels for ``prompt + answer + EOS`` sequences, right-padded.

    The answer is a uniformly random valid solution, so the target distribution has real entropy where a
    problem has several solutions. Labels are IGNORE_INDEX on prompt and padding: the loss covers only the
    answer tokens and the EOS that teaches the model to stop.
    """
    import torch

    seqs, labels = [], []
    for problem in problems:
        answer = rng.choice(countdown.solutions(*problem))
        prompt_ids = tokenizer.encode(countdown.format_prompt(*problem), add_special_tokens=False)
        answer_ids = tokenizer.encode(answer, add_special_tokens=False) + [tokenizer.eos_token_id]
        seqs.append(prompt_ids + answer_ids)
        labels.append([IGNORE_INDEX] * len(prompt_ids) + answer_ids)
    width = max(len(s) for s in seqs)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], dtype=torch.long)
    attention_mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], dtype=torch.long)
    label_ids = torch.tensor([lab + [IGNORE_INDEX] * (width - len(lab)) for lab in labels], dtype=torch.long)
    return input_ids, attention_mask, label_ids


def answer_loss(model, input_ids, labels):
    """Mean next-token cross-entropy over the labelled (answer + EOS) positions.

    No attention mask is passed on purpose: padding is on the right, so under causal attention no real
    token ever attends to a pad, and the unmasked call takes the faster ``is_causal`` attention path.
    """
    import torch.nn.functional as F

    logits = model(input_ids=input_ids, use_cache=False).logits
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
        labels[:, 1:].reshape(-1),
        ignore_index=IGNORE_INDEX,
    )


def train_sft(model, tokenizer, cfg: SFTConfig = SFTConfig()) -> list[float]:
    """Run ``cfg.steps`` AdamW steps on fresh synthetic batches; returns the per-step training loss.

    Every step draws new problems (there is no epoch structure: the task generator is the dataset).
    Deterministic given ``cfg.seed``, the model's initial weights and the torch thread count.
    """
    import torch
    from tqdm.auto import tqdm

    torch.manual_seed(cfg.seed)
    rng = random.Random(f"countdown3-sft-{cfg.seed}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # Linear warm-up, then constant: a short run does not need decay, and warm-up keeps the first
    # updates of a randomly initialised transformer from overshooting.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / max(cfg.warmup_steps, 1))
    )
    model.train()
    losses: list[float] = []
    bar = tqdm(range(cfg.steps), desc="embedded SFT", disable=not cfg.show_progress, leave=False)
    for _ in bar:
        problems = [countdown.generate_problem(rng, cfg.split) for _ in range(cfg.batch_size)]
        input_ids, _, labels = make_sft_batch(tokenizer, problems, rng)
        loss = answer_loss(model, input_ids, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    return losses
