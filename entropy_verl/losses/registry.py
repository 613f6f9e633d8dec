"""Registry of entropy-control loss methods: small pure functions of a ``LossContext``, registered by name with the
dataclass that holds their config, in the style of verl's ``register_policy_loss``.

Three kinds, composed by the entropy-aware actor loss in this order:

- ``advantage``: ``fn(ctx, cfg) -> (advantages, metrics)`` reshapes the per-token advantages verl's policy loss sees;
  several chain.
- ``weight``: ``fn(ctx, cfg) -> (weights, metrics)`` a detached per-token weight on verl's policy loss (it multiplies
  verl's ``rollout_is_weights``); several multiply, e.g. ``top_entropy`` x ``steer``.
- ``term``: ``fn(ctx, cfg) -> (loss, metrics)`` an additive loss term (EntroPIC's term, an entropy bonus); several add.

Token *selection* statistics (entropy quantiles, means/stds of S, covariances) are taken from the policy that sampled
the batch (``old_log_prob``, ``old_entropy``), which verl has already computed: they are then the same in every
micro-batch, epoch and rank. A method whose config says ``scope: step`` gets them over the whole step's batch, all
ranks together: the trainer runs its ``step_stats(ctx, cfg)`` on the driver over the full batch before the actor
update and broadcasts the numbers as coefficients ``<method>/<stat>``; ``scope: micro_batch`` computes them locally.
Methods that pick individual tokens from the whole step (a seeded random subset, a global top-k) register a
``step_selection(ctx, cfg, generator)``: the driver computes the per-token values once and writes them into the batch
(field ``selection_field(name)``), and every worker reads its tokens' values as ``ctx.selections[name]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .context import SELECTION_PREFIX, LossContext

KINDS = ("advantage", "weight", "term")


@dataclass(frozen=True)
class LossMethodSpec:
    name: str
    kind: str
    fn: Callable
    config_cls: type
    needs_entropy: bool  # current-policy entropy with gradient (actor.calculate_entropy=True)
    coefficient: str | None  # the controller output it reads from ctx.coefficients, if it must have one
    step_stats: Callable | None = None  # (ctx, cfg) -> {stat: float}, run on the driver for ``scope: step``
    step_selection: Callable | None = None  # (ctx, cfg, generator) -> (bsz, T) per-token values, run on the driver
    loss_mode: str | None = None  # the actor.policy_loss.loss_mode the method is defined with, if it needs one
    needs_vocab_stats: bool = False  # sampling policy's sum p^2, sum p^2 log p per token (ctx.old_sum_p2[_logp])


LOSS_METHODS: dict[str, LossMethodSpec] = {}


def register_loss_method(name: str, kind: str, config_cls: type, needs_entropy: bool = False, coefficient: str | None = None,
                         step_stats: Callable | None = None, step_selection: Callable | None = None,
                         loss_mode: str | None = None, needs_vocab_stats: bool = False):
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")

    def decorator(fn):
        if name in LOSS_METHODS:
            raise ValueError(f"entropy loss method {name!r} is already registered")
        LOSS_METHODS[name] = LossMethodSpec(name, kind, fn, config_cls, needs_entropy, coefficient, step_stats, step_selection,
                                           loss_mode, needs_vocab_stats)
        return fn

    return decorator


def register_advantage_shaping(name: str, config_cls: type, **kwargs):
    return register_loss_method(name, "advantage", config_cls, **kwargs)


def register_token_weight(name: str, config_cls: type, **kwargs):
    return register_loss_method(name, "weight", config_cls, **kwargs)


def register_entropy_term(name: str, config_cls: type, **kwargs):
    return register_loss_method(name, "term", config_cls, **kwargs)


def needs_vocab_stats(methods) -> bool:
    """Whether any of the built (spec, config) methods reads the sampling policy's full-vocabulary sums."""
    return any(spec.needs_vocab_stats for spec, _ in methods)


def get_loss_method(name: str) -> LossMethodSpec:
    if name not in LOSS_METHODS:
        raise KeyError(f"unknown entropy loss method {name!r}; registered: {sorted(LOSS_METHODS)}")
    return LOSS_METHODS[name]


SCOPES = ("step", "micro_batch")


def selection_field(name: str) -> str:
    """The batch field holding a method's per-token driver-side selection."""
    return SELECTION_PREFIX + name


def step_selection(ctx: LossContext, name: str) -> torch.Tensor:
    if name not in ctx.selections:
        raise RuntimeError(f"{name} needs the token selection the entropy_sync trainer writes into the batch each step; "
                           f"none arrived (set trainer.v1.trainer_mode=entropy_sync)")
    return ctx.selections[name]


def check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")


def selection_stats(ctx: LossContext, name: str, cfg, local: Callable) -> dict[str, float]:
    """The selection statistics a method uses: the driver's whole-step values (``scope: step``) or ``local(ctx, cfg)``."""
    if cfg.scope == "micro_batch":
        return local(ctx, cfg)
    prefix = f"{name}/"
    stats = {k[len(prefix):]: v for k, v in ctx.coefficients.items() if k.startswith(prefix)}
    if not stats:
        raise RuntimeError(f"{name} with scope 'step' needs the step statistics the entropy_sync trainer broadcasts; "
                           f"none arrived (set trainer.v1.trainer_mode=entropy_sync or scope: micro_batch)")
    return stats


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


def valid_token_mean(values: torch.Tensor, ctx: LossContext) -> float:
    """Mean of ``values`` over this micro-batch's valid tokens (a fraction when ``values`` is a selection): metrics."""
    return float((values * ctx.response_mask).sum() / ctx.response_mask.sum().clamp(min=1))


def masked_mean_std(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (population) standard deviation of ``values`` over ``mask``; (0, 0) when nothing is selected."""
    mask = mask.to(values.dtype)
    count = mask.sum().clamp(min=1.0)
    mean = (values * mask).sum() / count
    var = (((values - mean) ** 2) * mask).sum() / count
    return mean, var.sqrt()
