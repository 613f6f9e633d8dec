"""A toy softmax policy on which entropy-control methods must do what their papers claim.

K independent "positions", each a softmax over V tokens with several correct tokens (so collapse loses diversity, as
on countdown). Each step samples G tokens per position, scores them, computes GRPO advantages, and takes one on-policy
step of verl's own vanilla policy loss with the method's shaped advantages, token weights and terms applied exactly as
the entropy-aware actor loss applies them (``apply_loss_methods``, ``apply_loss_terms``), after the whole-step
statistics and selections the trainer computes on the driver.

Plain SGD on the logits: the papers' entropy arguments are first-order analyses of exactly that (a softmax policy
under policy gradient). Adam on a logit table normalises each logit's step separately, which is nothing like Adam on
an LLM's shared weights and can reverse them: there, detaching rare penalised tokens (Clip-Cov) lowered entropy."""

from __future__ import annotations

import torch
from verl.trainer.ppo.core_algos import get_policy_loss_fn
from verl.workers.config import FSDPActorConfig

import entropy_verl.losses  # noqa: F401  - registers pg_unclipped with verl
from entropy_verl.losses import LossContext, apply_loss_methods, apply_loss_terms

K, V, G = 32, 6, 8


def mean_entropy(logits: torch.Tensor) -> float:
    p = torch.softmax(logits, -1)
    return float(-(p * p.log()).sum(-1).mean())


def grpo_advantages(reward: torch.Tensor) -> torch.Tensor:
    return (reward - reward.mean(1, keepdim=True)) / (reward.std(1, keepdim=True) + 1e-6)


def train(
    methods=(),
    steps=40,
    lr=5.0,
    seed=0,
    coefficients=None,
    grad_probe=None,
    advantages=grpo_advantages,
    updates_per_batch=1,
    loss_mode="vanilla",
    optimizer_cls=torch.optim.SGD,
    actor_config=None,
):
    """Entropy of the toy policy after ``steps`` batches (mean over positions); same seed = same start and task.
    ``advantages(reward (K, G)) -> (K, G)`` replaces GRPO's group normalisation; each batch is used for
    ``updates_per_batch`` optimizer steps (PPO epochs), so ratios move away from 1 after the first. ``actor_config``:
    extra fields of verl's actor config (clip ratios, ``policy_loss``) for verl's own methods."""
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(K, V, generator=gen) * 0.5).requires_grad_()
    correct = torch.rand(K, V, generator=gen) < 0.4
    correct[:, 0] = True  # every position has at least one correct token
    optimizer = optimizer_cls([logits], lr=lr)
    config = FSDPActorConfig(
        strategy="fsdp2", ppo_mini_batch_size=1, ppo_micro_batch_size_per_gpu=1, rollout_n=1, **(actor_config or {})
    )  # e.g. clip_ratio_high, policy_loss (verl's own loss settings)
    policy_loss = get_policy_loss_fn(loss_mode)
    for step in range(steps):
        with torch.no_grad():
            p = torch.softmax(logits, -1)
            tokens = torch.multinomial(p, G, replacement=True, generator=gen)  # (K, G)
            reward = correct.gather(1, tokens).double()
            adv = advantages(reward)
            entropy = -(p * p.log()).sum(-1, keepdim=True).expand(K, G)
            sum_p2 = (p * p).sum(-1, keepdim=True).expand(K, G)  # Clip-V's full-vocabulary sums
            sum_p2_logp = (p * p * p.log()).sum(-1, keepdim=True).expand(K, G)
            old_log_prob = torch.log_softmax(logits, -1).gather(1, tokens).reshape(1, K * G)
        whole_step = LossContext.of_sampling_policy(
            old_log_prob,
            adv.reshape(1, K * G).float(),
            torch.ones(1, K * G, dtype=torch.bool),
            entropy.reshape(1, K * G).float(),
            sum_p2.reshape(1, K * G).float(),
            sum_p2_logp.reshape(1, K * G).float(),
        )
        step_stats, selections = {}, {}
        for spec, cfg in methods:  # what the trainer computes on the driver over the whole step
            if spec.step_stats:
                step_stats[spec.name] = spec.step_stats(whole_step, cfg)
            if spec.step_selection:
                selections[spec.name] = spec.step_selection(whole_step, cfg, torch.Generator().manual_seed(step))
        for _ in range(updates_per_batch):
            log_prob = torch.log_softmax(logits, -1).gather(1, tokens).reshape(1, K * G)
            ctx = LossContext(
                log_prob=log_prob,
                old_log_prob=old_log_prob,
                advantages=adv.reshape(1, K * G).float(),
                response_mask=torch.ones(1, K * G, dtype=torch.bool),
                entropy=None,
                old_entropy=entropy.reshape(1, K * G).float(),
                coefficients=dict(coefficients or {}),
                step_stats=step_stats,
                selections=selections,
            )
            _, weights, _ = apply_loss_methods(ctx, methods)
            loss, _ = policy_loss(
                old_log_prob=ctx.old_log_prob,
                log_prob=log_prob,
                advantages=ctx.advantages,
                response_mask=ctx.response_mask,
                loss_agg_mode="token-mean",
                config=config,
                rollout_is_weights=weights,
            )
            loss = loss + apply_loss_terms(ctx, methods)[0]
            optimizer.zero_grad()
            loss.backward()
            if grad_probe is not None:
                grad_probe(logits.grad.detach().clone(), ctx, weights)
            optimizer.step()
    return mean_entropy(logits.detach())
