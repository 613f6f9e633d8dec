"""The comparison table from finished runs' metrics (the runs themselves are verl's trainer, tested elsewhere)."""

from __future__ import annotations

import pytest

from entropy_verl.compare import format_table, method_row


def rows(entropies, rewards, step_s=(9.0, 2.0, 4.0)):
    return [{"step": i + 1, "actor/entropy": e, "critic/score/mean": r, "timing_s/step": t}
            for i, (e, r, t) in enumerate(zip(entropies, rewards, step_s))]


def test_method_row_start_end_window_and_step_time_without_warm_up():
    r = method_row("clip_b", rows([0.6, 0.5, 0.3], [0.2, 0.4, 0.6]), window=2)
    assert r["entropy_start"] == 0.6 and r["entropy_end"] == pytest.approx(0.4) and r["reward_end"] == pytest.approx(0.5)
    assert r["step_s"] == pytest.approx(3.0) and r["steps"] == 3


def test_table_has_a_row_per_method_and_the_difference_to_grpo():
    results = [method_row("embedded_grpo", rows([0.6, 0.5, 0.3], [0.2, 0.4, 0.6]), 2),
               method_row("nsr", rows([0.6, 0.6, 0.6], [0.2, 0.3, 0.3]), 2)]
    table = format_table(results, 2).splitlines()
    assert len(table) == 4 and table[2].startswith("| embedded_grpo |") and table[3].startswith("| nsr |")
    assert "| 0.600 | 1.00 | +0.200 |" in table[3]  # end 0.6 vs GRPO's 0.4
