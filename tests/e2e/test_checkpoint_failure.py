"""A checkpoint write that fails on a full disk, through verl's real trainer on CPU: the run exits non-zero saying the
disk is full and where, the last complete checkpoint stays the resume point, and the same command resumes from it
once there is space. The full disk is real to the writer: verl's model shard of step 4 is a link to /dev/full, whose
writes fail with ENOSPC."""

from __future__ import annotations

import os

import pytest

SHARD = "model_world_size_1_rank_0.pt"  # the first file verl's FSDP checkpoint manager writes on one rank


def run(run_main, smoke, run_dir, steps: int):
    return run_main(
        *smoke,
        f"trainer.total_training_steps={steps}",
        "trainer.save_freq=2",
        "trainer.resume_mode=auto",
        f"entropy_verl.run_dir={run_dir}",
        timeout=900,
    )


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full to fill a disk")
def test_a_full_disk_at_a_checkpoint_names_itself_and_keeps_the_last_complete_one(tmp_path, smoke_overrides, run_main):
    run_dir = tmp_path / "run"
    checkpoints = run_dir / "checkpoints"
    tracker = checkpoints / "latest_checkpointed_iteration.txt"
    first = run(run_main, smoke_overrides, run_dir, steps=2)
    assert first.returncode == 0, first.stderr[-4000:]
    assert tracker.read_text().strip() == "2"

    trap = checkpoints / "global_step_4" / "actor"
    trap.mkdir(parents=True)
    (trap / SHARD).symlink_to("/dev/full")
    failed = run(run_main, smoke_overrides, run_dir, steps=4)  # resumes at step 2, trains 3 and 4, and cannot save 4
    assert failed.returncode != 0
    said = failed.stdout + failed.stderr
    assert f"saving the checkpoint {checkpoints / 'global_step_4'} failed: the disk is full" in said, said[-4000:]
    assert "The last complete checkpoint is step 2" in said
    assert tracker.read_text().strip() == "2"  # the resume point is the last complete checkpoint
    assert (checkpoints / "global_step_4.incomplete").is_dir() and not (checkpoints / "global_step_4").exists()

    again = run(
        run_main, smoke_overrides, run_dir, steps=4
    )  # space freed (the link is gone with the incomplete folder's name)
    assert again.returncode == 0, again.stderr[-4000:]
    assert tracker.read_text().strip() == "4"
    assert "global_step_2" in again.stdout + again.stderr  # it loaded step 2's checkpoint
