"""Every metric key entropy_verl writes, and every one it reads back, built from the constants and functions here:
the code that logs a key and the code that parses it (tools, summaries) share them, so a renamed key cannot leave a
reader behind. verl's own keys that we read are here too.

==========================================  =================================  =========================================
key                                         written by                         what
==========================================  =================================  =========================================
``actor/<method>/<stat>``                   ``losses/actor_loss`` (workers)    a loss method's own statistics
``entropy_verl/<estimator>/<stat>``         ``trainer/sync`` (driver)          an advantage estimator's statistics
``entropy_verl/driver_coef/<coefficient>``  ``trainer/sync``                   what the driver broadcast this step
``entropy_verl/schedule/<entry>/<setting>`` ``trainer/control``                a scheduled setting's value this step
``entropy_verl/worker_coef/<c>/{min,max}``  ``losses/actor_loss``              what the workers used, over all ranks
                                                                               (verl prefixes ``actor/``)
``entropy_verl/worker_coef_mismatch_steps`` ``trainer/sync``                   steps on which some rank used another
                                                                               value than the driver sent (ever: 0)
``entropy_verl/rollout_log_prob_gap/<s>``   ``trainer/sync``                   rollout vs trainer log-probs (also
                                                                               by the weights that sampled a token)
``entropy_verl/partial_rollout/<stat>``     ``trainer/sync``                   resumed trajectories' tokens
``entropy_control/<controller>/<stat>``     ``trainer/sync``                   a controller's measurement, error,
                                                                               outputs and state
``entropy_control/nonfinite/<stat>``        ``trainer/safety``                 bad steps, in a row and in all, and the
                                                                               step's non-finite values by kind
``entropy/<stat>``                          ``diagnostics/token_stats``        the step's entropy diagnostics
``entropy/<data_source>/<stat>``            ``diagnostics/token_stats``        entropy mean, quantiles per data source
                                                                               (steps whose batch holds several)
``val/pass@<k>``, ``val/distinct_correct``  ``diagnostics/step``               held-out pass@k, distinct correct answers
``val-core/<data_source>/pass@<k>``, ...    ``diagnostics/step``               the same per data source (verl's style)
``entropy_law/<stat>``                      ``diagnostics/step``               the entropy-performance law's pairs, fit
==========================================  =================================  =========================================

Pure Python: the tools import it without torch or verl.
"""

from __future__ import annotations

import re

# ---- verl's own keys, read by the summaries and tools ---------------------------------------------------------------
# the step's rollout entropy under the trainer's policy, aggregated with the actor's loss_agg_mode: the token mean only
# under token-mean (Dr. GRPO's seq-mean-token-sum-norm divides the token sum by a constant); ``TOKEN_MEAN_ENTROPY`` is
# the token mean whatever the mode
ENTROPY = "actor/entropy"
REWARD = "critic/score/mean"  # mean training reward of the step
STEP_TIME = "timing_s/step"
TIMING_PREFIX = "timing_s/"  # verl's per-phase times: timing_s/gen, timing_s/update_actor, ...
_VERL_VAL_REWARD = re.compile(r"^val-(core|aux)/[^/]+/reward/mean@\d+$")  # val-core/<data_source>/reward/mean@<n>


def is_verl_val_reward(key: str) -> bool:
    """verl's own mean validation reward of one data source."""
    return bool(_VERL_VAL_REWARD.match(key))


# ---- held-out validation --------------------------------------------------------------------------------------------
VAL = "val"
DISTINCT_CORRECT = f"{VAL}/distinct_correct"  # distinct correct final answers per prompt
PROMPTS_MISSING_SAMPLES = f"{VAL}/prompts_missing_samples"
_PASS_AT = re.compile(rf"^{VAL}/pass@(\d+)$")


def val_core(data_source: str, stat: str) -> str:
    """A validation statistic of one data source, named as verl names its own (``val-core/<data_source>/...``)."""
    return f"val-core/{data_source}/{stat}"


def pass_at(k: int, data_source: str | None = None) -> str:
    """``val/pass@k`` over all held-out prompts, or ``val-core/<data_source>/pass@k`` over one source's."""
    return f"{VAL}/pass@{k}" if data_source is None else val_core(data_source, f"pass@{k}")


def distinct_correct(data_source: str | None = None) -> str:
    return DISTINCT_CORRECT if data_source is None else val_core(data_source, "distinct_correct")


def pass_at_k_of(key: str) -> int | None:
    """``val/pass@8`` -> 8; None for any other key."""
    match = _PASS_AT.match(key)
    return int(match.group(1)) if match else None


def pass_at_values(row: dict) -> dict[int, float]:
    """{k: pass@k} of one logged row (empty when the row holds no validation)."""
    return {k: value for key, value in row.items() if (k := pass_at_k_of(key)) is not None}


# ---- the entropy-performance law ------------------------------------------------------------------------------------
LAW = "entropy_law"
LAW_ENTROPY = f"{LAW}/entropy"  # the policy entropy paired with a validation
LAW_REWARD = f"{LAW}/reward"  # that validation's mean reward


def law(stat: str) -> str:
    return f"{LAW}/{stat}"


# ---- per-step entropy diagnostics -----------------------------------------------------------------------------------
def diagnostic(stat: str, data_source: str | None = None) -> str:
    return f"entropy/{stat}" if data_source is None else f"entropy/{data_source}/{stat}"


TOKEN_MEAN_ENTROPY = diagnostic("token_mean")  # what the controllers measure: every valid token's entropy, averaged


def entropy_key(rows: list[dict]) -> str:
    """The key of a run's per-step token-mean entropy: ``TOKEN_MEAN_ENTROPY`` where every training row has it, else
    verl's ``ENTROPY`` (runs from before it was logged: the same number under loss_agg_mode token-mean)."""
    train = [row for row in rows if ENTROPY in row]
    return TOKEN_MEAN_ENTROPY if train and all(TOKEN_MEAN_ENTROPY in row for row in train) else ENTROPY


# ---- driver-side control --------------------------------------------------------------------------------------------
CONTROL = "entropy_control"
NONFINITE_CONSECUTIVE = f"{CONTROL}/nonfinite/consecutive"
NONFINITE_TOTAL = f"{CONTROL}/nonfinite/total"


def nonfinite(kind: str) -> str:
    """Non-finite values of one kind in the step (``trainer/safety.KINDS``)."""
    return f"{CONTROL}/nonfinite/{kind}"


def controller(name: str, stat: str) -> str:
    return f"{CONTROL}/{name}/{stat}"


OURS = "entropy_verl"


def estimator(stat: str) -> str:
    """``stat`` is ``<estimator>/<stat>`` (as ``advantages.estimator_inputs`` yields them)."""
    return f"{OURS}/{stat}"


def schedule(entry: str, setting: str) -> str:
    """The value a scheduled setting has this step (``entropy_verl/schedule.py``)."""
    return f"{OURS}/schedule/{entry}/{setting}"


def driver_coef(coefficient: str) -> str:
    return f"{OURS}/driver_coef/{coefficient}"


WORKER_STATS = ("min", "max")  # over every rank and micro-batch (verl's MIN / MAX metric aggregation)
WORKER_COEF_MISMATCH = f"{OURS}/worker_coef_mismatch_steps"


def worker_coef(coefficient: str, stat: str) -> str:
    """The key a worker logs (``stat``: min or max); verl's logger shows it as ``actor/`` + this (``logged=True``)."""
    return f"{OURS}/worker_coef/{coefficient}/{stat}"


def worker_coef_logged(coefficient: str, stat: str) -> str:
    return method(worker_coef(coefficient, stat))


def rollout_log_prob_gap(stat: str) -> str:
    return f"{OURS}/rollout_log_prob_gap/{stat}"


def partial_rollout(stat: str) -> str:
    """Tokens of trajectories cut by a weight sync and resumed (async modes; named so that verl's per-local-update
    aggregation sums what is a count: "..._total")."""
    return f"{OURS}/partial_rollout/{stat}"


def method(stat: str) -> str:
    """``stat`` is ``<method>/<stat>`` (as the loss methods' statistics are keyed)."""
    return f"actor/{stat}"
