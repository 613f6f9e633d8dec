"""``run_parallel``: runs side by side, one driver log each; a failed run stops the batch and is named with its
log's tail (the side-by-side success path runs in tests/e2e/test_compare_harness.py)."""

import json
import os
import time

import pytest

from entropy_verl.tools.parallel_runs import (
    DRIVER_LOG,
    Job,
    build_embedded_default_once,
    progress_bar,
    run_parallel,
    steps_logged,
    uses_embedded_default,
)


def test_steps_logged_counts_training_steps_not_validations(tmp_path):
    assert steps_logged(str(tmp_path)) == 0
    rows = [{"step": 0, "data": {"val/pass@1": 0.3}}] + [{"step": i, "data": {"actor/entropy": 0.5}} for i in (1, 2)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert steps_logged(str(tmp_path)) == 2
    assert steps_logged(str(tmp_path), since=time.time() + 60) == 0  # an earlier run's file


def test_a_validation_alone_shows_its_elapsed_time_not_a_step_count(tmp_path):
    bars = [
        progress_bar(Job(label, (), str(tmp_path), steps), position=0) for label, steps in (("start", 0), ("GRPO", 4))
    ]
    bars[1].update(1)
    shown = [str(bar) for bar in bars]
    for bar in bars:
        bar.close()
    assert shown[0] == "start (validation): 00:00"
    assert shown[1].startswith("GRPO:  25%") and "1/4" in shown[1]


def test_a_failed_run_is_named_with_its_log_tail(tmp_path):
    jobs = [
        Job(
            f"run {i}",
            ("trainer.total_training_steps=0", f"entropy_verl.run_dir={tmp_path / str(i)}"),
            str(tmp_path / str(i)),
            2,
        )
        for i in (1, 2)
    ]
    with pytest.raises(SystemExit) as failed:
        run_parallel(jobs, at_once=2, poll_s=0.2)
    message = str(failed.value)
    assert "trainer.total_training_steps" in message and "failed (exit" in message
    assert f"{tmp_path}/1/{DRIVER_LOG}" in message or f"{tmp_path}/2/{DRIVER_LOG}" in message
    assert all(os.path.exists(tmp_path / str(i) / DRIVER_LOG) for i in (1, 2))


def test_runs_that_read_the_embedded_default_are_found_without_building_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ENTROPY_VERL_CACHE", str(tmp_path / "cache"))  # empty: resolving would start a build
    own_data = ("actor_rollout_ref.model.path=/m", "data.train_files=/t.parquet", "data.val_files=/v.parquet")
    assert uses_embedded_default(("method=nsr",))
    assert not uses_embedded_default(own_data)
    build_embedded_default_once([Job("own data", own_data, str(tmp_path / "run"), 1)])
    assert not (tmp_path / "cache").exists()
