"""``python -m entropy_verl.main``: verl's PPO/GRPO entry point with entropy_verl's configs and checks.

It composes ``trainer_configs/config.yaml`` (verl's ``ppo_trainer`` plus one choice per group: ``hardware=``,
``task=``, ``method=``, ``experiment=``), validates it before any Ray worker starts, then hands it to verl's own
``run_ppo`` with verl's v1 ``TaskRunnerV1``.

    python -m entropy_verl.main method=clip_b data.seed=1
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from entropy_verl import resolvers, run_state
from entropy_verl.config import TRAINER_NAME, verl_trainer_mode
from entropy_verl.diagnostics.run_summary import format_summary, summarize
from entropy_verl.engine import ENGINE_VENDOR_KEY, VOCAB_STATS_VENDOR
from entropy_verl.resolvers import listed_methods
from entropy_verl.rollout.vllm_cpu import shm
from entropy_verl.rollout.vllm_cpu.settings import is_cpu_vllm_run
from entropy_verl.trainer.watchdog import (
    DEFAULT_LOST_WORKER_GRACE_S,
    DEFAULT_WORKER_CHECK_S,
    LostWorkerMonitor,
    WorkerDied,
    name_lost_workers,
)

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _config_dir() -> str:
    """trainer_configs/: inside an installed package (setup.py ships it there), else beside the package in a checkout
    (an editable install)."""
    places = [
        os.path.join(PACKAGE_DIR, "trainer_configs"),
        os.path.join(os.path.dirname(PACKAGE_DIR), "trainer_configs"),
    ]
    for path in places:
        if os.path.isfile(os.path.join(path, "config.yaml")):
            return path
    raise FileNotFoundError(f"entropy_verl's trainer_configs/config.yaml is in neither {places}: reinstall the package")


CONFIG_DIR = _config_dir()
CONFIG_NAME = "config"
GROUPS = ("hardware", "task", "method", "experiment")  # the config groups of trainer_configs/


def group_options(group: str) -> list[str]:
    """The options of one config group of trainer_configs/, e.g. every method name."""
    return sorted(f[: -len(".yaml")] for f in os.listdir(os.path.join(CONFIG_DIR, group)) if f.endswith(".yaml"))


def selection(name: str) -> str:
    """A method or experiment name as its Hydra override: ``clip_b`` -> ``method=clip_b``, ``embedded_entropic`` ->
    ``experiment=embedded_entropic``; an explicit ``group=option`` passes through."""
    if "=" in name:
        return name
    groups = [group for group in ("method", "experiment") if name in group_options(group)]
    if len(groups) != 1:
        raise ValueError(
            f"{name!r} is {'both a method and an experiment' if groups else 'no method or experiment'}; "
            f"methods: {', '.join(group_options('method'))}; experiments: {', '.join(group_options('experiment'))}"
        )
    return f"{groups[0]}={name}"


def compose_run(overrides: list[str]) -> DictConfig:
    """The run config ``python -m entropy_verl.main <overrides>`` would get, composed in-process (demo, compare, tests),
    with ``trainer.experiment_name`` fixed to its value (it reads Hydra's choices, which only exist while composing)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        config = compose(config_name=CONFIG_NAME, overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(config)
    return pin_run_name(config)


def pin_run_name(config: DictConfig) -> DictConfig:
    """Resolve ``trainer.experiment_name`` now and drop Hydra's own node from the run config."""
    from entropy_verl.config import ConfigError

    methods = listed_methods()
    if twice := sorted({name for name in methods if methods.count(name) > 1}):
        raise ConfigError("method", f"lists {twice} more than once: each method applies once")
    with open_dict(config):
        config.trainer.experiment_name = str(config.trainer.experiment_name)
        config.pop("hydra", None)
    return config


LOOPBACK_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": a local Ray keeps 127.0.0.1 (Ray's own switch)


def keep_ray_on_loopback() -> None:
    """A cluster this run starts listens on 127.0.0.1 only: on Linux Ray otherwise advertises the machine's network
    address (``services.resolve_ip_for_localhost``). Ray's own switch is ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``,
    which Ray reads once, when imported (verl has imported it by now): it is set for the processes Ray starts, and
    Ray's copy of it in this one. A value the user set wins; a cluster a run joins is left as it is."""
    from ray._private import ray_constants

    os.environ.setdefault(LOOPBACK_ONLY_ENV, "0")
    ray_constants.ENABLE_RAY_CLUSTER = ray_constants.env_bool(LOOPBACK_ONLY_ENV, True)


def joins_existing_cluster(ray_init) -> bool:
    """verl's ``run_ppo`` connects to a running cluster when ``ray_init.address`` or ``RAY_ADDRESS`` says so (as in
    every Ray job) instead of starting a local one; ``address: local`` starts a new local one (beside another run's,
    as ``make demo`` runs its two)."""
    address = ray_init.get("address", None) or os.environ.get("RAY_ADDRESS")
    return bool(address) and address != "local"


def use_cpu_platform(config: DictConfig) -> None:
    """``trainer.device=cpu``: verl's CPU platform (ours) here and, through ``VERL_PLATFORM`` in Ray's runtime env, in
    every worker, even on a machine whose torch could use an accelerator."""
    from verl.plugin.platform import get_platform, set_platform

    from entropy_verl import plugin
    from entropy_verl.platform.cpu import PlatformCPU

    os.environ["VERL_PLATFORM"] = "cpu"
    OmegaConf.update(config, "ray_kwargs.ray_init.runtime_env.env_vars.VERL_PLATFORM", "cpu", force_add=True)
    plugin.register_cpu()
    if get_platform().device_name != "cpu":  # resolved before the run's config was read (a GPU machine)
        set_platform(PlatformCPU())


def prepare_config(config: DictConfig) -> DictConfig:
    """Resolve, validate and fill in the run directory and CPU-specific Ray settings. Starts nothing."""
    from verl.utils.device import auto_set_device

    from entropy_verl import plugin
    from entropy_verl.registry import VOCAB_STATS
    from entropy_verl.validation import validate

    plugin.check_loaded()
    parsed = validate(config)  # cheap checks first: a bad key must not wait for the embedded-default build
    OmegaConf.resolve(config)
    if config.trainer.device == "cpu":  # the run asks for the CPU: this process and every Ray worker use it
        use_cpu_platform(config)
    auto_set_device(config)
    with open_dict(config):
        config.trainer.default_local_dir = os.path.abspath(config.trainer.default_local_dir)
        run_dir = run_state.open_run_dir(config)  # also writes the absolute path to entropy_verl.run_dir
        ray_init = config.ray_kwargs.ray_init
        # DictConfig.setdefault returns the plain default, not the stored node, so write through the path.
        OmegaConf.update(
            config,
            "ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH",
            os.path.join(run_dir, run_state.METRICS_FILE),
            force_add=True,
        )
        if parsed.needs(VOCAB_STATS):  # Clip-V: workers build entropy_verl/engine/fsdp.py
            OmegaConf.update(config, ENGINE_VENDOR_KEY, VOCAB_STATS_VENDOR, force_add=True)
        if joins_existing_cluster(ray_init):
            # A Ray job (launch/submit) or an explicit address: the cluster's own resources count, and ray.init refuses
            # num_cpus/num_gpus when connecting. A CPU cluster advertises its trainer slots with `ray start --num-gpus`.
            for key in ("num_cpus", "num_gpus"):
                ray_init.pop(key, None)
        else:
            keep_ray_on_loopback()
            if plugin.CPU_PLATFORM_ACTIVE and ray_init.get("num_gpus") is None:
                # verl's resource pools count Ray "GPU"s; on CPU they are logical trainer slots, and separate_async's
                # standalone rollout pool has its own
                ray_init.num_gpus = config.trainer.nnodes * config.trainer.n_gpus_per_node
                if verl_trainer_mode(config) == "separate_async":
                    rollout = config.actor_rollout_ref.rollout
                    ray_init.num_gpus += rollout.nnodes * rollout.n_gpus_per_node
    return config


def remove_vllm_segments(joined: bool, before: set[str], started: float) -> None:
    """Remove the /dev/shm segments the run's vLLM processes left: on this machine once its own Ray is shut down, or
    on every alive node of a cluster it joined while Ray ends the run's processes (``shm``)."""
    import ray

    if joined:
        if not ray.is_initialized():
            return
        by_node = shm.remove_leftovers_on_every_node(started)
        removed = sorted({path for paths in by_node.values() for path in paths})
        where = f"on {len(by_node)} node(s): {', '.join(by_node)}"
    else:
        ray.shutdown()
        removed, where = shm.remove_leftovers(before), "in /dev/shm"
    if removed:
        print(f"[entropy_verl] removed {len(removed)} shared-memory segments vLLM's processes left {where}")


def lost_worker_monitor(config: DictConfig, joined: bool):
    """On a cluster the job joined: end the job (exit 1) ``trainer.v1.entropy_sync.lost_worker_grace_s`` after a
    worker of it died, wherever verl's trainer is blocked (``watchdog.LostWorkerMonitor``); a local run's Ray ends
    with its driver, and the trainer's own watchdog fails it."""
    if not joined:
        return contextlib.nullcontext()
    own = OmegaConf.select(config, f"trainer.v1.{TRAINER_NAME}", default=None) or {}
    return LostWorkerMonitor(
        float(own.get("worker_check_s", DEFAULT_WORKER_CHECK_S)),
        float(own.get("lost_worker_grace_s", DEFAULT_LOST_WORKER_GRACE_S)),
        lambda error: end_joined_job(f"[entropy_verl] {type(error).__name__}: {error}"),
    )


def end_joined_job(why: str) -> None:
    """Print ``why`` and end the job at once (exit 1). On a cluster the job joined, a driver whose run lost a node
    (the trainer on it or not) took minutes to exit through Ray's shutdown at interpreter exit, in the two-node
    rehearsal; the cluster is not this run's to shut down."""
    print(why, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


def run(config: DictConfig) -> str:
    from verl.trainer.main_ppo import TaskRunnerV1, run_ppo
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    config = prepare_config(config)
    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    start = time.time()
    # CPU + vLLM: vLLM's processes leave their shared-memory segments behind when Ray ends them
    cpu_vllm, joined = is_cpu_vllm_run(config), joins_existing_cluster(config.ray_kwargs.ray_init)
    shm_before, started = shm.segments() if cpu_vllm and not joined else set(), time.time()
    # on a joined cluster, a worker's death ends the job within a grace, wherever the driver or trainer waits
    with lost_worker_monitor(config, joined):
        try:
            run_ppo(config, task_runner_class=TaskRunnerV1)
        except Exception as failure:
            name_lost_workers(failure)  # the trainer's own actor lost with its node: say which, not an actor id
            raise
        finally:
            if cpu_vllm:
                try:
                    remove_vllm_segments(joined, shm_before, started)
                except Exception as exc:  # noqa: BLE001 - never replaces the run's own outcome
                    print(f"[entropy_verl] could not remove vLLM's shared-memory segments: {exc!r}")
    run_dir = config.entropy_verl.run_dir
    metrics_path = os.path.join(run_dir, run_state.METRICS_FILE)
    if os.path.exists(metrics_path):
        print(format_summary(summarize(run_state.load_metrics(run_dir))))
    print(f"[entropy_verl] finished in {time.time() - start:.0f}s; run directory: {run_dir}")
    print(f"[entropy_verl] metrics: {metrics_path}")
    return run_dir


resolvers.register()  # also registered by the plugin in every process that imports verl


@hydra.main(config_path=CONFIG_DIR, config_name=CONFIG_NAME, version_base=None)
def main(config: DictConfig) -> None:
    try:
        run(pin_run_name(config))
    except WorkerDied:
        if not joins_existing_cluster(config.ray_kwargs.ray_init):
            raise
        end_joined_job(traceback.format_exc())


if __name__ == "__main__":
    main()
