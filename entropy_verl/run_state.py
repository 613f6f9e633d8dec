"""A run's state on disk, in one place: its run directory and what verl's loggers write there (our ``metrics.jsonl``
always, and the segments kept across resumes), which checkpoint verl will resume from, and the entropy_verl state
saved next to each checkpoint.

    <run_dir>/metrics.jsonl            this launch's metrics (verl truncates it when a launch starts)
    <run_dir>/metrics.<k>.jsonl        earlier launches of a resumed run, oldest first
    <run_dir>/tensorboard/, wandb/, swanlog/, mlruns.db   the other loggers', when the run uses them
    <default_local_dir>/global_step_<n>/entropy_controllers.json   controllers, coefficients, safety, diagnostics
    <run_dir>/earlier-<k>/             what an earlier run left, moved aside by a fresh start (``existing_run``)

Pure Python (verl is imported only to read its checkpoint tracker the way verl does).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from typing import Literal

METRICS_FILE = "metrics.jsonl"  # verl's file logger writes here (entropy_verl.main sets VERL_FILE_LOGGER_PATH)
SEGMENT = re.compile(r"^metrics\.(\d+)\.jsonl$")  # earlier launches of a resumed run, oldest first
STATE_FILE = "entropy_controllers.json"  # entropy_verl's state, next to verl's checkpoint of the same step
# Where verl's other loggers write, each told by an environment variable (verl/utils/tracking.py); a value the user
# set already wins.
LOGGER_ENV = {
    "TENSORBOARD_DIR": "tensorboard",
    "WANDB_DIR": "",  # wandb writes <dir>/wandb/
    "SWANLAB_LOG_DIR": "swanlog",
}
MLFLOW_URI = "MLFLOW_TRACKING_URI"  # verl's default: sqlite:////tmp/mlruns.db, shared by every run on the machine
TRACKER = "latest_checkpointed_iteration.txt"  # verl's pointer to the last complete checkpoint
CHECKPOINT = re.compile(r"^global_step_(\d+)$")
UNLOGGED_STEP = "resuming after step {step}, whose metrics were never logged"  # unlogged_checkpoint's message
EXISTING_RUN = Literal["move_aside", "refuse", "overwrite"]
"""What a fresh start (nothing to resume) does where an earlier run left checkpoints or metrics: move them to
``<run_dir>/earlier-<k>/`` (a checkpoint root outside the run directory: ``<root>.earlier-<k>/``), refuse to start,
or overwrite them (verl's own behaviour: they are deleted)."""


# ---- the run directory ----------------------------------------------------------------------------------------------


def open_run_dir(config) -> str:
    """Create the run's directory and point verl's loggers at it; returns it (absolute). ``entropy_verl.run_dir``,
    else ``outputs/<project>/<experiment>`` as our config composes it (verl's own entry point, no run_dir set; the
    key is then added: the config must be open). verl's ``file`` logger is added to ``trainer.logger`` if missing:
    the tools, the end-of-run summary and resumes read its ``metrics.jsonl``. A resumed run keeps the metrics of its
    earlier launches (``archive_for_resume``); a fresh one drops an earlier run's segments. Idempotent: the driver
    (``entropy_verl.main``) and the trainer both call it."""
    from omegaconf import OmegaConf

    trainer = config.trainer
    chosen = OmegaConf.select(config, "entropy_verl.run_dir", default=None)
    run_dir = os.path.abspath(chosen or os.path.join("outputs", trainer.project_name, trainer.experiment_name))
    os.makedirs(run_dir, exist_ok=True)
    OmegaConf.update(config, "entropy_verl.run_dir", run_dir, force_add=True)
    loggers = [trainer.logger] if isinstance(trainer.logger, str) else list(trainer.logger or [])
    if "file" not in loggers:
        trainer.logger = [*loggers, "file"]
    if resume_folder(trainer):  # keep the metrics so far: verl's file logger truncates its file
        if archived := archive_for_resume(run_dir):
            print(f"[entropy_verl] resuming: metrics so far kept in {archived} (load_metrics reads every segment)")
    elif left := earlier_run(run_dir, str(trainer.default_local_dir)):
        fresh_start(
            run_dir, str(trainer.default_local_dir), left, OmegaConf.select(config, "entropy_verl.existing_run")
        )
    # set, not defaulted: runs that share one Ray session (tests, notebooks) must not inherit the first run's path
    os.environ["VERL_FILE_LOGGER_PATH"] = os.path.join(run_dir, METRICS_FILE)
    return run_dir


def earlier_run(run_dir: str, checkpoint_root: str) -> list[str]:
    """What an earlier run left that a fresh start would overwrite or mix with its own: metrics (a non-empty
    ``metrics.jsonl``, its segments), the other loggers' files, verl's checkpoints and tracker."""
    left = [path for _, path in segments(run_dir)]
    metrics = os.path.join(run_dir, METRICS_FILE)
    if os.path.exists(metrics) and os.path.getsize(metrics) > 0:
        left.append(metrics)
    left += [
        path
        for path in (*(os.path.join(run_dir, f) for f in LOGGER_ENV.values() if f), os.path.join(run_dir, "mlruns.db"))
        if os.path.exists(path)
    ]
    if os.path.isdir(checkpoint_root):
        left += sorted(
            os.path.join(checkpoint_root, name)
            for name in os.listdir(checkpoint_root)
            if CHECKPOINT.match(name) or name == TRACKER
        )
    return left


def fresh_start(run_dir: str, checkpoint_root: str, left: list[str], policy: str | None) -> None:
    """Apply ``entropy_verl.existing_run`` (``EXISTING_RUN``) to what an earlier run ``left``."""
    from entropy_verl.config import ConfigError

    policy = policy or "move_aside"
    described = ", ".join(os.path.relpath(p, run_dir) if p.startswith(run_dir) else p for p in left)
    if policy == "refuse":
        raise ConfigError(
            "entropy_verl.existing_run",
            f"{run_dir} holds an earlier run's {described}, and this run starts afresh (nothing to resume): resume "
            "it (trainer.resume_mode=auto), or set entropy_verl.existing_run=move_aside (keep them aside) or "
            "=overwrite (delete them)",
        )
    if policy == "overwrite":
        for path in left:
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        print(
            f"[entropy_verl] starting afresh in {run_dir}: deleted the earlier run"
            f"'s {described} (existing_run=overwrite)"
        )
        return
    k = 1 + max((int(m.group(1)) for n in os.listdir(run_dir) if (m := re.match(r"^earlier-(\d+)$", n))), default=0)
    for path in left:
        root, base = (run_dir, os.path.join(run_dir, f"earlier-{k}"))
        if not os.path.abspath(path).startswith(run_dir + os.sep):
            root, base = checkpoint_root, f"{checkpoint_root.rstrip(os.sep)}.earlier-{k}"
        target = os.path.join(base, os.path.relpath(path, root))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(path, target)
    print(
        f"[entropy_verl] starting afresh in {run_dir}: the earlier run's {described} moved to earlier-{k}/ "
        "(entropy_verl.existing_run=move_aside; =overwrite deletes them, trainer.resume_mode=auto resumes)"
    )


def point_loggers(run_dir: str) -> None:
    """verl's other loggers write under ``run_dir`` unless the user's environment says otherwise; called in the
    process that creates them (the trainer's, which Ray starts afresh for each run)."""
    for variable, folder in LOGGER_ENV.items():
        os.environ.setdefault(variable, os.path.join(run_dir, folder))
    os.environ.setdefault(MLFLOW_URI, "sqlite:///" + os.path.join(run_dir, "mlruns.db"))


# ---- metrics --------------------------------------------------------------------------------------------------------


def segments(run_dir: str) -> list[tuple[int, str]]:
    """(k, path) of the ``metrics.<k>.jsonl`` segments in ``run_dir``, oldest first."""
    found = ((m, name) for name in os.listdir(run_dir) if (m := SEGMENT.match(name)))
    return sorted((int(m.group(1)), os.path.join(run_dir, name)) for m, name in found)


def archive_for_resume(run_dir: str) -> str | None:
    """verl's file logger truncates its file on open, so before a run resumes in ``run_dir`` the metrics of the
    launches so far move to the next ``metrics.<k>.jsonl``; ``load_metrics`` reads them all back. Returns the new
    name."""
    path = os.path.join(run_dir, METRICS_FILE)
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    k = 1 + max((k for k, _ in segments(run_dir)), default=0)
    target = os.path.join(run_dir, f"metrics.{k}.jsonl")
    os.replace(path, target)
    return target


def _read_jsonl(path: str) -> list[dict]:
    rows = []
    with open(path) as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                rows.append({"step": record["step"], **record["data"]})
    return rows


def load_metrics(path: str) -> list[dict]:
    """Rows ``{"step": int, **metrics}`` in step order from a verl JSONL file, or from a run directory: its
    ``metrics.jsonl`` after the segments that earlier launches of a resumed run left (``archive_for_resume``). A step
    logged twice (re-run after a kill, or a resumed run validating its checkpoint step) is merged, the later values
    winning key by key."""
    if not os.path.isdir(path):
        return _read_jsonl(path)
    files = [segment for _, segment in segments(path)] + [os.path.join(path, METRICS_FILE)]
    files = [f for f in files if os.path.exists(f)]
    if not files:
        raise FileNotFoundError(f"no {METRICS_FILE} in run directory {path}")
    by_step: dict[int, dict] = {}
    for file in files:
        for row in _read_jsonl(file):
            by_step[row["step"]] = {**by_step.get(row["step"], {}), **row}
    return [by_step[step] for step in sorted(by_step)]


def unlogged_checkpoint(run_dir: str, folder: str) -> str | None:
    """What to tell a user whose run resumes from ``folder`` when its step has no metrics row in ``run_dir`` (None when
    it has one, or when the run directory holds no earlier launch's metrics to compare with). verl 0.9.1's v1 trainer
    saves a step's checkpoint, then syncs the rollout weights and validates, then logs the step's metrics: a launch
    that fails in between (a dead rollout server fails the weight sync) leaves a checkpoint of a step that was never
    logged, and the resume starts after it (docs/upstream/verl-checkpoint-before-log.md)."""
    if (match := CHECKPOINT.match(os.path.basename(os.path.normpath(folder)))) is None:
        return None
    try:
        rows = load_metrics(run_dir)
    except FileNotFoundError:  # no metric file at all: nothing to compare with
        return None
    step = int(match.group(1))
    if any(row["step"] == step for row in rows):
        return None
    return (
        f"[entropy_verl] {UNLOGGED_STEP.format(step=step)}: verl saves a step's checkpoint "
        "before it syncs the rollout weights, validates and logs the step, and the last launch failed in between. "
        f"The run's metrics have no row for step {step}; its weights, data order and controller state resume exactly."
    )


# ---- checkpoints ----------------------------------------------------------------------------------------------------


def checkpoint_folder(checkpoint_root: str, step: int) -> str:
    """Where verl saves step ``step``'s checkpoint (``trainer.default_local_dir``/global_step_<step>)."""
    return os.path.join(checkpoint_root, f"global_step_{step}")


def resume_folder(trainer) -> str | None:
    """The checkpoint folder verl's trainer will load at start, read from the ``trainer`` config block as verl 0.9.1's
    ``_load_checkpoint`` reads it (relative paths against the working directory), or None when it starts afresh."""
    mode = trainer.get("resume_mode", "disable")
    if mode == "resume_path":
        folder = trainer.get("resume_from_path", None)
    elif mode == "auto":
        from verl.utils.checkpoint.checkpoint_manager import find_latest_ckpt_path, get_checkpoint_tracker_filename

        root = os.path.abspath(str(trainer.default_local_dir))
        folder = find_latest_ckpt_path(root) if os.path.exists(get_checkpoint_tracker_filename(root)) else None
    else:
        folder = None
    return os.path.abspath(str(folder)) if folder else None


def apply_retention(checkpoint_root: str, latest: int, keep: int) -> list[str]:
    """Keep the newest ``keep`` step folders up to ``latest`` and remove the older ones whole; returns the folders
    removed. verl 0.9.1's retention (``max_actor_ckpt_to_keep``) falls short twice: it deletes only
    ``global_step_<n>/actor/`` (and ``critic/``), leaving the folder with its ``data.pt`` and our state file, a folder
    no resume can load; and it counts only the checkpoints its manager saved since this launch started, so every
    resume leaves the earlier launch's checkpoints behind for good (docs/upstream/verl-checkpoint-retention.md)."""
    if keep <= 0 or not os.path.isdir(checkpoint_root):
        return []
    numbered = ((CHECKPOINT.match(name), name) for name in os.listdir(checkpoint_root))
    steps = sorted(
        (int(match[1]), os.path.join(checkpoint_root, name))
        for match, name in numbered
        if match and int(match[1]) <= latest
    )
    removed = []
    for _, folder in steps[: max(len(steps) - keep, 0)]:
        shutil.rmtree(folder)
        removed.append(folder)
    return removed


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written; the message says where, why, and which checkpoint a resume will load."""


def checkpoint_write_failed(folder: str, checkpoint_root: str, failure: BaseException) -> CheckpointWriteError:
    """Why saving the checkpoint in ``folder`` failed, in words (a full disk shows in torch as ``unexpected pos``, in
    a Ray worker's traceback as text only), with the free space where it was written. The incomplete folder is
    renamed ``<folder>.incomplete``, so nothing takes it for a checkpoint; verl writes its tracker last, so the tracker
    still names the last complete checkpoint, which ``trainer.resume_mode=auto`` loads."""
    text = f"{type(failure).__name__}: {failure}"
    full = "No space left on device" in text or "[Errno 28]" in text or "unexpected pos" in text
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    free = shutil.disk_usage(existing).free
    if os.path.exists(folder):
        os.replace(folder, _free_name(folder + ".incomplete"))
    tracker = os.path.join(checkpoint_root, TRACKER)
    last = None
    if os.path.exists(tracker):
        with open(tracker) as f:
            last = f.read().strip()
    cause = "the disk is full (no space left on the device)" if full else text.strip().splitlines()[-1][:500]
    return CheckpointWriteError(
        f"saving the checkpoint {folder} failed: {cause}; {free / 2**30:.1f} GiB free there now. The partial folder is "
        f"kept as {folder}.incomplete. "
        + (
            f"The last complete checkpoint is step {last} ({tracker}): fix the cause and run again with "
            "trainer.resume_mode=auto to continue from it."
            if last
            else "No complete checkpoint exists yet."
        )
    )


def _free_name(path: str) -> str:
    """``path``, or ``path.<k>`` for the first k not taken."""
    k, candidate = 1, path
    while os.path.exists(candidate):
        candidate, k = f"{path}.{k}", k + 1
    return candidate


def write_state(folder: str, state: dict) -> str:
    """Save entropy_verl's state for the checkpoint in ``folder`` atomically (a kill mid-write must not leave a
    checkpoint with half a state file); refuses a non-finite coefficient or controller state, so none is ever
    restored. ``state["controllers"][name]["last"]`` (what the last update saw) may hold a NaN measurement."""
    internal = {name: {k: v for k, v in c.items() if k != "last"} for name, c in state["controllers"].items()}
    json.dumps([state["coefficients"], internal], allow_nan=False)  # raises rather than store a NaN state
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, STATE_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump(state, f, indent=1)
    os.replace(path + ".tmp", path)
    return path


def read_state(folder: str) -> dict:
    """entropy_verl's state saved with the checkpoint in ``folder``; FileNotFoundError naming the file when there is
    none, ValueError when it cannot be read."""
    path = os.path.join(folder, STATE_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no controller state at {path}")
    try:
        with open(path) as f:
            state = json.load(f)
        if not isinstance(state.get("controllers"), dict):
            raise ValueError("it holds no controllers")
    except (OSError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path} cannot be read: {exc!r}") from None
    return state
