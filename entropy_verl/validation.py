"""Start-up checks that run in the driver before Ray starts: bad input fails here, naming the offending key.

``validate(config)`` parses the ``entropy_verl`` block the way the trainer will (``entropy_verl.config.parse``:
unknown keys, types, ranges), then checks it against the rest of the run's config: the settings each method and
controller needs from verl, the controller outputs the methods read, the task's functions against the task's data,
and the verl settings that would otherwise fail only inside a worker after start-up; verl's own keys (types, ranges,
verl's typed configs, the model, the reward file) are checked by ``entropy_verl.verl_keys``. Settings that run but
change nothing (a ratio-based method fully on-policy, a method whose own settings make it the identity) are warned
about (``NoOpWarning``, ``methods_that_cannot_act``).
"""

from __future__ import annotations

import importlib
import math
import os
import warnings

from omegaconf import DictConfig, OmegaConf

from entropy_verl import run_state
from entropy_verl.config import (
    TRAINER_MODES,
    ConfigError,
    EntropyVerlConfig,
    parameter_sync_step,
    parse,
    verl_trainer_mode,
)
from entropy_verl.registry import ENTROPY, FINAL_ANSWERS, REWARD_COMPONENTS, VOCAB_STATS
from entropy_verl.rollout.vllm_cpu.settings import check_cpu_vllm
from entropy_verl.schedule import points, values_at, with_values
from entropy_verl.verl_keys import check_model, check_reward_file, check_verl_sections

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _raw(config: DictConfig, key: str):
    """The unresolved value at ``key`` (an interpolation stays a ``${...}`` string)."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(config, parent_key, default=None) if parent_key else config
    node = parent._get_node(leaf) if isinstance(parent, DictConfig) else None  # noqa: SLF001
    return None if node is None else node._value()  # noqa: SLF001


def _is_embedded(config: DictConfig, key: str) -> bool:
    # Interpolations into the embedded default are built on demand, so there is nothing to check yet.
    raw = _raw(config, key)
    return isinstance(raw, str) and raw.startswith("${embedded:")


def _looks_local(path: str) -> bool:
    """Hub ids (``org/name``) and remote URIs are verl's to fetch; paths we can check are local-looking ones."""
    return path.startswith(("/", "./", "../", "~"))


def check_local_path(config: DictConfig, key: str, what: str) -> None:
    if _is_embedded(config, key):
        return
    value = OmegaConf.select(config, key, default=None, throw_on_missing=False)
    if value is None or value == "???":
        raise ConfigError(key, f"{what} is not set")
    paths = value if isinstance(value, (list, tuple)) or OmegaConf.is_list(value) else [value]
    if not paths or any(not str(path).strip() for path in paths):
        raise ConfigError(
            key,
            f"{what} is {OmegaConf.to_container(value) if OmegaConf.is_list(value) else value!r}: "
            "name at least one, none empty",
        )
    for path in paths:
        path = str(path)
        if "://" in path:
            continue
        if _looks_local(path) and not os.path.exists(os.path.expanduser(path)):
            raise ConfigError(key, f"{what} {path!r} does not exist")


def check_rollout_name(config: DictConfig) -> None:
    from verl.workers.rollout.base import _ROLLOUT_REGISTRY
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    key = "actor_rollout_ref.rollout.name"
    name = OmegaConf.select(config, key, default=None, throw_on_missing=False)
    mode = OmegaConf.select(config, "actor_rollout_ref.rollout.mode", default="async")
    known = sorted(RolloutReplicaRegistry._registry)  # noqa: SLF001 - verl exposes no accessor
    if name in (None, "???") or name not in known or (name, mode) not in _ROLLOUT_REGISTRY:
        raise ConfigError(key, f"unknown rollout backend {name!r}; registered: {known}")


def check_entropy_control(config: DictConfig, parsed: EntropyVerlConfig, in_trainer: bool = False) -> None:
    """What each configured method and controller needs from the rest of the config is there, every controller
    output a method reads is produced, and every controller's output is read."""
    entries = [*parsed.methods, *parsed.controllers, *([parsed.estimator] if parsed.estimator else [])]
    if not entries:
        return
    mode_key = "trainer.v1.trainer_mode"
    mode = OmegaConf.select(config, mode_key)
    if mode not in TRAINER_MODES.values():
        ours = ", ".join(f"{name} (verl's {verl})" for verl, name in TRAINER_MODES.items())
        raise ConfigError(mode_key, f"entropy_verl's methods and controllers run in its trainers: {ours}; got {mode!r}")
    if OmegaConf.select(config, "algorithm.rollout_correction.bypass_mode", default=False):
        raise ConfigError(
            "algorithm.rollout_correction.bypass_mode",
            "entropy control needs the per-token entropy verl "
            "computes when it recomputes old log-probs, and bypass mode skips that recomputation",
        )
    produced = {output: spec.name for spec, _ in parsed.controllers for output in spec.outputs}
    read = set()
    for spec, cfg in entries:
        if ENTROPY in spec.needs and not OmegaConf.select(
            config, "actor_rollout_ref.actor.calculate_entropy", default=False
        ):
            raise ConfigError(
                "actor_rollout_ref.actor.calculate_entropy",
                f"{spec.name!r} needs the current policy's entropy with gradient: set it to true (method files do)",
            )
        mode_key = "actor_rollout_ref.actor.policy_loss.loss_mode"
        if spec.loss_mode and OmegaConf.select(config, mode_key) != spec.loss_mode:
            raise ConfigError(
                mode_key,
                f"{spec.name!r} is defined with loss_mode {spec.loss_mode!r} (no PPO clip), got "
                f"{OmegaConf.select(config, mode_key)!r}",
            )
        if VOCAB_STATS in spec.needs:
            check_vocab_stats_engine(config, spec.name, in_trainer)
        if FINAL_ANSWERS in spec.needs and not parsed.task.final_answer:
            raise ConfigError(
                "entropy_verl.task.final_answer",
                f"{spec.name!r} needs each response's final answer, and "
                "the task names no final_answer extractor (module:function)",
            )
        for output in spec.reads_of(cfg):
            if output not in produced:
                raise ConfigError(
                    "entropy_verl.controllers",
                    f"{spec.name!r} reads {output!r}, which no configured "
                    f"controller produces (configured: {sorted(s.name for s, _ in parsed.controllers) or 'none'})",
                )
            read.add(output)
    for output, controller in produced.items():
        if output not in read:
            raise ConfigError(
                f"entropy_verl.controllers.{controller}",
                f"its output {output!r} is read by no configured "
                "method: add the method that uses it (e.g. method=entropic for pi) or remove the controller",
            )
    check_target_temperatures(config, parsed)


def check_target_temperatures(config: DictConfig, parsed: EntropyVerlConfig) -> None:
    """A controller's entropy target was given at a sampling temperature (``target_temperature``): verl measures
    entropy at the rollout's temperature, so the same policy reads higher at 1.0 than at 0.6 and a paper's target
    would steer the run somewhere else than the paper did."""
    key = "actor_rollout_ref.rollout.temperature"
    temperature = float(OmegaConf.select(config, key, default=1.0))
    for spec, cfg in parsed.controllers:
        given_at = getattr(cfg, "target_temperature", None)
        if given_at is not None and not math.isclose(given_at, temperature):
            prefix = f"entropy_verl.controllers.{spec.name}"
            raise ConfigError(
                f"{prefix}.target_temperature",
                f"{spec.name}'s target_entropy {cfg.target_entropy} is for sampling at temperature {given_at:g}, and "
                f"this run samples at {key}={temperature:g}, where entropy reads differently: sample at {given_at:g} "
                f"({key}={given_at:g}), or give a target for {temperature:g} ({prefix}.target_entropy=<nats> "
                f"{prefix}.target_temperature={temperature:g})",
            )


def check_vocab_stats_engine(config: DictConfig, method: str, in_trainer: bool = False) -> None:
    """The full-vocabulary sums come from entropy_verl's engine, selected through verl's VERL_ENGINE_VENDOR, and need
    the full logits (no fused kernels). ``entropy_verl.main`` sets the vendor in every Ray process's environment;
    by the time the trainer runs (verl's own main_ppo) it must already be there."""
    from entropy_verl.engine import ENGINE_VENDOR_KEY, VOCAB_STATS_VENDOR

    key = "actor_rollout_ref.model.use_fused_kernels"
    if OmegaConf.select(config, key, default=False):
        raise ConfigError(
            key,
            f"{method!r} needs full-vocabulary statistics of the logits, which fused kernels never "
            "materialise: set it to false",
        )
    vendor = OmegaConf.select(config, ENGINE_VENDOR_KEY, default=None) or os.environ.get("VERL_ENGINE_VENDOR")
    if in_trainer and os.environ.get("VERL_ENGINE_VENDOR") != VOCAB_STATS_VENDOR:
        raise ConfigError(
            ENGINE_VENDOR_KEY,
            f"{method!r} runs on entropy_verl's engine, which every worker selects from its environment before it "
            f"starts: run with python -m entropy_verl.main (it sets this), or under verl's own entry point add "
            f"+{ENGINE_VENDOR_KEY}={VOCAB_STATS_VENDOR}",
        )
    if vendor not in (None, VOCAB_STATS_VENDOR):
        raise ConfigError(
            ENGINE_VENDOR_KEY,
            f"{method!r} runs on entropy_verl's engine (vendor {VOCAB_STATS_VENDOR!r}), "
            f"which this run sets itself; got {vendor!r}",
        )


def data_sources_of(module_name: str) -> tuple[str, ...] | None:
    """The data sources a task module declares its functions for (``DATA_SOURCES``), or None if it declares none."""
    sources = getattr(importlib.import_module(module_name), "DATA_SOURCES", None)
    return None if sources is None else tuple(sources)


def _package_module(path: str) -> str | None:
    """``.../entropy_verl/tasks/countdown.py`` -> ``entropy_verl.tasks.countdown`` (our own modules only)."""
    path = os.path.abspath(os.path.expanduser(path))
    if not path.startswith(PACKAGE_DIR + os.sep) or not path.endswith(".py"):
        return None
    relative = os.path.relpath(path[: -len(".py")], os.path.dirname(PACKAGE_DIR))
    return relative.replace(os.sep, ".")


def check_task(config: DictConfig, parsed: EntropyVerlConfig) -> None:
    """The task's functions load and are meant for the task's data (a task module's ``DATA_SOURCES``), and values
    tuned on one task (an experiment's ``tuned_on``) do not run on another."""
    from entropy_verl.tasks import load_task_function

    task = parsed.task
    if not task.data_sources:
        raise ConfigError(
            "entropy_verl.task.data_source", "not set: the data_source value of the task's rows (task=<name> sets it)"
        )
    reward_key = "reward.custom_reward_function"
    reward_path, reward_name = (OmegaConf.select(config, f"{reward_key}.{k}", default=None) for k in ("path", "name"))
    if task.scorer == "custom":
        for key, value in ((f"{reward_key}.path", reward_path), (f"{reward_key}.name", reward_name)):
            if not value:
                raise ConfigError(
                    key,
                    "not set: the task is scored by a custom reward function (entropy_verl.task.scorer=custom); "
                    "name its file and function, or set the scorer to verl for a data_source verl scores",
                )
    elif reward_path:
        raise ConfigError(
            f"{reward_key}.path",
            f"the task is scored by verl's default scorer for data_source "
            f"{task.data_source!r} (entropy_verl.task.scorer=verl), which a custom reward function would replace",
        )
    functions = {f"entropy_verl.task.{name}": getattr(task, name) for name in ("answer_extractor", "final_answer")}
    reward_module = _package_module(str(reward_path)) if reward_path else None
    for key, spec in functions.items():
        if spec:
            try:
                load_task_function(spec)
            except ValueError as exc:
                raise ConfigError(key, str(exc)) from None
    modules = {key: spec.partition(":")[0] for key, spec in functions.items() if spec}
    if reward_module:
        modules["reward.custom_reward_function.path"] = reward_module
    for key, module in modules.items():
        sources = data_sources_of(module)
        if sources is not None and not set(task.data_sources) <= set(sources):
            raise ConfigError(
                key,
                f"{module} is written for data_source {', '.join(map(repr, sources))}, and this run's "
                f"task has data_source {task.data_source!r} (entropy_verl.task.data_source): use the task's "
                "own function (task=<name> sets it)",
            )
    if parsed.tuned_on is not None and task.data_sources != (parsed.tuned_on,):
        raise ConfigError(
            "entropy_verl.tuned_on",
            f"this experiment's values were tuned on data_source {parsed.tuned_on!r}, "
            f"and this run's task has {task.data_source!r}: select the method itself (method=...) and set "
            "its values for your task",
        )


def check_run_length_and_workers(config: DictConfig) -> None:
    """Positive counts where verl divides by them or would train nothing and exit 0."""
    for key in ("trainer.nnodes", "trainer.n_gpus_per_node", "data.train_batch_size"):
        value = OmegaConf.select(config, key, default=None)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(key, f"is {value!r}; expected a positive whole number")
    steps = OmegaConf.select(config, "trainer.total_training_steps", default=None)
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ConfigError(
            "trainer.total_training_steps", f"is {steps!r}: a run must train at least one step (null: all epochs)"
        )


def _data_paths(config: DictConfig, key: str) -> list[str]:
    """The local files named at ``key`` (relative ones too: verl reads them from the working directory)."""
    if _is_embedded(config, key):
        return []
    value = OmegaConf.select(config, key, default=None)
    paths = value if isinstance(value, (list, tuple)) or OmegaConf.is_list(value) else [value]
    return [os.path.expanduser(str(p)) for p in paths if p is not None and "://" not in str(p)]


def check_data_files(config: DictConfig) -> None:
    """Each local data file exists, is a readable parquet file, and has the columns verl reads for this config."""
    import pyarrow.parquet as pq

    prompt_key = OmegaConf.select(config, "data.prompt_key", default="prompt")
    needed = [prompt_key, "data_source", "reward_model"]
    for key in ("data.train_files", "data.val_files"):
        for path in _data_paths(config, key):
            if not os.path.exists(path):
                raise ConfigError(key, f"{path!r} does not exist (working directory: {os.getcwd()})")
            try:
                columns = pq.read_schema(path).names
            except Exception as exc:  # noqa: BLE001 - whatever pyarrow says, with the file's name
                raise ConfigError(key, f"{path!r} is not a readable parquet file: {exc}") from None
            missing = [c for c in needed if c not in columns]
            if missing:
                raise ConfigError(
                    key,
                    f"{path!r} has no {missing} column(s) (it has {columns}); verl's RL format needs "
                    f"{needed} (data.prompt_key names the prompt column)",
                )


def check_steps_fit_the_data(config: DictConfig) -> None:
    """``trainer.total_training_steps`` within what the data gives: verl's loop ends after ``trainer.total_epochs``
    epochs of ``rows // data.train_batch_size`` steps (its loader drops the last partial batch), so a longer run
    would stop early, silently, with no final checkpoint or validation. Rows are counted from the parquet files
    (verl may drop more: overlong prompts), capped by ``data.train_max_samples``."""
    import pyarrow.parquet as pq

    steps = OmegaConf.select(config, "trainer.total_training_steps", default=None)
    paths = _data_paths(config, "data.train_files")
    if steps is None or not paths:
        return
    rows = sum(pq.ParquetFile(path).metadata.num_rows for path in paths)
    cap = int(OmegaConf.select(config, "data.train_max_samples", default=-1) or -1)
    rows = min(rows, cap) if cap > 0 else rows
    batch = int(config.data.train_batch_size)
    epochs = int(OmegaConf.select(config, "trainer.total_epochs", default=1))
    per_epoch = rows // batch
    if steps > per_epoch * epochs:
        needed = -(-steps // per_epoch) if per_epoch else None
        raise ConfigError(
            "trainer.total_epochs",
            f"{epochs} epochs of {per_epoch} steps ({rows} rows of data.train_files // data.train_batch_size="
            f"{batch}) end the run at step {per_epoch * epochs}, before "
            f"trainer.total_training_steps={steps}: "
            + (
                f"set trainer.total_epochs >= {needed}"
                if needed
                else f"the data has fewer rows than one batch ({batch})"
            ),
        )


# The range of the reward each shipped scorer gives (a response's score), where thresholds on it are read:
# (module, function) of a custom reward function, or ("verl", data_source) for verl's default scorer.
REWARD_RANGES = {
    ("entropy_verl.tasks.countdown", "compute_score"): (0.0, 1.0),
    ("entropy_verl.tasks.countdown", "compute_score_components"): (0.0, 1.0),
    ("verl", "openai/gsm8k"): (0.0, 1.0),  # verl.utils.reward_score.gsm8k: 1 if correct, else format_score 0
}


def reward_range(config: DictConfig, parsed: EntropyVerlConfig) -> tuple[float, float] | None:
    """The range of the run's reward where it is known (``REWARD_RANGES``), else None."""
    task = parsed.task
    if task.scorer == "verl":
        ranges = {REWARD_RANGES.get(("verl", source)) for source in task.data_sources}
        return ranges.pop() if len(ranges) == 1 else None
    path = OmegaConf.select(config, "reward.custom_reward_function.path", default=None)
    module = (
        _package_module(str(path)) if path and not _is_embedded(config, "reward.custom_reward_function.path") else None
    )
    name = OmegaConf.select(config, "reward.custom_reward_function.name", default=None)
    return REWARD_RANGES.get((module, name))


def check_reward_thresholds(config: DictConfig, parsed: EntropyVerlConfig) -> None:
    """A threshold on the reward that no response can reach, or every response reaches, where the reward's range is
    known: the diagnostics' correct_threshold (reward >= it counts correct: pass@k) and a polarity estimator's
    (NSR/PSR/W-REINFORCE: reward > it is correct)."""
    known = reward_range(config, parsed)
    if known is None:
        return
    low, high = known
    checks = []
    if parsed.diagnostics.enable:
        checks.append(("entropy_verl.diagnostics.correct_threshold", parsed.diagnostics.correct_threshold, ">="))
    threshold = getattr(parsed.estimator[1], "correct_threshold", None) if parsed.estimator else None
    if threshold is not None and not OmegaConf.select(config, "algorithm.use_kl_in_reward", default=False):
        checks.append((f"{parsed.estimator[0].key}.correct_threshold", threshold, ">"))
    for key, value, rule in checks:
        never = value > high if rule == ">=" else value >= high
        always = value <= low if rule == ">=" else value < low
        if never or always:
            raise ConfigError(
                key,
                f"{value:g}: a response is correct when its reward {rule} it, and this run's reward is in "
                f"[{low:g}, {high:g}], so {'no' if never else 'every'} response would ever count as correct",
            )


def check_resume_state(config: DictConfig, parsed: EntropyVerlConfig) -> None:
    """When the run will resume, the entropy_verl state next to the checkpoint it resumes is readable and holds every
    configured controller: otherwise the run would fail after all its workers started."""
    if not parsed.controllers:
        return
    folder = run_state.resume_folder(config.trainer)
    if folder is None:
        return
    key = "trainer.resume_mode"
    try:
        state = run_state.read_state(folder)
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(key, f"resuming from {folder}: {exc}") from None
    missing = [spec.name for spec, _ in parsed.controllers if spec.name not in state["controllers"]]
    if missing:
        raise ConfigError(
            key, f"resuming from {folder}: {run_state.STATE_FILE} has no state for controller(s) {missing}"
        )


def check_reward_on_data(config: DictConfig, parsed: EntropyVerlConfig) -> None:
    """The reward function resolves and scores a row of the run's own training data (entropy_verl.tasks.reward_check),
    with the components the estimator needs. The embedded default's data is built later and scored by our own tested
    function; remote data is verl's to fetch."""
    from entropy_verl.tasks.reward_check import check_reward

    local = _data_paths(config, "data.train_files")  # checked by check_data_files, which runs first
    if not local:
        return
    needs_components = parsed.estimator is not None and REWARD_COMPONENTS in parsed.estimator[0].needs
    check_reward(config, local[0], parsed.task, parsed.task.reward_components if needs_components else None)


def check_advantage_estimator(config: DictConfig) -> None:
    """The estimator is registered with verl (ours included)."""
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    key = "algorithm.adv_estimator"
    name = str(OmegaConf.select(config, key))
    try:
        get_adv_estimator_fn(name)
    except ValueError as exc:
        raise ConfigError(key, f"unknown advantage estimator {name!r} ({exc})") from None
    if name == "gdpo" and OmegaConf.select(config, "trainer.use_v1", default=True):
        raise ConfigError(
            key,
            "verl 0.9.1's 'gdpo' cannot run under the v1 trainer (its advantage step never passes the "
            "reward components, so it fails at the first step); method=gdpo runs entropy_verl's 'gdpo_v1', "
            "which hands verl's own function the components",
        )


def check_batch_divisibility(config: DictConfig) -> None:
    """verl asserts these deep inside a worker after start-up; catch them here with the key to change. Under dynamic
    batch sizes verl asserts nothing: it pads the step (``check_no_padding_samples``)."""
    n = int(OmegaConf.select(config, "actor_rollout_ref.rollout.n", default=1))
    world = int(config.trainer.nnodes) * int(config.trainer.n_gpus_per_node)
    samples = int(config.data.train_batch_size) * n
    mini = int(config.actor_rollout_ref.actor.ppo_mini_batch_size) * n
    if OmegaConf.select(config, "actor_rollout_ref.actor.use_dynamic_bsz", default=False):
        check_no_padding_samples(config, samples, mini, world)
        return
    checks = [
        ("data.train_batch_size", samples, "rollout samples per step (train_batch_size x rollout.n)"),
        (
            "actor_rollout_ref.actor.ppo_mini_batch_size",
            mini,
            "samples per mini-batch (ppo_mini_batch_size x rollout.n)",
        ),
    ]
    for key, total, what in checks:
        if total % world:
            raise ConfigError(key, f"{what} = {total} is not divisible by nnodes x n_gpus_per_node = {world}")
    # verl computes log-probs per local update: a step's samples / parameter_sync_step (separate_async; else 1)
    local = samples // parameter_sync_step(config)
    micro = [
        ("actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu", local // world),
        ("actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu", local // world),
        ("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu", mini // world),
    ]
    for key, per_worker in micro:
        size = OmegaConf.select(config, key, default=None)
        if size and per_worker % int(size):
            raise ConfigError(key, f"{size} does not divide the {per_worker} samples each of the {world} workers gets")


def check_separate_async(config: DictConfig) -> None:
    """What verl's separate_async trainer asserts once its workers are being built, checked before Ray starts, and
    on CPU the checkpoint engine that can run there."""
    if verl_trainer_mode(config) != "separate_async":
        return
    rollout = config.actor_rollout_ref.rollout
    sync_step = parameter_sync_step(config)
    mini = config.actor_rollout_ref.actor.ppo_mini_batch_size
    if config.data.train_batch_size != sync_step * mini:
        raise ConfigError(
            "data.train_batch_size",
            f"separate_async trains parameter_sync_step local updates of ppo_mini_batch_size prompts a step: "
            f"{config.data.train_batch_size} != trainer.v1.separate_async.parameter_sync_step ({sync_step}) x "
            f"actor_rollout_ref.actor.ppo_mini_batch_size ({mini})",
        )
    for key in ("nnodes", "n_gpus_per_node"):
        if not rollout[key] or rollout[key] <= 0:
            raise ConfigError(
                f"actor_rollout_ref.rollout.{key}",
                f"separate_async runs the rollout on its own resource pool: set it > 0, got {rollout[key]}",
            )
    from entropy_verl.rollout import checkpoint_engine

    backend = rollout.checkpoint_engine.backend
    module = "actor_rollout_ref.rollout.checkpoint_engine.custom_backend_module"
    on_cpu = f"{checkpoint_engine.BACKEND} with {module}={checkpoint_engine.__name__}"
    if backend == "naive":
        raise ConfigError(
            "actor_rollout_ref.rollout.checkpoint_engine.backend",
            "separate_async sends weights through a checkpoint engine, not verl's colocated 'naive' one"
            + (f"; on CPU: {on_cpu}" if config.trainer.device == "cpu" else ""),
        )
    if config.trainer.device == "cpu" and backend != checkpoint_engine.BACKEND:
        raise ConfigError(
            "actor_rollout_ref.rollout.checkpoint_engine.backend",
            f"{backend!r} needs an accelerator's transport (cupy, ...); on CPU: {on_cpu}",
        )


def check_no_padding_samples(config: DictConfig, samples: int, mini: int, world: int) -> None:
    """verl's v1 trainer makes each step's samples a multiple of lcm(data-parallel size, samples per actor
    mini-batch, per critic mini-batch) by appending no-op samples (``_get_required_batch_multiple``,
    ``upsample_batch_to_divisible_size``): 512 prompts x 8 samples on 3 nodes x 8 GPUs become 6,144 samples, a third
    of each step's training compute spent on padding. Refuse a batch verl would pad, naming the sizes that fit."""
    sp = int(OmegaConf.select(config, "actor_rollout_ref.actor.ulysses_sequence_parallel_size", default=1) or 1)
    dp = max(world // sp, 1)
    prompts = int(config.data.train_batch_size)
    n = samples // prompts
    minis = {"actor_rollout_ref.actor.ppo_mini_batch_size": mini}
    if OmegaConf.select(config, "algorithm.adv_estimator", default=None) == "gae":  # verl's critic trains too
        minis["critic.ppo_mini_batch_size"] = int(OmegaConf.select(config, "critic.ppo_mini_batch_size")) * n
    multiple = math.lcm(dp, *minis.values())
    if samples % multiple == 0:
        return
    padded = -(-samples // multiple) * multiple
    why = f"verl pads each step's {samples} samples (data.train_batch_size x rollout.n) to {padded} with no-op samples"
    if samples % dp:
        step = multiple // math.gcd(multiple, n)  # prompts per step that fill whole mini-batches on every worker
        raise ConfigError(
            "data.train_batch_size",
            f"{why}: {samples} samples do not split evenly over {dp} data-parallel workers; with these mini-batches "
            f"use a multiple of {step} prompts (e.g. {max(prompts // step, 1) * step} or "
            f"{(prompts // step + 1) * step})",
        )
    key = next(k for k, v in minis.items() if v % dp or samples % v)
    fits = [m for m in range(1, prompts + 1) if prompts % m == 0 and (m * n) % dp == 0]
    raise ConfigError(
        key,
        f"{why}, a multiple of lcm({dp} data-parallel workers, samples per mini-batch {sorted(set(minis.values()))}) "
        f"= {multiple}: use a mini-batch (in prompts) that divides data.train_batch_size={prompts} and whose samples "
        f"{dp} workers share evenly, e.g. {fits[-3:]}",
    )


class NoOpWarning(UserWarning):
    """A configured method that cannot change training with the run's settings (silence it with Python's
    ``-W ignore::entropy_verl.validation.NoOpWarning``)."""


# verl's own policy losses that act only through the importance ratio: on-policy they equal vanilla GRPO
RATIO_ONLY_LOSS_MODES = {
    "cispo": "CISPO (REINFORCE weighted by the clipped, detached ratio) equals vanilla GRPO",
    "kl_cov": "KL-Cov (a penalty |log pi - log pi_old| whose value and gradient vanish) equals vanilla GRPO",
}


def ratio_is_one(config: DictConfig) -> str | None:
    """Why every importance ratio of the run is 1 (each mini-batch is trained once, by the policy that has just
    recomputed its old log-probs), or None when some are not."""
    actor = "actor_rollout_ref.actor"
    epochs = OmegaConf.select(config, f"{actor}.ppo_epochs", default=1)
    mini = OmegaConf.select(config, f"{actor}.ppo_mini_batch_size", default=None)
    batch = OmegaConf.select(config, "data.train_batch_size", default=None)
    bypass = OmegaConf.select(config, "algorithm.rollout_correction.bypass_mode", default=False)
    if epochs != 1 or mini is None or batch is None or mini < batch or bypass:
        return None
    return (
        f"every ratio is 1: one epoch ({actor}.ppo_epochs=1) over one mini-batch ({actor}.ppo_mini_batch_size={mini} "
        f">= data.train_batch_size={batch}); it acts with ppo_epochs > 1 or a ppo_mini_batch_size that splits the "
        "step into several updates"
    )


def methods_that_cannot_act(config: DictConfig, parsed: EntropyVerlConfig) -> list[str]:
    """One message per configured method that cannot change training: a ratio-based one (registered ``ratio_only``,
    or verl's CISPO, KL-Cov and clip-higher) while every ratio is 1, or one whose settings make it the identity
    (its registration's ``no_op``, at every point of its schedules)."""
    messages = []
    if on_policy := ratio_is_one(config):
        actor = "actor_rollout_ref.actor"
        mode = OmegaConf.select(config, f"{actor}.policy_loss.loss_mode", default="vanilla")
        if mode in RATIO_ONLY_LOSS_MODES:
            messages.append(f"{actor}.policy_loss.loss_mode={mode}: {RATIO_ONLY_LOSS_MODES[mode]} when {on_policy}")
        low = OmegaConf.select(config, f"{actor}.clip_ratio_low", default=None)
        high = OmegaConf.select(config, f"{actor}.clip_ratio_high", default=None)
        if mode == "vanilla" and low is not None and high is not None and high != low:
            messages.append(
                f"{actor}.clip_ratio_high={high}: clip-higher (clip_ratio_low={low}) never clips when {on_policy}"
            )
        for spec, _ in parsed.loss_methods:
            if spec.ratio_only:
                messages.append(f"{spec.key}: {spec.name} acts only through the importance ratio, and {on_policy}")
    entries = [*parsed.loss_methods, *([parsed.estimator] if parsed.estimator else [])]
    for spec, cfg in entries:
        if spec.no_op is None:
            continue
        schedules = parsed.schedules.get(spec.name, {})
        reasons = {spec.no_op(with_values(cfg, values_at(schedules, step))) for step in {0, *points(schedules)}}
        if None not in reasons:
            messages.append(f"{spec.key}: {spec.name} changes nothing: {'; '.join(sorted(reasons))}")
    return messages


def validate(config: DictConfig, in_trainer: bool = False) -> EntropyVerlConfig:
    """All entropy_verl start-up checks, cheapest first; returns the parsed ``entropy_verl`` block. ``in_trainer``: run
    by the trainer's construction (under either entry point, before any worker starts), where what
    ``entropy_verl.main`` sets up before Ray must already be in place."""
    check_rollout_name(config)
    check_cpu_vllm(config)
    check_run_length_and_workers(config)
    check_verl_sections(config)  # verl's own keys: types, ranges, its typed configs (entropy_verl/verl_keys.py)
    parsed = parse(config)
    check_separate_async(config)
    check_batch_divisibility(config)
    check_entropy_control(config, parsed, in_trainer)
    check_task(config, parsed)
    check_advantage_estimator(config)
    check_local_path(config, "actor_rollout_ref.model.path", "model path")
    check_local_path(config, "data.train_files", "training data")
    check_local_path(config, "data.val_files", "validation data")
    check_model(config, parsed, _is_embedded(config, "actor_rollout_ref.model.path"), in_trainer)
    check_reward_file(config)
    check_reward_thresholds(config, parsed)
    check_data_files(config)
    check_steps_fit_the_data(config)
    check_reward_on_data(config, parsed)
    check_resume_state(config, parsed)
    for message in methods_that_cannot_act(config, parsed):
        warnings.warn(message, NoOpWarning, stacklevel=2)
    return parsed
