"""What the ``entropy_sync`` trainer computes on the driver over the whole step's batch (all ranks' samples), as plain
torch on padded (bsz, T) tensors, so the trainer, ``make bench`` and the at-scale tests run the same code:

- ``StepFields``: the step's per-token fields, read from TransferQueue once and padded once; the controllers'
  measurement (the token-mean entropy) and the estimators' per-response inputs come from it;
- ``whole_step_values``: the configured methods' whole-step statistics (``scope: step``, broadcast to the workers as
  ``<method>/<stat>``) and per-token selections (written into the batch for the workers).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from entropy_verl.losses.context import LossContext
from entropy_verl.losses.masked import flat_mean, valid_tokens


@dataclass
class StepFields:
    """The sampling policy's per-token fields of the step, padded (bsz, T)."""

    response_mask: torch.Tensor  # bool
    old_log_probs: torch.Tensor
    entropy: torch.Tensor
    sum_p2: torch.Tensor | None = None  # full-vocabulary sums, when a method needs them (Clip-V)
    sum_p2_logp: torch.Tensor | None = None
    nested_response_mask: torch.Tensor | None = None  # the mask as TransferQueue stores it, to write selections back
    rollout_log_probs: torch.Tensor | None = None  # the rollout engine's own log-probs of the sampled tokens
    token_versions: torch.Tensor | None = None  # the weights version that sampled each token (-1: not recorded)

    def token_mean_entropy(self) -> float:
        """Token-mean over every valid response token of the step, whatever loss_agg_mode is."""
        return float(flat_mean(valid_tokens(self.entropy, self.response_mask)))

    def rollout_log_prob_gap(self) -> dict[str, float]:
        """|rollout engine's log-prob - trainer's old log-prob| over valid tokens: ~1e-6 in fp32 when the rollout has
        the trainer's weights; a stale weight sync shows here first."""
        if self.rollout_log_probs is None:
            return {}
        gap = (self.rollout_log_probs - self.old_log_probs).abs()[self.response_mask]
        return {"max": float(gap.max()), "mean": float(gap.mean())} if gap.numel() else {}

    def rollout_log_prob_gap_by_weights(self, pi_old_version: int) -> tuple[dict[str, float], int]:
        """Under partial rollout (a trajectory's tokens sampled by several weights versions): the gap over the tokens
        pi_old's own weights sampled (~1e-6 when the weight sync and pi_old are right, however stale the rest) and over
        those older weights sampled (the off-policy gap); and how many of pi_old's tokens continue a trajectory begun
        on older weights (a request cut by a weight sync and resumed). ({stat: value}, continued tokens)."""
        if self.rollout_log_probs is None or self.token_versions is None:
            return {}, 0
        recorded = self.response_mask & (self.token_versions >= 0)
        gap = (self.rollout_log_probs - self.old_log_probs).abs()
        stats = {}
        for name, tokens in (
            ("pi_old_weights", recorded & (self.token_versions == pi_old_version)),
            ("older_weights", recorded & (self.token_versions < pi_old_version)),
        ):
            if tokens.any():
                stats.update({f"{name}/max": float(gap[tokens].max()), f"{name}/mean": float(gap[tokens].mean())})
        began = torch.where(recorded, self.token_versions, pi_old_version).min(-1, keepdim=True).values
        continued = recorded & (self.token_versions == pi_old_version) & (began < pi_old_version)
        return stats, int(continued.sum())

    def sequence_mean_old_log_prob(self) -> torch.Tensor:
        """(bsz,) each response's mean old log-prob over its valid tokens."""
        mask = self.response_mask.to(self.old_log_probs.dtype)
        return (self.old_log_probs * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)

    def context(self, advantages: torch.Tensor) -> LossContext:
        """The whole step as the sampling policy saw it, once the advantages are known."""
        return LossContext.of_sampling_policy(
            self.old_log_probs, advantages, self.response_mask, self.entropy, self.sum_p2, self.sum_p2_logp
        )


def whole_step_values(ctx: LossContext, methods, generator: torch.Generator) -> tuple[dict, dict]:
    """(statistics ``{"<method>/<stat>": value}`` of the methods with ``scope: step``, selections ``{method: (bsz, T)}``
    of the methods with a driver-side token selection)."""
    stats, selections = {}, {}
    for spec, cfg in methods:
        if spec.step_stats is not None and getattr(cfg, "scope", "step") == "step":
            stats.update({f"{spec.name}/{k}": v for k, v in spec.step_stats(ctx, cfg).items()})
        if spec.step_selection is not None:
            selections[spec.name] = spec.step_selection(ctx, cfg, generator)
    return stats, selections
