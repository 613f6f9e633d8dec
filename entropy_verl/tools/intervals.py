"""Confidence intervals across seeds, in pure Python (scipy is not a dependency): a mean's Student-t interval, the
difference of two means with Welch's interval, the paired interval of per-seed differences, and the t quantile they
need (any real degrees of freedom, as Welch's are). ``compare`` reports every value and every difference to the
baseline with these, and ``plot`` draws the same mean interval as each method's band."""

from __future__ import annotations

import math

LEVEL = 0.95  # two-sided confidence of every interval in the table


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) (Numerical Recipes' continued fraction, modified Lentz):
    scipy is not a dependency, and the t distribution's tail is I_{v/(v+t^2)}(v/2, 1/2)."""
    if x <= 0.0 or x >= 1.0:
        return max(0.0, min(1.0, x))
    if x > (a + 1.0) / (a + b + 2.0):  # the fraction converges fast only below this: I_x(a, b) = 1 - I_1-x(b, a)
        return 1.0 - betainc(b, a, 1.0 - x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 1000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    return math.exp(log_front) * fraction / a


def t_quantile(p: float, dof: float) -> float:
    """The ``p`` quantile of Student's t with ``dof`` (real, > 0) degrees of freedom: bisection on x = v/(v+t^2),
    where the two-sided tail P(|T| > t) = I_x(v/2, 1/2) is monotone."""
    if p < 0.5:
        return -t_quantile(1.0 - p, dof)
    tail, low, high = 2.0 * (1.0 - p), 0.0, 1.0
    for _ in range(200):
        x = (low + high) / 2
        if x in (low, high):
            break
        low, high = (low, x) if betainc(dof / 2, 0.5, x) > tail else (x, high)
    x = (low + high) / 2
    return math.sqrt(dof * (1.0 - x) / x) if x > 0 else math.inf


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1)."""
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else math.nan


def mean_interval(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of its ``LEVEL`` Student-t interval, n - 1 dof); the half-width is NaN for a single value."""
    mean, sd = mean_sd(values)
    if len(values) < 2:
        return mean, math.nan
    return mean, t_quantile((1 + LEVEL) / 2, len(values) - 1) * sd / math.sqrt(len(values))


def paired_interval(differences: list[float]) -> tuple[float, float]:
    """(mean, half-width of its ``LEVEL`` interval) of per-seed differences ``a_s - b_s`` between two methods run at
    the same seeds: the Student-t interval of the differences' mean (n - 1 dof, n the seeds both ran). What a seed
    gives both runs (data order, rollout seed) cancels in its difference, so where it correlates them this interval
    is narrower than Welch's over the same runs. NaN half-width for a single pair."""
    return mean_interval(differences)


def welch_interval(a: list[float], b: list[float]) -> tuple[float, float]:
    """(mean(a) - mean(b), half-width of Welch's ``LEVEL`` interval for it: unequal variances, Welch-Satterthwaite
    dof); NaN half-width unless both have two values or more."""
    (mean_a, sd_a), (mean_b, sd_b) = mean_sd(a), mean_sd(b)
    if len(a) < 2 or len(b) < 2:
        return mean_a - mean_b, math.nan
    va, vb = sd_a**2 / len(a), sd_b**2 / len(b)
    if va + vb == 0:
        return mean_a - mean_b, 0.0  # no spread at all: the difference is what it is
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return mean_a - mean_b, t_quantile((1 + LEVEL) / 2, dof) * math.sqrt(va + vb)


def holds(diff: float, half: float) -> bool:
    """A difference holds when its interval excludes zero."""
    return math.isfinite(half) and abs(diff) > half
