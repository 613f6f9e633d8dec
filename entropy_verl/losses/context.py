"""``LossContext``: everything an entropy-aware policy loss may need, which verl's policy-loss signature lacks.

verl's ``ppo_loss`` hands a policy loss (old_log_prob, log_prob, advantages, response_mask). Entropy methods also
need the current-policy per-token entropy (with gradient), the old policy's per-token entropy (recomputed by verl
with the old log-probs, no extra forward pass), the sampled tokens' probabilities, and the per-step coefficients the
driver's controllers broadcast through the batch's ``extra_info``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tensordict import TensorDict
from verl.utils import tensordict_utils as tu
from verl.workers.utils.padding import no_padding_2_padding

COEFFICIENTS_KEY = "entropy_verl_coefficients"  # batch.extra_info key the driver writes, the workers read
SELECTION_PREFIX = "entropy_verl_select_"  # batch fields with the driver's per-token selections, one per method


@dataclass
class LossContext:
    log_prob: torch.Tensor  # (bsz, T) current policy, with grad
    old_log_prob: torch.Tensor  # (bsz, T)
    advantages: torch.Tensor  # (bsz, T)
    response_mask: torch.Tensor  # (bsz, T) bool
    entropy: torch.Tensor | None  # (bsz, T) current policy, with grad; None unless calculate_entropy
    old_entropy: torch.Tensor | None  # (bsz, T) old policy, detached
    coefficients: dict[str, float] = field(default_factory=dict)
    global_batch_info: dict = field(default_factory=dict)  # verl's normalisers for micro-batch-invariant means
    selections: dict[str, torch.Tensor] = field(default_factory=dict)  # method -> (bsz, T) driver-side token selection
    # sampling policy's full-vocabulary sums per token (Clip-V), only when a method needs them: sum p^2, sum p^2 log p
    old_sum_p2: torch.Tensor | None = None
    old_sum_p2_logp: torch.Tensor | None = None

    @classmethod
    def of_sampling_policy(cls, old_log_prob, advantages, response_mask, old_entropy, old_sum_p2=None,
                           old_sum_p2_logp=None) -> "LossContext":
        """The whole step's batch as the driver sees it before the update: only the sampling policy's quantities
        (what selection statistics and driver-side token selections are computed from)."""
        return cls(log_prob=old_log_prob, old_log_prob=old_log_prob, advantages=advantages,
                   response_mask=response_mask.to(bool), entropy=None, old_entropy=old_entropy,
                   old_sum_p2=old_sum_p2, old_sum_p2_logp=old_sum_p2_logp)

    @property
    def ratio(self) -> torch.Tensor:
        return torch.exp(self.log_prob - self.old_log_prob)

    @property
    def prob(self) -> torch.Tensor:
        """Current probability of each sampled token."""
        return torch.exp(self.log_prob)

    @property
    def old_prob(self) -> torch.Tensor:
        """Probability of each sampled token under the policy that sampled it (what selection statistics use)."""
        return torch.exp(self.old_log_prob)


def build_loss_context(config, model_output: dict, data: TensorDict) -> LossContext:
    log_prob = no_padding_2_padding(model_output["log_probs"], data)
    entropy = model_output.get("entropy", None)
    if entropy is not None:
        entropy = no_padding_2_padding(entropy, data)
    keys = list(data.keys())
    selection_fields = [k for k in keys if isinstance(k, str) and k.startswith(SELECTION_PREFIX)]
    fields = ["response_mask", "old_log_probs", "advantages"] + (["entropy"] if "entropy" in keys else []) + selection_fields
    padded = data.select(*fields).to_padded_tensor()
    return LossContext(
        log_prob=log_prob,
        old_log_prob=padded["old_log_probs"],
        advantages=padded["advantages"],
        response_mask=padded["response_mask"].to(bool),
        entropy=entropy,
        old_entropy=padded.get("entropy", None),
        coefficients=dict(tu.get_non_tensor_data(data=data, key=COEFFICIENTS_KEY, default=None) or {}),
        global_batch_info=dict(config.global_batch_info),
        selections={k[len(SELECTION_PREFIX):]: padded[k] for k in selection_fields},
    )
