"""``make bench-pipeline`` without the pipeline run: the bare-torch reference trains the embedded default, its GRPO
advantages (verl's) match hand-computed values, and the table is read from a verl-style metrics.jsonl (no timing
asserted)."""

import json
import math
import os
import sys

import pytest
import torch

from entropy_verl.tools.bench.pipeline import (
    ReferenceLoop,
    comparison,
    main,
    pipeline_markdown,
    pipeline_steps,
    run_pipeline,
    sample_advantages,
    timing_stats,
)
from entropy_verl.tools.bench.report import machine

SMALL = [  # 4 prompts x 4 samples, 2 mini-batches of 2 prompts, each in 2 micro-batches of 4 samples
    "data.train_batch_size=4",
    "actor_rollout_ref.rollout.n=4",
    "actor_rollout_ref.actor.ppo_mini_batch_size=2",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
]


def test_reference_loop_times_each_phase_and_trains_the_model(run_config):
    loop = ReferenceLoop(run_config(*SMALL))
    before = [p.detach().clone() for p in loop.model.parameters()]
    steps = [loop.step() for _ in range(2)]
    for times in steps:
        assert {"gen", "reward", "old_log_prob", "adv", "update_actor", "step"} <= times.keys()
        assert all(math.isfinite(t) and t > 0 for t in times.values())
        assert times["step"] >= times["gen"] + times["old_log_prob"] + times["update_actor"]
    changed = [not torch.equal(b, p) for b, p in zip(before, loop.model.parameters(), strict=True)]
    assert sum(changed) > len(changed) // 2


def test_sample_advantages_normalise_each_prompt_group():
    scores = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])  # two prompts, 3 samples each
    # group 1: mean 1/3, unbiased std sqrt(1/3); group 2: all equal, so 0 whatever the std
    std = math.sqrt(1 / 3)
    expected = torch.tensor([(2 / 3) / (std + 1e-6), (-1 / 3) / (std + 1e-6), (-1 / 3) / (std + 1e-6), 0.0, 0.0, 0.0])
    assert torch.allclose(sample_advantages(scores, 3), expected)
    assert torch.allclose(sample_advantages(scores, 3, norm_by_std=False), torch.tensor([2, -1, -1, 0, 0, 0]) / 3)
    assert torch.allclose(sample_advantages(scores, 1), scores)  # verl: a group of one keeps its score (mean 0, std 1)


def _write_metrics(run_dir, steps):
    run_dir.mkdir()
    with open(run_dir / "metrics.jsonl", "w") as f:
        for step, (gen, step_time) in enumerate(steps, start=1):
            data = {
                "timing_s/gen": gen,
                "timing_s/old_log_prob": 0.5,
                "timing_s/update_actor": 1.0,
                "timing_s/update_weights": 0.1,
                "timing_s/step": step_time,
                "actor/entropy": 0.5,
            }
            f.write(json.dumps({"step": step, "data": data}) + "\n")
        f.write(json.dumps({"step": len(steps), "data": {"val/score": 0.3}}) + "\n")  # a validation row: no timings


def test_table_reads_verl_timings_after_warmup_and_divides_by_the_reference(tmp_path):
    _write_metrics(tmp_path / "run", [(20.0, 60.0), (2.0, 4.0), (4.0, 6.0)])  # step 1 is start-up
    pipeline = timing_stats(pipeline_steps(str(tmp_path / "run")), warmup=1)
    assert pipeline["gen"] == {"mean": 3.0, "min": 2.0, "max": 4.0, "stdev": pytest.approx(math.sqrt(2)), "steps": 2}
    assert pipeline["step"]["mean"] == 5.0 and "update_weights" in pipeline
    bare = timing_stats([{"gen": 9.0, "old_log_prob": 9.0, "step": 9.0}] + [{"gen": 1.0, "step": 2.0}] * 2, warmup=1)
    rows = {row["phase"]: row for row in comparison(pipeline, bare)}
    assert rows["gen"]["ratio"] == 3.0 and rows["step"]["ratio"] == 2.5
    assert rows["old_log_prob"]["bare"] is None and rows["old_log_prob"]["ratio"] is None
    assert comparison(None, bare)[0]["ratio"] is None  # --skip-pipeline

    result = {
        "date": "2026-01-01T00:00:00+00:00",
        "git_commit": None,
        "machine": machine(),
        "command": "python -m entropy_verl.tools.bench.pipeline --steps 3 --warmup 1",
        "steps": 3,
        "warmup": 1,
        "pipeline": {"command": ["python", "-m", "entropy_verl.main"], "log": "pipeline.log", "wall_s": 70.0},
        "bare": {"timings": bare, "torch_threads": 2, "overrides": [], "settings": {}, "caveats": []},
        "phases": comparison(pipeline, bare),
    }
    result["pipeline"]["timings"] = pipeline
    markdown = pipeline_markdown(result)
    assert markdown.startswith("# verl pipeline vs bare-torch reference, s/step\n")
    assert "Command: `python -m entropy_verl.tools.bench.pipeline --steps 3 --warmup 1`" in markdown
    assert "2026-01-01T00:00:00+00:00, commit unknown." in markdown and f"{os.cpu_count()} CPUs" in markdown
    assert "| gen | 3 (2-4) | 1 (1-1) | 3.00x |" in markdown
    assert "| old_log_prob | 0.5 (0.5-0.5) | - | - |" in markdown
    assert "- pipeline `update_weights`: 0.1 (0.1-0.1)" in markdown


def test_timing_stats_refuses_a_warmup_that_leaves_no_step():
    with pytest.raises(ValueError, match="no steps left after the first 2"):
        timing_stats([{"step": 1.0}] * 2, warmup=2)


def test_baseline_column_shows_both_pipelines_ratios_to_the_bare_loop():
    bare = {"gen": {"mean": 1.0, "min": 1.0, "max": 1.0}, "step": {"mean": 2.0, "min": 2.0, "max": 2.0}}
    before = {"gen": {"mean": 4.0, "min": 3.0, "max": 5.0}, "step": {"mean": 8.0, "min": 8.0, "max": 8.0}}
    after = {"gen": {"mean": 2.0, "min": 2.0, "max": 2.0}, "step": {"mean": 5.0, "min": 5.0, "max": 5.0}}
    rows = {row["phase"]: row for row in comparison(after, bare, before)}
    assert rows["gen"]["baseline_ratio"] == 4.0 and rows["gen"]["ratio"] == 2.0
    assert rows["step"]["baseline_ratio"] == 4.0 and rows["step"]["ratio"] == 2.5
    run = {"command": ["python", "-m", "entropy_verl.main"], "log": "x.log", "wall_s": 60.0}
    result = {
        "date": "2026-01-01T00:00:00+00:00",
        "git_commit": "abc1234",
        "machine": machine(),
        "command": "python -m entropy_verl.tools.bench.pipeline --baseline /tmp/before",
        "steps": 3,
        "warmup": 1,
        "baseline": {**run, "timings": before, "checkout": "/tmp/before", "git_commit": "0123abc"},
        "pipeline": {**run, "timings": after},
        "bare": {"timings": bare, "torch_threads": 2, "overrides": [], "settings": {}, "caveats": []},
        "phases": list(rows.values()),
    }
    markdown = pipeline_markdown(result)
    assert "commit abc1234." in markdown and "| phase | baseline (0123abc) | pipeline (this checkout) |" in markdown
    assert "| step | 8 (8-8) | 5 (5-5) | 2 (2-2) | 4.00x | 2.50x |" in markdown
    assert "- baseline: `python -m entropy_verl.main` (from /tmp/before, 60s in all" in markdown


def test_a_baseline_checkout_is_imported_before_the_installed_package(tmp_path):
    (tmp_path / "entropy_verl").mkdir()
    (tmp_path / "entropy_verl" / "__init__.py").write_text("")
    log = tmp_path / "out.log"
    run_pipeline([sys.executable, "-c", "import entropy_verl; print(entropy_verl.__file__)"], str(log), str(tmp_path))
    assert log.read_text().strip() == str(tmp_path / "entropy_verl" / "__init__.py")


def test_baseline_must_be_a_checkout(tmp_path):
    with pytest.raises(SystemExit):
        main(["--baseline", str(tmp_path), "--out", str(tmp_path / "out")])
