"""Registry of entropy terms: additive pieces of the actor loss that see a ``LossContext``.

A term is a small pure function ``term(ctx, cfg) -> (loss, metrics)`` registered by name with the dataclass that
holds its config, in the style of verl's ``register_policy_loss``. The entropy-aware actor loss adds the terms named
in ``entropy_verl.loss.terms`` to verl's own PPO loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .context import LossContext


@dataclass(frozen=True)
class TermSpec:
    name: str
    fn: Callable
    config_cls: type
    needs_entropy: bool  # current-policy entropy with gradient (actor.calculate_entropy=True)
    coefficient: str | None  # the controller output it reads from ctx.coefficients, if any


ENTROPY_TERMS: dict[str, TermSpec] = {}


def register_entropy_term(name: str, config_cls: type, needs_entropy: bool = False, coefficient: str | None = None):
    def decorator(fn):
        if name in ENTROPY_TERMS:
            raise ValueError(f"entropy term {name!r} is already registered")
        ENTROPY_TERMS[name] = TermSpec(name, fn, config_cls, needs_entropy, coefficient)
        return fn

    return decorator


def get_entropy_term(name: str) -> TermSpec:
    if name not in ENTROPY_TERMS:
        raise KeyError(f"unknown entropy loss term {name!r}; registered: {sorted(ENTROPY_TERMS)}")
    return ENTROPY_TERMS[name]


def selected_token_mean(values: torch.Tensor, selected: torch.Tensor, ctx: LossContext) -> torch.Tensor:
    """Token-mean of ``values`` over ``selected`` tokens, weighted by this micro-batch's share of the mini-batch's
    valid tokens (verl's ``batch_num_tokens``), so gradient accumulation over micro-batches and data-parallel ranks
    gives the token-share-weighted mean; with one micro-batch it is exactly the mean over selected tokens."""
    selected = selected.to(values.dtype)
    local = (values * selected).sum() / selected.sum().clamp(min=1.0)
    batch_num_tokens = ctx.global_batch_info.get("batch_num_tokens")
    if batch_num_tokens is None:
        return local
    share = ctx.response_mask.sum() / float(batch_num_tokens) * float(ctx.global_batch_info.get("dp_size", 1))
    return local * share
