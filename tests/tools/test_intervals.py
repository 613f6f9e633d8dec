"""The interval math of ``make compare --seeds`` against tables, closed forms and hand-computed values."""

from __future__ import annotations

import pytest


def test_t_quantile_matches_the_tables_and_the_closed_forms():
    import math

    from entropy_verl.tools.intervals import t_quantile

    # t_{0.975, dof} from any t table
    table = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 9: 2.2622, 30: 2.0423, 10**7: 1.9600}
    for dof, value in table.items():
        assert t_quantile(0.975, dof) == pytest.approx(value, abs=5e-5), dof
    for p in (0.6, 0.9, 0.975, 0.999):  # closed forms: Cauchy (1 dof) and 2 dof
        assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9)
        assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-9)
        assert t_quantile(1 - p, 3) == pytest.approx(-t_quantile(p, 3), rel=1e-12)
    assert t_quantile(0.5, 3) == 0.0


def test_t_quantile_at_a_welch_dof_agrees_with_the_integrated_density():
    import math

    from entropy_verl.tools.intervals import t_quantile

    dof = 50 / 17  # Welch's dof for [1, 2, 3] against [2, 4, 6]
    t = t_quantile(0.975, dof)
    assert t_quantile(0.975, 3) < t < t_quantile(0.975, 2)
    scale = math.exp(math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2)) / math.sqrt(dof * math.pi)
    density = [scale * (1 + (t * i / 2000) ** 2 / dof) ** (-(dof + 1) / 2) for i in range(2001)]
    simpson = t / 2000 / 3 * (density[0] + density[-1] + sum((4 if i % 2 else 2) * density[i] for i in range(1, 2000)))
    assert simpson == pytest.approx(0.475, abs=1e-9)  # P(0 < T < t) = 0.975 - 0.5


def test_mean_and_welch_intervals_by_hand():
    import math

    from entropy_verl.tools.intervals import holds, mean_interval, t_quantile, welch_interval

    mean, half = mean_interval([1.0, 2.0, 3.0])  # sd 1, se 1/sqrt(3), t_{0.975,2} 4.30265
    assert mean == 2.0 and half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert mean_interval([0.5])[0] == 0.5 and math.isnan(mean_interval([0.5])[1])
    # equal variances and sizes: Welch's dof is 2 (n - 1) = 4, se sqrt(1/3 + 1/3)
    diff, half = welch_interval([1.0, 2.0, 3.0], [3.0, 4.0, 5.0])
    assert diff == -2.0 and half == pytest.approx(2.776445 * math.sqrt(2 / 3), rel=1e-6)
    assert not holds(diff, half)  # [-4.27, 0.27] holds 0
    diff, half = welch_interval([1.0, 2.0, 3.0], [5.0, 6.0, 7.0])
    assert diff == -4.0 and holds(diff, half)  # [-6.27, -1.73]
    # unequal variances: se^2 = 1/3 + 4/3, dof = (5/3)^2 / ((1/3)^2 / 2 + (4/3)^2 / 2) = 50/17
    diff, half = welch_interval([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])
    assert diff == -2.0 and half == pytest.approx(t_quantile(0.975, 50 / 17) * math.sqrt(5 / 3), rel=1e-12)
    assert welch_interval([1.0, 1.0], [2.0, 2.0]) == (-1.0, 0.0) and holds(-1.0, 0.0)  # no spread at all
    assert math.isnan(welch_interval([1.0], [2.0, 3.0])[1]) and not holds(-1.5, math.nan)


def test_paired_interval_by_hand_and_narrower_than_welch_where_seeds_correlate():
    import math

    from entropy_verl.tools.intervals import holds, paired_interval, welch_interval

    # the seeds move both methods alike (a: 1, 2, 3; b: 1.5, 2.4, 3.7): per-seed differences -0.5, -0.4, -0.7, mean
    # -8/15; deviations 1/30, 2/15, -1/6, sum of squares 42/900, sd^2 = 21/900; half 4.302653 sqrt(21/900) / sqrt(3)
    a, b = [1.0, 2.0, 3.0], [1.5, 2.4, 3.7]
    diff, half = paired_interval([x - y for x, y in zip(a, b, strict=True)])
    assert diff == pytest.approx(-8 / 15, rel=1e-12) and half == pytest.approx(4.302653 * math.sqrt(7) / 30, rel=1e-6)
    assert holds(diff, half)  # [-0.91, -0.15]
    welch_diff, welch_half = welch_interval(a, b)  # the seed-to-seed spread (sd 1 and 1.10) is in Welch's interval
    assert welch_diff == pytest.approx(diff, rel=1e-12) and welch_half > 6 * half and not holds(welch_diff, welch_half)
    assert paired_interval([0.2, 0.2]) == (0.2, 0.0)  # the same difference at every seed
    assert paired_interval([0.3])[0] == 0.3 and math.isnan(paired_interval([0.3])[1])  # one pair: no interval
