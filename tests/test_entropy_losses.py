"""Entropy loss terms against hand-computed values, edge cases, and their direction on a toy softmax policy."""

import math

import pytest
import torch

from entropy_verl.losses import EntropyLossConfig, LossContext, get_loss_method
from entropy_verl.losses.entropic import EntroPICTermConfig, entropic_term
from entropy_verl.losses.entropy_bonus import AdaptiveEntropyBonusConfig, adaptive_entropy_bonus_term


def context(probs, ratio_log, adv, mask, entropy=None, coefficients=None, global_batch_info=None):
    log_prob = torch.log(torch.tensor([probs]))
    return LossContext(
        log_prob=log_prob,
        old_log_prob=log_prob - torch.tensor([ratio_log]),
        advantages=torch.tensor([adv]),
        response_mask=torch.tensor([mask], dtype=torch.bool),
        entropy=None if entropy is None else torch.tensor([entropy]),
        old_entropy=None,
        coefficients=coefficients or {},
        global_batch_info=global_batch_info or {},
    )


def test_entropic_hand_computed():
    ctx = context([0.97, 0.5, 0.99, 0.96], [0.1, 0.0, -0.2, 0.0], [-2.0, 1.0, 0.5, 3.0], [1, 1, 1, 0], coefficients={"alpha": 0.3})
    loss, metrics = entropic_term(ctx, EntroPICTermConfig(prob_threshold=0.95))
    # selected: tokens 0 and 2 (token 3 is padding); mean of -r|A| over them
    expected = 0.3 * (-(math.exp(0.1) * 2.0) - math.exp(-0.2) * 0.5) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert metrics["entropic/selected_frac"] == pytest.approx(2 / 3)
    # this micro-batch holds 3 of the mini-batch's 6 valid tokens: its mean counts half
    ctx.global_batch_info = {"batch_num_tokens": 6, "dp_size": 1}
    assert entropic_term(ctx, EntroPICTermConfig())[0].item() == pytest.approx(expected / 2, rel=1e-6)


def test_entropic_edge_cases_are_finite_zero():
    no_selected = context([0.5, 0.6], [0.0, 0.0], [1.0, -1.0], [1, 1], coefficients={"alpha": 1.0})
    all_masked = context([0.99, 0.99], [0.0, 0.0], [1.0, -1.0], [0, 0], coefficients={"alpha": 1.0})
    no_alpha = context([0.99, 0.99], [0.0, 0.0], [1.0, -1.0], [1, 1])
    for ctx in (no_selected, all_masked, no_alpha):
        loss, _ = entropic_term(ctx, EntroPICTermConfig())
        assert loss.item() == 0.0 and math.isfinite(loss.item())


def test_adaptive_entropy_bonus_hand_computed():
    ctx = context([0.5] * 4, [0.0] * 4, [0.0] * 4, [1, 1, 1, 0], entropy=[0.5, 1.0, 0.2, 9.0], coefficients={"entropy_coef": 0.01})
    loss, metrics = adaptive_entropy_bonus_term(ctx, AdaptiveEntropyBonusConfig())
    assert loss.item() == pytest.approx(-0.01 * (0.5 + 1.0 + 0.2) / 3)
    assert metrics["adaptive_entropy/bonus"] == pytest.approx(1.7 / 3)
    ctx.entropy = None
    with pytest.raises(RuntimeError, match="calculate_entropy"):
        adaptive_entropy_bonus_term(ctx, AdaptiveEntropyBonusConfig())


def entropy_of(logits):
    p = torch.softmax(logits, -1)
    return -(p * p.log()).sum().item()


@pytest.mark.parametrize("alpha,direction", [(1.0, -1), (-1.0, +1)])
def test_entropic_direction_on_toy_softmax(alpha, direction):
    """alpha > 0 sharpens confident tokens (entropy falls); alpha < 0 flattens them (entropy rises)."""
    torch.manual_seed(0)
    logits = torch.tensor([4.0, 0.5, 0.0, -0.5, -1.0], requires_grad=True)  # p(token 0) ~ 0.96
    before = entropy_of(logits.detach())
    optimizer = torch.optim.SGD([logits], lr=0.5)
    for _ in range(20):
        tokens = torch.multinomial(torch.softmax(logits.detach(), -1), 64, replacement=True)
        log_prob = torch.log_softmax(logits, -1)[tokens][None]
        ctx = LossContext(
            log_prob=log_prob, old_log_prob=log_prob.detach(), advantages=torch.randn(1, 64),
            response_mask=torch.ones(1, 64, dtype=torch.bool), entropy=None, old_entropy=None,
            coefficients={"alpha": alpha},
        )
        loss, _ = entropic_term(ctx, EntroPICTermConfig(prob_threshold=0.9))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = entropy_of(logits.detach())
    assert (after - before) * direction > 0.01, (before, after)


def test_adaptive_entropy_bonus_direction_on_toy_softmax():
    logits = torch.tensor([3.0, 0.0, -1.0], requires_grad=True)
    before = entropy_of(logits.detach())
    optimizer = torch.optim.SGD([logits], lr=1.0)
    for _ in range(10):
        p = torch.softmax(logits, -1)
        entropy = -(p * p.log()).sum()
        ctx = context([0.5], [0.0], [0.0], [1], coefficients={"entropy_coef": 0.5})
        ctx.entropy = entropy.reshape(1, 1)
        loss, _ = adaptive_entropy_bonus_term(ctx, AdaptiveEntropyBonusConfig())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert entropy_of(logits.detach()) > before + 0.05


def test_loss_config_rejects_unknown_methods_and_bad_values():
    with pytest.raises(KeyError, match="unknown entropy loss method 'entropix'"):
        EntropyLossConfig(methods=["entropix"]).build()
    with pytest.raises(ValueError, match="prob_threshold"):
        EntropyLossConfig(methods=["entropic"], method_configs={"entropic": {"prob_threshold": 1.5}}).build()
    built = EntropyLossConfig(methods=["entropic"], method_configs={"entropic": {"prob_threshold": 0.9}}).build()
    assert built[0][0] is get_loss_method("entropic") and built[0][1].prob_threshold == 0.9
