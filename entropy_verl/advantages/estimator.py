"""Our advantage estimators as verl advantage estimators (``algorithm.adv_estimator=<name>``).

An estimator is a registered function ``fn(ctx: EstimatorContext, cfg) -> (advantages, metrics)``. verl calls
estimators with token-level rewards, the response mask, the group ids and its ``algorithm`` config only, so each one
is registered in verl's registry (``register_adv_est``) behind an adapter that adds what verl does not pass: the
estimator's own config (``entropy_verl.methods.<name>``) and the per-response inputs it ``needs`` (each response's
mean old log-prob, final answer, reward components), which the ``entropy_sync`` trainer reads from the step's batch
on the driver and provides for the duration of verl's advantage step (``estimator_inputs``). Metrics come back as
``entropy_verl/<name>/<key>``.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from entropy_verl import registry


@dataclass
class EstimatorContext:
    token_level_rewards: torch.Tensor  # (bsz, T): the reward on each response's last token
    response_mask: torch.Tensor  # (bsz, T)
    index: Any  # (bsz,) group id of each response (verl's uid)
    algorithm: Any  # verl's algorithm config (norm_adv_by_std_in_grpo, ...)
    sequence_mean_old_log_prob: torch.Tensor | None = None  # (bsz,), when the estimator needs it
    final_answers: list | None = None  # one answer (or None) per response, when needed
    reward_components: dict[str, list] | None = None  # {key: one value per response}, when needed


@dataclass
class _Step:
    configs: dict[str, Any]  # estimator name -> its built config
    inputs: dict[str, Any]  # need -> value
    metrics: dict[str, float]


_STEP: _Step | None = None


@contextmanager
def estimator_inputs(configs: dict[str, Any], **inputs):
    """Provide estimators' configs ({name: config}) and per-response ``inputs`` (registry.NEEDS keys) to the
    estimators verl runs inside; yields the dict of metrics they return, keyed ``<name>/<key>``."""
    global _STEP
    previous, _STEP = _STEP, _Step(dict(configs), inputs, {})
    try:
        yield _STEP.metrics
    finally:
        _STEP = previous


def verl_estimator(spec: registry.Spec):
    """The function verl's registry holds for ``spec``: verl's estimator signature around ``spec.impl``."""

    def estimate(token_level_rewards, response_mask, index=None, config=None, **kwargs):
        if _STEP is None or spec.name not in _STEP.configs:
            raise RuntimeError(
                f"advantage estimator {spec.name!r} gets its settings ({spec.key}) and inputs from "
                "entropy_verl's trainer: set trainer.v1.trainer_mode=entropy_sync"
            )
        missing = [need for need in spec.needs if need not in _STEP.inputs]
        if missing:
            raise RuntimeError(f"advantage estimator {spec.name!r} needs {missing}, which the trainer did not provide")
        ctx = EstimatorContext(
            token_level_rewards, response_mask, index, config, **{n: _STEP.inputs[n] for n in spec.needs}
        )
        advantages, metrics = spec.impl(ctx, _STEP.configs[spec.name])
        _STEP.metrics.update({f"{spec.name}/{k}": float(v) for k, v in metrics.items()})
        return advantages, advantages

    estimate.__name__ = estimate.__qualname__ = f"{spec.name}_advantage"
    estimate.__doc__ = spec.impl.__doc__
    return estimate


def register_with_verl() -> None:
    """Put every registered estimator into verl's advantage-estimator registry (idempotent)."""
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, register_adv_est

    for spec in registry.specs("estimator"):
        if spec.name not in ADV_ESTIMATOR_REGISTRY:
            register_adv_est(spec.name)(verl_estimator(spec))


def grpo_advantages(ctx: EstimatorContext, token_level_rewards: torch.Tensor | None = None) -> torch.Tensor:
    """verl's GRPO group normalisation of ``token_level_rewards`` (default: the context's), honouring
    ``algorithm.norm_adv_by_std_in_grpo`` (default True)."""
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

    algorithm = ctx.algorithm
    norm_by_std = True if algorithm is None else bool(algorithm.get("norm_adv_by_std_in_grpo", True))
    rewards = ctx.token_level_rewards if token_level_rewards is None else token_level_rewards
    advantages, _ = compute_grpo_outcome_advantage(
        rewards, ctx.response_mask, ctx.index, norm_adv_by_std_in_grpo=norm_by_std
    )
    return advantages
