"""Loss terms (EntroPIC's, the entropy bonus fixed or scheduled, Skywork's adaptive entropy bonus) against
hand-computed values, edge cases, and their direction on a toy softmax policy."""

import math

import pytest
import torch

from entropy_verl.losses import LossContext, run_method


def test_entropic_hand_computed(method):
    log_prob = torch.log(torch.tensor([[0.97, 0.5, 0.99, 0.96]]))  # current probabilities; ratios e^0.1, 1, e^-0.2, 1
    ctx = LossContext(
        log_prob=log_prob,
        old_log_prob=log_prob - torch.tensor([[0.1, 0.0, -0.2, 0.0]]),
        advantages=torch.tensor([[-2.0, 1.0, 0.5, 3.0]]),
        response_mask=torch.tensor([[1, 1, 1, 0]], dtype=torch.bool),
        entropy=None,
        old_entropy=None,
        coefficients={"alpha": 0.3},
    )
    spec, cfg = method("entropic", prob_threshold=0.95)
    loss, metrics = run_method(ctx, spec, cfg)
    # selected: tokens 0 and 2 (token 3 is padding); mean of -r|A| over them
    expected = 0.3 * (-(math.exp(0.1) * 2.0) - math.exp(-0.2) * 0.5) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert metrics["entropic/selected_frac"] == pytest.approx(2 / 3) and metrics["entropic/alpha"] == 0.3
    # this micro-batch holds 3 of the mini-batch's 6 valid tokens: its mean counts half
    ctx.global_batch_info = {"batch_num_tokens": 6, "dp_size": 1}
    assert run_method(ctx, spec, cfg)[0].item() == pytest.approx(expected / 2, rel=1e-6)


def test_entropic_edge_cases_are_finite_zero_and_a_missing_alpha_is_an_error(token_ctx, method):
    spec, cfg = method("entropic")
    no_selected = token_ctx([0.5, 0.6], [1.0, -1.0], [1, 1], coefficients={"alpha": 1.0})
    all_masked = token_ctx([0.99, 0.99], [1.0, -1.0], [0, 0], coefficients={"alpha": 1.0})
    for ctx in (no_selected, all_masked):
        loss, _ = run_method(ctx, spec, cfg)
        assert loss.item() == 0.0 and math.isfinite(loss.item())
    with pytest.raises(RuntimeError, match="'alpha'"):  # the driver broadcast no alpha: never a silent 0
        run_method(token_ctx([0.99, 0.99], [1.0, -1.0], [1, 1]), spec, cfg)


def test_adaptive_entropy_bonus_hand_computed(token_ctx, method):
    ctx = token_ctx(
        [0.5] * 4, [0.0] * 4, [1, 1, 1, 0], current_entropy=[0.5, 1.0, 0.2, 9.0], coefficients={"entropy_coef": 0.01}
    )
    spec, cfg = method("adaptive_entropy_bonus")
    loss, metrics = run_method(ctx, spec, cfg)
    assert loss.item() == pytest.approx(-0.01 * (0.5 + 1.0 + 0.2) / 3)
    assert metrics["adaptive_entropy_bonus/bonus"] == pytest.approx(1.7 / 3)
    ctx.entropy = None
    with pytest.raises(RuntimeError, match="calculate_entropy"):
        run_method(ctx, spec, cfg)


def test_entropy_bonus_hand_computed_with_its_own_or_the_scheduled_coefficient(token_ctx, method):
    ctx = token_ctx([0.5] * 4, [0.0] * 4, [1, 1, 1, 0], current_entropy=[0.5, 1.0, 0.2, 9.0])
    spec, cfg = method("entropy_bonus", coef=0.01)
    loss, metrics = run_method(ctx, spec, cfg)
    assert loss.item() == pytest.approx(-0.01 * 1.7 / 3) and metrics["entropy_bonus/bonus"] == pytest.approx(1.7 / 3)
    ctx.scheduled = {"entropy_bonus": {"coef": 0.03}}  # this step's value of a schedule, from the driver
    loss, metrics = run_method(ctx, spec, cfg)
    assert loss.item() == pytest.approx(-0.03 * 1.7 / 3) and metrics["entropy_bonus/coef"] == 0.03


def entropy_of(logits):
    p = torch.softmax(logits, -1)
    return -(p * p.log()).sum().item()


@pytest.mark.parametrize("alpha,direction", [(1.0, -1), (-1.0, +1)])
def test_entropic_direction_on_toy_softmax(alpha, direction, method):
    """alpha > 0 sharpens confident tokens (entropy falls); alpha < 0 flattens them (entropy rises)."""
    torch.manual_seed(0)
    logits = torch.tensor([4.0, 0.5, 0.0, -0.5, -1.0], requires_grad=True)  # p(token 0) ~ 0.96
    before = entropy_of(logits.detach())
    optimizer = torch.optim.SGD([logits], lr=0.5)
    spec, cfg = method("entropic", prob_threshold=0.9)
    for _ in range(20):
        tokens = torch.multinomial(torch.softmax(logits.detach(), -1), 64, replacement=True)
        log_prob = torch.log_softmax(logits, -1)[tokens][None]
        ctx = LossContext(
            log_prob=log_prob,
            old_log_prob=log_prob.detach(),
            advantages=torch.randn(1, 64),
            response_mask=torch.ones(1, 64, dtype=torch.bool),
            entropy=None,
            old_entropy=None,
            coefficients={"alpha": alpha},
        )
        loss, _ = run_method(ctx, spec, cfg)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = entropy_of(logits.detach())
    assert (after - before) * direction > 0.01, (before, after)


@pytest.mark.parametrize("name", ["adaptive_entropy_bonus", "entropy_bonus"])
def test_entropy_bonus_direction_on_toy_softmax(token_ctx, method, name):
    """Both bonuses raise the entropy (coefficient 0.5: the adaptive one's from the driver, the fixed one's own)."""
    logits = torch.tensor([3.0, 0.0, -1.0], requires_grad=True)
    before = entropy_of(logits.detach())
    optimizer = torch.optim.SGD([logits], lr=1.0)
    spec, cfg = method(name, **({"coef": 0.5} if name == "entropy_bonus" else {}))
    for _ in range(10):
        p = torch.softmax(logits, -1)
        ctx = token_ctx([0.5], [0.0], [1], coefficients={"entropy_coef": 0.5})
        ctx.entropy = -(p * p.log()).sum().reshape(1, 1)
        loss, _ = run_method(ctx, spec, cfg)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert entropy_of(logits.detach()) > before + 0.05
