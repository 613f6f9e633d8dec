"""The entropy-aware actor loss, installed on every actor worker with verl's ``set_loss_fn``.

    advantages <- advantage shapings(ctx)          # e.g. entropy_adv; chained
    weights    <- product of token weights(ctx)    # e.g. top_entropy x steer x pos_adv_reweight; detached
    loss = verl's ppo_loss(...)                    # whatever actor.policy_loss.loss_mode says: vanilla, cispo, ...
                                                   # fed the shaped advantages and rollout_is_weights x weights
         + sum of loss terms(ctx)                  # e.g. entropic, adaptive_entropy_bonus

So every verl built-in ``loss_mode`` keeps working unchanged through the same path, and our methods get what verl's
policy-loss signature lacks (entropies, probabilities, the driver's coefficients). Each method runs on its own view
of the context (``LossContext.for_method``) and its metrics are logged under its registered name. Each worker also
logs the coefficients it actually used, so a run can prove they match what the driver computed.
"""

from __future__ import annotations

import torch

from entropy_verl import metric_names
from entropy_verl.schedule import with_values

from .context import LossContext, build_loss_context, scheduled_key


def run_method(ctx: LossContext, spec, cfg) -> tuple[torch.Tensor, dict[str, float]]:
    """One registered method on ``ctx``: (its output, its metrics prefixed with its name), with this step's values
    of its scheduled settings."""
    cfg = with_values(cfg, ctx.scheduled.get(spec.name))
    out, metrics = spec.impl(ctx.for_method(spec, cfg), cfg)
    return out, {f"{spec.name}/{k}": v for k, v in metrics.items()}


def apply_loss_methods(ctx: LossContext, methods) -> tuple[torch.Tensor | None, torch.Tensor | None, dict]:
    """Run the advantage and weight methods of ``methods`` ((spec, config) pairs) on ``ctx``: (shaped advantages or
    None, product of weights or None, metrics). ``ctx.advantages`` is updated so later methods see the shaped ones."""
    metrics, shaped, weights = {}, None, None
    for spec, cfg in methods:
        if spec.kind == "advantage":
            shaped, m = run_method(ctx, spec, cfg)
            ctx.advantages = shaped.detach()
            metrics.update(m)
    for spec, cfg in methods:
        if spec.kind == "weight":
            w, m = run_method(ctx, spec, cfg)
            weights = w.detach() if weights is None else weights * w.detach()
            metrics.update(m)
    return shaped, weights, metrics


def apply_loss_terms(ctx: LossContext, methods) -> tuple[torch.Tensor | float, dict]:
    """The sum of the term methods of ``methods`` on ``ctx`` (0.0 if none), and their metrics."""
    total, metrics = 0.0, {}
    for spec, cfg in methods:
        if spec.kind == "term":
            term, m = run_method(ctx, spec, cfg)
            total = total + term
            metrics.update(m)
    return total, metrics


def _with_token_fields(data, advantages: torch.Tensor | None, weights: torch.Tensor | None):
    """A shallow copy of the micro-batch with padded (bsz, T) advantages / extra weights in the batch's own layout."""
    from verl.workers.utils.padding import response_to_nested

    data = data.copy()
    mask = data["response_mask"]

    def to_layout(tensor):
        return response_to_nested(tensor, mask) if mask.is_nested else tensor

    if advantages is not None:
        data["advantages"] = to_layout(advantages)
    if weights is not None:
        if "rollout_is_weights" in data.keys():
            weights = (
                weights * data.select("rollout_is_weights", "response_mask").to_padded_tensor()["rollout_is_weights"]
            )
        data["rollout_is_weights"] = to_layout(weights)
    return data


def entropy_aware_loss(config, model_output, data, dp_group=None, *, methods=()):
    """verl's actor loss signature ``(config, model_output, data, dp_group)``; ``methods`` is bound by the trainer."""
    from verl.utils.metric import AggregationType, Metric
    from verl.workers.utils.losses import ppo_loss

    if not methods:
        return ppo_loss(config, model_output, data, dp_group)
    ctx = build_loss_context(config, model_output, data)
    shaped, weights, method_metrics = apply_loss_methods(ctx, methods)
    if shaped is not None or weights is not None:
        data = _with_token_fields(data, shaped, weights)
    loss, metrics = ppo_loss(config, model_output, data, dp_group)
    ctx.global_batch_info = dict(config.global_batch_info)  # ppo_loss has just set this micro-batch's normalisers
    terms, term_metrics = apply_loss_terms(ctx, methods)
    loss = loss + terms
    method_metrics.update(term_metrics)
    metrics.update(
        {metric_names.method(k): Metric(value=v, aggregation=AggregationType.MEAN) for k, v in method_metrics.items()}
    )
    broadcast = {
        **ctx.coefficients,
        **{f"{m}/{k}": v for m, stats in ctx.step_stats.items() for k, v in stats.items()},
        **{scheduled_key(m, k): v for m, values in ctx.scheduled.items() for k, v in values.items()},
    }
    for key, value in broadcast.items():  # what the workers used, min and max over all ranks: the driver compares
        for stat in metric_names.WORKER_STATS:
            metrics[metric_names.worker_coef(key, stat)] = Metric(value=float(value), aggregation=AggregationType(stat))
    return loss, metrics
