"""``LossContext``: everything an entropy-aware policy loss may need, which verl's policy-loss signature lacks.

verl's ``ppo_loss`` hands a policy loss (old_log_prob, log_prob, advantages, response_mask). Entropy methods also
need the current-policy per-token entropy (with gradient), the old policy's per-token entropy (recomputed by verl
with the old log-probs, no extra forward pass), the sampled tokens' probabilities, and the per-step values the
driver broadcasts through the batch's ``extra_info``: controller outputs (``alpha``), whole-step statistics
(``<method>/<stat>``) and, as batch fields, per-token selections.

A method sees its own statistics and selection as ``ctx.stats`` / ``ctx.selection``: the actor loss looks them up
by the method's registered name (``for_method``), so a method never types its own name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

COEFFICIENTS_KEY = "entropy_verl_coefficients"  # batch.extra_info key the driver writes, the workers read
SELECTION_PREFIX = "entropy_verl_select_"  # batch fields with the driver's per-token selections, one per method
SCHEDULED_PREFIX = "schedule/"  # broadcast keys of the loss methods' scheduled settings: schedule/<method>/<setting>


def scheduled_key(method: str, setting: str) -> str:
    """The broadcast key of a loss method's scheduled setting (``entropy_verl/schedule.py``)."""
    return f"{SCHEDULED_PREFIX}{method}/{setting}"


@dataclass
class LossContext:
    log_prob: torch.Tensor  # (bsz, T) current policy, with grad
    old_log_prob: torch.Tensor  # (bsz, T)
    advantages: torch.Tensor  # (bsz, T)
    response_mask: torch.Tensor  # (bsz, T) bool
    entropy: torch.Tensor | None  # (bsz, T) current policy, with grad; None unless calculate_entropy
    old_entropy: torch.Tensor | None  # (bsz, T) old policy, detached
    coefficients: dict[str, float] = field(default_factory=dict)  # controller outputs, e.g. {"alpha": 0.3}
    global_batch_info: dict = field(default_factory=dict)  # verl's normalisers for micro-batch-invariant means
    step_stats: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> the driver's whole-step stats
    selections: dict[str, torch.Tensor] = field(default_factory=dict)  # method -> (bsz, T) driver-side selection
    scheduled: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> {setting: this step's value}
    # sampling policy's full-vocabulary sums per token (Clip-V), only when a method needs them: sum p^2, sum p^2 log p
    old_sum_p2: torch.Tensor | None = None
    old_sum_p2_logp: torch.Tensor | None = None
    # the method being run: its statistics (whole-step or micro-batch, by its scope) and its driver-side selection
    stats: dict[str, float] = field(default_factory=dict)
    selection: torch.Tensor | None = None
    # the driver's whole-step context only (``of_sampling_policy``): values derived from its fields once and shared by
    # every method and the diagnostics of the step (``memoized``). Not an __init__ argument, so ``for_method``'s
    # dataclasses.replace does not copy it into a method's view; never compared.
    memo: StepMemo | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def of_sampling_policy(
        cls, old_log_prob, advantages, response_mask, old_entropy, old_sum_p2=None, old_sum_p2_logp=None
    ) -> LossContext:
        """The whole step's batch as the driver sees it before the update: only the sampling policy's quantities
        (what selection statistics and driver-side token selections are computed from)."""
        ctx = cls(
            log_prob=old_log_prob,
            old_log_prob=old_log_prob,
            advantages=advantages,
            response_mask=response_mask.to(bool),
            entropy=None,
            old_entropy=old_entropy,
            old_sum_p2=old_sum_p2,
            old_sum_p2_logp=old_sum_p2_logp,
        )
        ctx.memo = StepMemo()
        return ctx

    def for_method(self, spec, cfg) -> LossContext:
        """The view the registered method ``spec`` sees: its own ``stats`` and ``selection``, and every controller
        output it reads present. Missing driver values are an error, never a silent default."""
        stats = {}
        if spec.step_stats is not None:
            if getattr(cfg, "scope", "step") == "micro_batch":
                stats = spec.step_stats(self, cfg)
            elif spec.name in self.step_stats:
                stats = self.step_stats[spec.name]
            else:
                raise RuntimeError(
                    f"{spec.name} with scope 'step' needs the whole-step statistics the entropy_sync "
                    "trainer broadcasts; none arrived (trainer.v1.trainer_mode=entropy_sync, or scope: micro_batch)"
                )
        if spec.step_selection is not None and spec.name not in self.selections:
            raise RuntimeError(
                f"{spec.name} needs the token selection the entropy_sync trainer writes into the batch each "
                "step; none arrived (set trainer.v1.trainer_mode=entropy_sync)"
            )
        missing = [key for key in spec.reads_of(cfg) if key not in self.coefficients]
        if missing:
            raise RuntimeError(
                f"{spec.name} reads the controller output(s) {missing}, which the driver did not "
                f"broadcast this step (broadcast: {sorted(self.coefficients) or 'none'})"
            )
        return dataclasses.replace(self, stats=stats, selection=self.selections.get(spec.name))

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


SAMPLING_FIELDS = ("old_log_prob", "advantages", "response_mask", "old_entropy", "old_sum_p2", "old_sum_p2_logp")


class StepMemo:
    """Values derived from a context's sampling-policy fields (``SAMPLING_FIELDS``), valid while those fields are the
    same tensors, unmodified: a field replaced or changed in place (its version counter) drops every value."""

    def __init__(self):
        self.fields: tuple = ()  # ((tensor, version), ...) the values were computed from
        self.values: dict = {}

    def current(self, ctx: LossContext) -> dict:
        fields = tuple((t, _version(t)) for t in (getattr(ctx, name) for name in SAMPLING_FIELDS))
        same = len(fields) == len(self.fields) and all(
            a is b and va == vb for (a, va), (b, vb) in zip(fields, self.fields, strict=True)
        )
        if not same:
            self.fields, self.values = fields, {}
        return self.values


def _version(tensor: torch.Tensor | None) -> int:
    if tensor is None or tensor.is_inference():  # inference tensors keep no version counter
        return 0
    return tensor._version


def memoized(ctx: LossContext, key, compute):
    """``compute()``, computed once per step on the driver's whole-step context and shared; on any other context
    (a worker's micro-batch, a method's view) simply computed."""
    if ctx.memo is None:
        return compute()
    values = ctx.memo.current(ctx)
    if key not in values:
        values[key] = compute()
    return values[key]


def split_broadcast(values: dict[str, float]) -> tuple[dict[str, float], dict[str, dict[str, float]], dict]:
    """The driver's broadcast ``{"alpha": a, "clip_b/s_mean": m, "schedule/clip_b/mu": u, ...}`` -> (controller
    outputs, {method: stats}, {method: {scheduled setting: value}})."""
    coefficients, stats, scheduled = {}, {}, {}
    for key, value in values.items():
        if key.startswith(SCHEDULED_PREFIX):
            method, _, setting = key[len(SCHEDULED_PREFIX) :].partition("/")
            scheduled.setdefault(method, {})[setting] = value
            continue
        method, sep, stat = key.partition("/")
        if sep:
            stats.setdefault(method, {})[stat] = value
        else:
            coefficients[key] = value
    return coefficients, stats, scheduled


def build_loss_context(config, model_output: dict, data) -> LossContext:
    """The context of one micro-batch inside verl's actor loss (padded (bsz, T) tensors)."""
    from verl.utils import tensordict_utils as tu
    from verl.workers.utils.padding import no_padding_2_padding

    log_prob = no_padding_2_padding(model_output["log_probs"], data)
    entropy = model_output.get("entropy", None)
    if entropy is not None:
        entropy = no_padding_2_padding(entropy, data)
    keys = list(data.keys())
    selection_fields = [k for k in keys if isinstance(k, str) and k.startswith(SELECTION_PREFIX)]
    fields = (
        ["response_mask", "old_log_probs", "advantages"] + (["entropy"] if "entropy" in keys else []) + selection_fields
    )
    padded = data.select(*fields).to_padded_tensor()
    coefficients, step_stats, scheduled = split_broadcast(
        dict(tu.get_non_tensor_data(data=data, key=COEFFICIENTS_KEY, default=None) or {})
    )
    return LossContext(
        log_prob=log_prob,
        old_log_prob=padded["old_log_probs"],
        advantages=padded["advantages"],
        response_mask=padded["response_mask"].to(bool),
        entropy=entropy,
        old_entropy=padded.get("entropy", None),
        coefficients=coefficients,
        global_batch_info=dict(config.global_batch_info),
        step_stats=step_stats,
        selections={k[len(SELECTION_PREFIX) :]: padded[k] for k in selection_fields},
        scheduled=scheduled,
    )
