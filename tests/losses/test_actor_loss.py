"""The entropy-aware actor loss through verl's real ``ppo_loss`` on a no-padding (nested) micro-batch, as verl's
actor hands it: token weights and shaped advantages reach verl's loss, and the driver's broadcast reaches each
method under its own name."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from verl.utils import tensordict_utils as tu
from verl.workers.config import FSDPActorConfig

from entropy_verl.losses import COEFFICIENTS_KEY, entropy_aware_loss
from entropy_verl.losses.context import split_broadcast


def nested(rows):
    return torch.nested.as_nested_tensor([torch.tensor(r) for r in rows], layout=torch.jagged)


def micro_batch(response_log_probs, advantages, prompt_len=2):
    """A micro-batch as verl's actor hands it to the loss: nested prompts/responses, rmpad log-probs of the whole
    sequences, in which the response token t is predicted at position prompt_len + t - 1."""
    seq_values, prompts, responses = [], [], []
    for lp in response_log_probs:
        prompts.append([1] * prompt_len)
        responses.append([2] * len(lp))
        seq_values += [0.0] * (prompt_len - 1) + list(lp) + [0.0]
    values = torch.tensor(seq_values, dtype=torch.float32, requires_grad=True)
    data = TensorDict(
        {
            "prompts": nested(prompts),
            "responses": nested(responses),
            "response_mask": nested([[1] * len(lp) for lp in response_log_probs]),
            "old_log_probs": nested([[float(x) for x in lp] for lp in response_log_probs]),
            "advantages": nested(advantages),
        },
        batch_size=len(response_log_probs),
    )
    for key, val in {"dp_size": 1, "batch_num_tokens": None, "global_batch_size": None}.items():
        tu.assign_non_tensor_data(data, key, val)
    return values, data


def ppo_actor_config():
    return FSDPActorConfig(strategy="fsdp2", ppo_mini_batch_size=2, ppo_micro_batch_size_per_gpu=2, rollout_n=1)


def test_entropy_aware_loss_applies_weights_inside_verls_ppo_loss(method):
    lp = [[math.log(0.5), math.log(0.25), math.log(0.8)], [math.log(0.4), math.log(0.9)]]
    adv = [[1.0, 1.0, 1.0], [-1.0, -1.0]]
    values, data = micro_batch(lp, adv)
    loss, metrics = entropy_aware_loss(
        ppo_actor_config(), {"log_probs": values}, data, methods=(method("pos_adv_reweight", lam=0.25),)
    )
    # on-policy r = 1: vanilla token-mean of -A*r*w = -(3*0.25*1 + 2*1*(-1)) / 5
    assert loss.item() == pytest.approx(-(0.75 - 2.0) / 5, rel=1e-6)
    loss.backward()
    # d loss / d logp_t = -A_t w_t / 5 at the response positions (prompt_len + t - 1 = 1, 2, 3 and 6, 7)
    assert values.grad[[1, 2, 3, 6, 7]].tolist() == pytest.approx([-0.05, -0.05, -0.05, 0.2, 0.2])
    assert "actor/pos_adv_reweight/lambda" in metrics
    # the caller's micro-batch is untouched
    assert "rollout_is_weights" not in data.keys()


def test_entropy_aware_loss_shaped_advantages_reach_verls_loss(method):
    lp = [[math.log(0.5), math.log(0.5)]]
    values, data = micro_batch(lp, [[1.0, -1.0]])
    data["entropy"] = nested([[1.0, 1.0]])
    loss, _ = entropy_aware_loss(
        ppo_actor_config(), {"log_probs": values}, data, methods=(method("entropy_adv", alpha=0.4, kappa=2.0),)
    )
    assert loss.item() == pytest.approx(-(1.4 - 0.6) / 2, rel=1e-6)


def test_a_scheduled_setting_in_the_broadcast_replaces_the_configs_value_and_is_logged(method):
    """The driver sends a loss method's scheduled setting with the step's coefficients: the worker runs the method
    with it (entropy_adv's alpha 0.2 instead of its config's 0.4) and logs what it used."""
    values, data = micro_batch([[math.log(0.5), math.log(0.5)]], [[1.0, -1.0]])
    data["entropy"] = nested([[1.0, 1.0]])
    tu.assign_non_tensor_data(data, COEFFICIENTS_KEY, {"schedule/entropy_adv/alpha": 0.2})
    loss, metrics = entropy_aware_loss(
        ppo_actor_config(), {"log_probs": values}, data, methods=(method("entropy_adv", alpha=0.4, kappa=2.0),)
    )
    assert loss.item() == pytest.approx(-(1.2 - 0.8) / 2, rel=1e-6)  # A + min(0.2 H, |A| / 2), H = 1
    for stat in ("min", "max"):
        assert metrics[f"entropy_verl/worker_coef/schedule/entropy_adv/alpha/{stat}"].aggregate() == 0.2


def test_the_drivers_broadcast_reaches_each_method_under_its_name_and_is_logged_per_worker(method):
    """Controller outputs and whole-step statistics travel as one extra_info dict; each method reads its own."""
    lp = [[math.log(0.97), math.log(0.5)], [math.log(0.99)]]
    values, data = micro_batch(lp, [[1.0, -1.0], [2.0]])
    data["entropy"] = nested([[0.1, 0.9], [0.5]])
    broadcast = {"alpha": 0.5, "top_entropy/threshold": 0.4, "clip_b/s_mean": 0.0, "clip_b/s_std": 1.0}
    tu.assign_non_tensor_data(data, COEFFICIENTS_KEY, broadcast)
    methods = (method("top_entropy"), method("entropic"))
    loss, metrics = entropy_aware_loss(ppo_actor_config(), {"log_probs": values}, data, methods=methods)
    assert (
        metrics["actor/top_entropy/threshold"].aggregate() == 0.4 and metrics["actor/entropic/alpha"].aggregate() == 0.5
    )
    for key, value in broadcast.items():  # one key per coefficient and statistic, not one per rank
        assert metrics[f"entropy_verl/worker_coef/{key}/min"].aggregate() == value
        assert metrics[f"entropy_verl/worker_coef/{key}/max"].aggregate() == value
    assert split_broadcast({**broadcast, "schedule/clip_b/mu": 2.0}) == (
        {"alpha": 0.5},
        {"top_entropy": {"threshold": 0.4}, "clip_b": {"s_mean": 0.0, "s_std": 1.0}},
        {"clip_b": {"mu": 2.0}},
    )
    # kept tokens (H >= 0.4): the second and third; EntroPIC's term on p > 0.95 tokens (1st and 3rd), alpha 0.5
    pg = -(1.0 * 0 + (-1.0) * 1 + 2.0 * 1) / 3
    term = 0.5 * -(1.0 + 2.0) / 2
    assert loss.item() == pytest.approx(pg + term, rel=1e-5)
