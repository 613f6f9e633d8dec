"""A run's state on disk (entropy_verl/run_state.py): metric segments across resumes, which checkpoint verl resumes,
the controller-state file next to a checkpoint."""

from __future__ import annotations

import json
import math
import os

import pytest
from omegaconf import OmegaConf

from entropy_verl.run_state import (
    STATE_FILE,
    archive_for_resume,
    checkpoint_folder,
    drop_segments,
    load_metrics,
    read_state,
    resume_folder,
    write_state,
)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps({"step": step, "data": data}) + "\n" for step, data in rows))


def test_a_resumed_runs_metrics_are_kept_and_read_back_in_step_order(tmp_path):
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


def trainer(**values):
    return OmegaConf.create({"resume_mode": "auto", "resume_from_path": None, **values})


def test_the_resumed_checkpoint_is_the_one_verl_loads(tmp_path, monkeypatch):
    root = tmp_path / "ckpt"
    assert resume_folder(trainer(resume_mode="disable", default_local_dir=str(root))) is None
    assert resume_folder(trainer(default_local_dir=str(root))) is None  # auto, nothing saved yet: starts afresh
    (root / "global_step_6").mkdir(parents=True)
    (root / "latest_checkpointed_iteration.txt").write_text("6")
    assert resume_folder(trainer(default_local_dir=str(root))) == str(root / "global_step_6")
    assert resume_folder(trainer(resume_mode="disable", default_local_dir=str(root))) is None
    monkeypatch.chdir(tmp_path)  # verl reads a relative resume_from_path against the working directory
    chosen = trainer(resume_mode="resume_path", resume_from_path="ckpt/global_step_2", default_local_dir=str(root))
    assert resume_folder(chosen) == str(tmp_path / "ckpt" / "global_step_2")
    assert resume_folder(trainer(resume_mode="resume_path", default_local_dir=str(root))) is None
    assert checkpoint_folder(str(root), 6) == str(root / "global_step_6")


def test_state_round_trips_and_a_non_finite_coefficient_is_never_stored(tmp_path):
    state = {
        "coefficients": {"alpha": 0.25},
        "controllers": {"pi": {"integral": 1.5, "last": {"measurement": math.nan}}},  # a skipped step's reading
    }
    path = write_state(str(tmp_path / "global_step_3"), state)
    assert path == str(tmp_path / "global_step_3" / STATE_FILE) and not os.path.exists(path + ".tmp")
    restored = read_state(str(tmp_path / "global_step_3"))
    assert restored["coefficients"] == {"alpha": 0.25} and restored["controllers"]["pi"]["integral"] == 1.5
    with pytest.raises(ValueError, match="Out of range float"):
        write_state(str(tmp_path / "global_step_4"), {**state, "coefficients": {"alpha": math.nan}})
    assert not os.path.exists(tmp_path / "global_step_4" / STATE_FILE)
    with pytest.raises(FileNotFoundError, match=f"no controller state at .*global_step_5.*{STATE_FILE}"):
        read_state(str(tmp_path / "global_step_5"))
    (tmp_path / "global_step_3" / STATE_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="cannot be read"):
        read_state(str(tmp_path / "global_step_3"))


def test_open_run_dir_under_verls_own_config_adds_the_directory_and_our_metrics_file(tmp_path, monkeypatch):
    from entropy_verl.run_state import open_run_dir, point_loggers

    monkeypatch.chdir(tmp_path)
    for variable in ("VERL_FILE_LOGGER_PATH", "TENSORBOARD_DIR", "WANDB_DIR", "SWANLAB_LOG_DIR", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(variable, raising=False)
    config = OmegaConf.create(  # verl's own config: no entropy_verl block, wandb only
        {
            "trainer": {
                "project_name": "p",
                "experiment_name": "e",
                "logger": ["console", "wandb"],
                "resume_mode": "auto",
            }
        }
    )
    config.trainer.default_local_dir = str(tmp_path / "ckpt")
    run_dir = open_run_dir(config)
    assert run_dir == str(tmp_path / "outputs" / "p" / "e") and os.path.isdir(run_dir)
    assert config.entropy_verl.run_dir == run_dir and list(config.trainer.logger) == ["console", "wandb", "file"]
    assert os.environ["VERL_FILE_LOGGER_PATH"] == os.path.join(run_dir, "metrics.jsonl")
    monkeypatch.setenv("TENSORBOARD_DIR", "/elsewhere")  # the user's own setting wins
    point_loggers(run_dir)
    assert os.environ["TENSORBOARD_DIR"] == "/elsewhere" and os.environ["WANDB_DIR"] == run_dir + os.sep
    assert os.environ["SWANLAB_LOG_DIR"] == os.path.join(run_dir, "swanlog")
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///" + os.path.join(run_dir, "mlruns.db")
    (tmp_path / "outputs" / "p" / "e" / "metrics.jsonl").write_text('{"step": 1, "data": {}}\n')
    assert open_run_dir(config) == run_dir and (tmp_path / "outputs" / "p" / "e" / "metrics.jsonl").exists()
    assert list(config.trainer.logger) == ["console", "wandb", "file"]  # idempotent
