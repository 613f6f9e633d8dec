"""The entropy-performance law (Cui et al., "The Entropy Mechanism of Reinforcement Learning for Reasoning Language
Models", arXiv:2505.22617, Sec. 3, Eq. 2): validation reward R = -a * exp(H) + b. Fitted on a run's early
(entropy, reward) pairs it predicts later reward; the predicted ceiling at H = 0 is b - a.

Least squares on x = exp(H) (R is linear in x), online as validations arrive and offline on finished runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from entropy_verl import metric_names

MIN_POINTS = 3


@dataclass(frozen=True)
class LawFit:
    a: float
    b: float
    rmse: float
    points: int

    @property
    def ceiling(self) -> float:
        return self.b - self.a

    def predict(self, entropy: float) -> float:
        return -self.a * math.exp(entropy) + self.b


def fit_entropy_law(entropies: Sequence[float], rewards: Sequence[float]) -> LawFit | None:
    """Least-squares (a, b) or None with fewer than MIN_POINTS pairs or no spread in entropy."""
    if len(entropies) != len(rewards):
        raise ValueError(f"{len(entropies)} entropies but {len(rewards)} rewards")
    n = len(entropies)
    if n < MIN_POINTS:
        return None
    x = [math.exp(h) for h in entropies]
    mx, mr = sum(x) / n, sum(rewards) / n
    sxx = sum((xi - mx) ** 2 for xi in x)
    if sxx < 1e-12 * max(1.0, mx * mx):
        return None
    slope = sum((xi - mx) * (ri - mr) for xi, ri in zip(x, rewards, strict=True)) / sxx
    fit = LawFit(a=-slope, b=mr - slope * mx, rmse=math.nan, points=n)
    return replace(fit, rmse=prediction_rmse(fit, entropies, rewards))


def prediction_rmse(fit: LawFit, entropies: Sequence[float], rewards: Sequence[float]) -> float:
    """Root-mean-square error of ``fit``'s predicted rewards (on its own points, or held-out ones); NaN for none."""
    if not entropies:
        return math.nan
    return math.sqrt(sum((fit.predict(h) - r) ** 2 for h, r in zip(entropies, rewards, strict=True)) / len(entropies))


@dataclass
class OnlineEntropyLaw:
    """Accumulates (entropy, validation reward) pairs; ``metrics()`` is empty until a fit exists."""

    entropies: list[float] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)

    def add(self, entropy: float, reward: float) -> None:
        self.entropies.append(float(entropy))
        self.rewards.append(float(reward))

    def metrics(self) -> dict[str, float]:
        fit = fit_entropy_law(self.entropies, self.rewards)
        if fit is None:
            return {}
        return {
            metric_names.law("a"): fit.a,
            metric_names.law("b"): fit.b,
            metric_names.law("ceiling"): fit.ceiling,
            metric_names.law("rmse"): fit.rmse,
            metric_names.law("points"): float(fit.points),
        }

    def state_dict(self) -> dict:
        return {"entropies": list(self.entropies), "rewards": list(self.rewards)}

    def load_state_dict(self, state: dict) -> None:
        self.entropies, self.rewards = list(state["entropies"]), list(state["rewards"])
