"""The comparison table from finished runs' metrics (the runs themselves are verl's trainer, tested elsewhere)."""

from __future__ import annotations

import os

import pytest

from entropy_verl.compare import format_table, method_row


def rows(entropies, rewards, step_s=(9.0, 2.0, 4.0)):
    return [
        {"step": i + 1, "actor/entropy": e, "critic/score/mean": r, "timing_s/step": t}
        for i, (e, r, t) in enumerate(zip(entropies, rewards, step_s, strict=True))
    ]


def test_method_row_start_end_window_and_step_time_without_warm_up():
    r = method_row("clip_b", rows([0.6, 0.5, 0.3], [0.2, 0.4, 0.6]), window=2)
    assert (
        r["entropy_start"] == 0.6 and r["entropy_end"] == pytest.approx(0.4) and r["reward_end"] == pytest.approx(0.5)
    )
    assert r["step_s"] == pytest.approx(3.0) and r["steps"] == 3


def test_table_has_a_row_per_method_and_the_difference_to_grpo():
    results = [
        method_row("grpo", rows([0.6, 0.5, 0.3], [0.2, 0.4, 0.6]), 2),
        method_row("nsr", rows([0.6, 0.6, 0.6], [0.2, 0.3, 0.3]), 2),
    ]
    table = format_table(results, 2).splitlines()
    assert len(table) == 4 and table[2].startswith("| grpo |") and table[3].startswith("| nsr |")
    assert "| 0.600 | 1.00 | +0.200 |" in table[3]  # end 0.6 vs GRPO's 0.4
    assert table[3].endswith("| 3.00 | 1.00x |")


def test_pass_at_k_of_the_last_validation_and_budget_overrides():
    from entropy_verl.compare import last_pass_at, merged

    rows = [
        {"step": 1, "val/pass@1": 0.1, "val/pass@8": 0.5},
        {"step": 2},
        {"step": 3, "val/pass@1": 0.2, "val/pass@8": 0.6},
        {"step": 4},
    ]
    assert last_pass_at(rows) == {1: 0.2, 8: 0.6}
    row = method_row(
        "x", [dict(r, **{"actor/entropy": 0.5, "critic/score/mean": 0.3, "timing_s/step": 1.0}) for r in rows], 2
    )
    assert row["pass@1"] == 0.2 and row["pass@n"] == 0.6 and row["n"] == 8
    assert merged(["a=1", "b=2"], ["b=3", "+c=4"]) == ["a=1", "b=3", "+c=4"]


def test_plot_draws_entropy_reward_and_pass_at_k_from_runs_jsonl(tmp_path):
    import json

    from entropy_verl.plot import main, pass_at_keys, smoothed

    for name, slope in (("grpo", -0.02), ("nsr", 0.0)):
        run = tmp_path / name
        run.mkdir()
        with open(run / "metrics.jsonl", "w") as f:
            for step in range(1, 11):
                data = {"actor/entropy": 0.6 + slope * step, "critic/score/mean": 0.3 + 0.01 * step}
                if step % 5 == 0:
                    data.update({"val/pass@1": 0.3, "val/pass@2": 0.4, "val/pass@8": 0.6})
                f.write(json.dumps({"step": step, "data": data}) + "\n")
    out = main([str(tmp_path / "grpo"), str(tmp_path / "nsr"), "--out", str(tmp_path / "fig.png")])
    data = open(out, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert pass_at_keys([{"val/pass@1": 1, "val/pass@8": 1, "val/pass@2": 1}]) == ["val/pass@1", "val/pass@8"]
    assert smoothed([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]


def write_jsonl(path, rows):
    import json

    path.write_text("".join(json.dumps({"step": step, "data": data}) + "\n" for step, data in rows))


def test_a_resumed_runs_metrics_are_kept_and_read_back_in_step_order(tmp_path):
    from entropy_verl.diagnostics.run_summary import archive_for_resume, drop_segments, load_metrics

    write_jsonl(
        tmp_path / "metrics.jsonl", [(1, {"x": 1.0}), (2, {"x": 2.0}), (3, {"x": 30.0})]
    )  # killed during step 4
    assert archive_for_resume(str(tmp_path)) == str(tmp_path / "metrics.1.jsonl")
    assert not (tmp_path / "metrics.jsonl").exists()
    # resumed from step 2's checkpoint: validates it first (val_before_train), then re-runs step 3
    write_jsonl(tmp_path / "metrics.jsonl", [(2, {"val": 0.5}), (3, {"x": 3.0}), (4, {"x": 4.0})])
    assert archive_for_resume(str(tmp_path)) == str(tmp_path / "metrics.2.jsonl")  # and a second resume
    write_jsonl(tmp_path / "metrics.jsonl", [(5, {"x": 5.0})])
    rows = load_metrics(str(tmp_path))
    assert rows == [
        {"step": 1, "x": 1.0},
        {"step": 2, "x": 2.0, "val": 0.5},
        {"step": 3, "x": 3.0},
        {"step": 4, "x": 4.0},
        {"step": 5, "x": 5.0},
    ]
    assert load_metrics(str(tmp_path / "metrics.jsonl")) == [{"step": 5, "x": 5.0}]  # one file: just that file
    (tmp_path / "nothing").mkdir()
    assert archive_for_resume(str(tmp_path / "nothing")) is None  # a first launch: nothing to keep
    assert sorted(map(os.path.basename, drop_segments(str(tmp_path)))) == ["metrics.1.jsonl", "metrics.2.jsonl"]
    assert load_metrics(str(tmp_path)) == [{"step": 5, "x": 5.0}]
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl in run directory"):
        load_metrics(str(tmp_path / "nothing"))


def test_a_validation_only_row_is_not_a_training_step():
    r = method_row(
        "x", [{"step": 0, "val/pass@1": 0.1, "val/pass@4": 0.3}, *rows([0.6, 0.5], [0.2, 0.4], (9.0, 2.0))], 1
    )
    assert r["steps"] == 2 and r["entropy_start"] == 0.6 and r["step_s"] == 2.0 and r["pass@1"] == 0.1
