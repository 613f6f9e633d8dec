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
    apply_retention,
    archive_for_resume,
    checkpoint_folder,
    load_metrics,
    read_state,
    resume_folder,
    unlogged_checkpoint,
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
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl in run directory"):
        load_metrics(str(tmp_path / "nothing"))


def test_a_resume_after_a_checkpointed_but_unlogged_step_says_so(tmp_path):
    root = tmp_path / "checkpoints"
    assert unlogged_checkpoint(str(tmp_path), str(root / "global_step_2")) is None  # no earlier launch: nothing to say
    write_jsonl(tmp_path / "metrics.1.jsonl", [(1, {"x": 1.0})])  # launch 1 logged step 1, saved step 2, then died
    (tmp_path / "metrics.jsonl").write_text("")  # verl's file logger of this launch, opened and empty
    message = unlogged_checkpoint(str(tmp_path), str(root / "global_step_2") + os.sep)
    assert message.startswith("[entropy_verl] resuming after step 2, whose metrics were never logged")
    assert "no row for step 2" in message
    assert unlogged_checkpoint(str(tmp_path), str(root / "global_step_1")) is None  # step 1 was logged
    assert unlogged_checkpoint(str(tmp_path), str(tmp_path / "my_pick")) is None  # not a verl step folder


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


def test_retention_keeps_the_newest_step_folders_whole_across_launches(tmp_path):
    """A 2-node run showed verl's retention (keep 2) leave global_step_1/ with data.pt and our state after deleting
    its actor/, and a resumed launch keep the earlier launch's checkpoints: the newest ``keep`` folders up to the
    latest stay, whole; every older one goes."""
    root = tmp_path / "ckpt"
    for step, roles in ((1, ()), (2, ("actor",)), (3, ("actor",)), (4, ("actor",)), (5, ("actor",)), (7, ("actor",))):
        folder = root / f"global_step_{step}"
        folder.mkdir(parents=True)
        (folder / "data.pt").write_bytes(b"x")
        (folder / STATE_FILE).write_text("{}")
        for role in roles:
            (folder / role).mkdir()
    (root / "global_step_0.incomplete").mkdir()  # a failed write (run_state.checkpoint_write_failed): not a step
    (root / "latest_checkpointed_iteration.txt").write_text("5")
    removed = apply_retention(str(root), latest=5, keep=2)
    assert removed == [str(root / f"global_step_{s}") for s in (1, 2, 3)]
    assert sorted(os.listdir(root)) == [
        "global_step_0.incomplete",
        "global_step_4",
        "global_step_5",
        "global_step_7",  # beyond the latest: not this launch's to judge
        "latest_checkpointed_iteration.txt",
    ]
    assert sorted(os.listdir(root / "global_step_4")) == ["actor", "data.pt", STATE_FILE]
    assert apply_retention(str(root), latest=5, keep=0) == []  # keep every checkpoint
    assert apply_retention(str(tmp_path / "none"), latest=5, keep=2) == []


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
    (tmp_path / "outputs" / "p" / "e" / "metrics.jsonl").write_text("")  # verl's file logger opened it
    assert open_run_dir(config) == run_dir and (tmp_path / "outputs" / "p" / "e" / "metrics.jsonl").exists()
    assert list(config.trainer.logger) == ["console", "wandb", "file"]  # idempotent


def earlier_run_in(tmp_path, checkpoint_root=None):
    """A run directory as a run that died at step 6 left it (checkpoints 2 and 4, metrics of two launches)."""
    run_dir = tmp_path / "run"
    root = checkpoint_root or run_dir / "checkpoints"
    run_dir.mkdir(exist_ok=True)
    for step in (2, 4):
        (root / f"global_step_{step}" / "actor").mkdir(parents=True)
        (root / f"global_step_{step}" / "actor" / "model.pt").write_text(f"weights {step}")
    (root / "latest_checkpointed_iteration.txt").write_text("4")
    write_jsonl(run_dir / "metrics.1.jsonl", [(1, {"x": 1.0}), (2, {"x": 2.0})])
    write_jsonl(run_dir / "metrics.jsonl", [(3, {"x": 3.0}), (6, {"x": 6.0})])
    (run_dir / ".hydra").mkdir(exist_ok=True)  # this launch's own, written before the run directory is opened
    config = OmegaConf.create(
        {
            "trainer": {"project_name": "p", "experiment_name": "e", "logger": ["console"], "resume_mode": "disable"},
            "entropy_verl": {"run_dir": str(run_dir)},
        }
    )
    config.trainer.default_local_dir = str(root)
    return run_dir, root, config


def test_a_fresh_start_moves_an_earlier_runs_checkpoints_and_metrics_aside(tmp_path):
    from entropy_verl.run_state import open_run_dir

    run_dir, root, config = earlier_run_in(tmp_path)
    open_run_dir(config)
    aside = run_dir / "earlier-1"
    assert (aside / "checkpoints" / "global_step_4" / "actor" / "model.pt").read_text() == "weights 4"
    assert (aside / "checkpoints" / "latest_checkpointed_iteration.txt").read_text() == "4"
    assert [r["step"] for r in load_metrics(str(aside))] == [1, 2, 3, 6]  # every launch's metrics, readable
    assert not (run_dir / "metrics.jsonl").exists() and not list(root.iterdir()) and (run_dir / ".hydra").exists()
    open_run_dir(config)  # the trainer opens it again under entropy_verl.main: nothing more to move
    assert not (run_dir / "earlier-2").exists()
    run_dir, root, config = earlier_run_in(tmp_path)  # a second earlier run: a second folder
    open_run_dir(config)
    assert (run_dir / "earlier-2" / "checkpoints" / "global_step_2").is_dir()


def test_a_checkpoint_root_outside_the_run_directory_is_moved_beside_itself(tmp_path):
    from entropy_verl.run_state import open_run_dir

    run_dir, root, config = earlier_run_in(tmp_path, checkpoint_root=tmp_path / "shared" / "ckpt")
    open_run_dir(config)
    assert (tmp_path / "shared" / "ckpt.earlier-1" / "global_step_4" / "actor" / "model.pt").exists()
    assert (run_dir / "earlier-1" / "metrics.jsonl").exists()


def test_refuse_names_what_is_there_and_overwrite_deletes_it(tmp_path):
    from entropy_verl.config import ConfigError
    from entropy_verl.run_state import open_run_dir

    run_dir, root, config = earlier_run_in(tmp_path)
    config.entropy_verl.existing_run = "refuse"
    with pytest.raises(ConfigError, match=r"entropy_verl.existing_run.*metrics.jsonl.*global_step_4.*resume_mode=auto"):
        open_run_dir(config)
    assert (root / "global_step_4").exists() and (run_dir / "metrics.1.jsonl").exists()  # nothing touched
    config.trainer.resume_mode = "auto"  # resuming is not a fresh start: the tracker's step 4, metrics kept
    open_run_dir(config)
    assert (run_dir / "metrics.2.jsonl").exists() and (root / "global_step_4").exists()
    config.trainer.resume_mode, config.entropy_verl.existing_run = "disable", "overwrite"
    open_run_dir(config)
    assert not list(root.iterdir()) and not list(run_dir.glob("metrics*")) and not list(run_dir.glob("earlier-*"))
