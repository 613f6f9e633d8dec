"""The pieces of entropy_verl/rollout/vllm_cpu/ that run without a vLLM engine: the ``vllm`` version lookup, the
start-up check of a CPU + vLLM run's settings, and the removal of the /dev/shm segments a run leaves. The weight
sync itself runs end to end in tests/e2e/test_vllm_rollout.py."""

from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys
import time
from multiprocessing import resource_tracker, shared_memory

import pytest

from entropy_verl.config import ConfigError
from entropy_verl.rollout.vllm_cpu import EXTENSION_FQN, VLLM_CPU_DISTRIBUTION, shm
from entropy_verl.rollout.vllm_cpu.metadata import cpu_build_only
from entropy_verl.rollout.vllm_cpu.settings import REQUIRED, check_cpu_vllm
from entropy_verl.validation import validate

needs_vllm_cpu = pytest.mark.skipif(not cpu_build_only(), reason="needs vllm-cpu without vllm: make install-vllm-cpu")


@needs_vllm_cpu
def test_verl_finds_the_cpu_build_under_the_name_vllm():
    # a fresh interpreter: `import verl` loads our plugin, which installs the alias; vLLM's platform detection then
    # still sees a CPU build (the +cpu label), and the rest of importlib.metadata is untouched
    code = (
        "import importlib.metadata as md, verl; "
        "print(md.version('vllm'), md.version('vllm-cpu'), md.distribution('vllm').metadata['Name'], "
        "sum(d.metadata['Name'] == 'vllm' for d in md.distributions()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    cpu_version = md.version(VLLM_CPU_DISTRIBUTION)
    assert out.stdout.split() == [f"{cpu_version}+cpu", cpu_version, "vllm", "0"]


def test_without_the_cpu_build_nothing_answers_for_vllm():
    from entropy_verl.rollout.vllm_cpu.metadata import VllmCpuAlias

    finder = VllmCpuAlias()
    assert list(finder.find_distributions(md.DistributionFinder.Context(name="numpy"))) == []
    assert list(finder.find_distributions(md.DistributionFinder.Context())) == []  # no listing of everything
    found = list(finder.find_distributions(md.DistributionFinder.Context(name="vllm")))
    assert len(found) == (1 if cpu_build_only() else 0)


CPU_VLLM = "hardware=embedded_cpu_vllm"


@needs_vllm_cpu
def test_the_cpu_overlay_passes_validation(run_config):
    config = run_config(CPU_VLLM, "experiment=embedded_entropic")
    validate(config)
    assert config.actor_rollout_ref.rollout.engine_kwargs.vllm.worker_extension_cls == EXTENSION_FQN


@needs_vllm_cpu
@pytest.mark.parametrize(
    "override,value",
    [
        ("actor_rollout_ref.rollout.enable_sleep_mode=true", "True"),
        ("actor_rollout_ref.rollout.enforce_eager=false", "False"),
        ("actor_rollout_ref.rollout.engine_kwargs.vllm.worker_extension_cls=null", "None"),
        ("actor_rollout_ref.rollout.engine_kwargs.vllm.kv_cache_memory_bytes=null", "None"),
        ("actor_rollout_ref.rollout.checkpoint_engine.update_weights_bucket_megabytes=2048", "2048"),
        ("~ray_kwargs.ray_init.runtime_env.env_vars.VLLM_CPU_OMP_THREADS_BIND", "None"),
    ],
)
def test_a_cpu_vllm_run_missing_a_setting_is_refused(run_config, override, value):
    key = override.lstrip("~").split("=")[0]
    with pytest.raises(ConfigError) as err:
        validate(run_config(CPU_VLLM, override))
    assert err.value.key == key and f"is {value}" in str(err.value), str(err.value)


def test_every_required_setting_is_in_the_overlay_and_nowhere_else(run_config):
    cpu = run_config(CPU_VLLM)
    keys = {key for key, _, _ in REQUIRED}
    for key, ok, _ in REQUIRED:
        assert ok(_select(cpu, key)), key
    # the cluster base keeps verl's GPU values: sleep mode on, no CPU extension, verl's bucket size
    gpu = run_config("hardware=cluster_gpu")
    assert _select(gpu, "actor_rollout_ref.rollout.enable_sleep_mode") in (None, True)  # None: verl's default, on
    assert _select(gpu, "actor_rollout_ref.rollout.engine_kwargs.vllm.worker_extension_cls") is None
    assert _select(gpu, "actor_rollout_ref.rollout.checkpoint_engine.update_weights_bucket_megabytes") == 2048
    check_cpu_vllm(gpu)  # not a CPU run: nothing to check
    assert "ray_kwargs.ray_init.runtime_env.env_vars.VLLM_CPU_OMP_THREADS_BIND" in keys


def _select(config, key):
    from omegaconf import OmegaConf

    return OmegaConf.select(config, key, default=None)


def test_leftover_segments_are_removed_and_live_ones_kept():
    before = shm.segments()
    left = shared_memory.SharedMemory(create=True, size=4096)  # created during the "run", then abandoned
    left.close()
    resource_tracker.unregister(left._name, "shared_memory")  # the test removes it, not this process's tracker
    # a segment another living process maps (a concurrent run's) stays
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from multiprocessing import shared_memory as s; m = s.SharedMemory("
            "create=True, size=4096); print(m.name, flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    live = "/dev/shm/" + holder.stdout.readline().strip()
    try:
        removed = shm.remove_leftovers(before, wait_s=0.0)
        assert removed == [f"/dev/shm/{left.name}"]
        assert live in shm.segments()
    finally:
        holder.communicate("")
        shm.remove_leftovers(before, wait_s=5.0)
    assert live not in shm.segments()


def test_on_a_joined_cluster_the_multiprocessing_segments_made_since_the_start_are_removed():
    """No snapshot of /dev/shm from before the run on a joined cluster's nodes: multiprocessing's segments (vLLM's)
    changed since the run started and mapped by no process go; older ones and other files stay."""
    older = shared_memory.SharedMemory(create=True, size=4096)  # there before the run
    old_time = time.time() - 60
    os.utime(f"/dev/shm/{older.name}", (old_time, old_time))
    start = time.time() - 1
    left = shared_memory.SharedMemory(create=True, size=4096)
    other = f"/dev/shm/entropy_verl_test_{os.getpid()}"  # not multiprocessing's
    open(other, "w").close()
    for segment in (older, left):
        segment.close()
        resource_tracker.unregister(segment._name, "shared_memory")
    try:
        assert shm.remove_leftovers(since=start, wait_s=0.0) == [f"/dev/shm/{left.name}"]
        assert {f"/dev/shm/{older.name}", other} <= shm.segments()
        with pytest.raises(ValueError, match="exactly one"):
            shm.remove_leftovers(wait_s=0.0)
    finally:
        for path in (f"/dev/shm/{older.name}", other):
            os.unlink(path)


def test_verl_shared_memory_weight_transfer_on_cpu(tmp_path):
    """verl's bucketed weight transfer as the CPU vLLM rollout uses it (use_shm: no CUDA IPC), in one process: every
    tensor arrives exactly, across several buckets; the receiver hands out views of
    the shared-memory bucket (hence the extension's copy, made here as it makes it), and no segment is left."""
    import asyncio
    import threading

    import torch
    from verl.workers.rollout.vllm_rollout.bucketed_weight_transfer import (
        BucketedWeightReceiver,
        BucketedWeightSender,
    )

    generator = torch.Generator().manual_seed(0)
    sent = {f"layer{i}.weight": torch.randn(256, 256, generator=generator) for i in range(5)}  # 256 KiB each
    sent["norm.weight"] = torch.randn(7, generator=generator, dtype=torch.float64)
    handle = f"ipc://{tmp_path}/weights.sock"
    before = shm.segments()
    received, buckets, views = {}, [], []

    def on_bucket(weights, is_last):
        buckets.append(([name for name, _ in weights], is_last))
        views.append({t.untyped_storage().nbytes() for _, t in weights})  # the storage each tensor lives in
        received.update((name, t.clone()) for name, t in weights)  # copy out, as CPUWeightSyncExtension does

    receiver = threading.Thread(
        target=lambda: BucketedWeightReceiver(handle, torch.device("cpu"), use_shm=True).receive_weights(on_bucket)
    )
    receiver.start()
    asyncio.run(BucketedWeightSender(handle, bucket_size_mb=1, use_shm=True).async_send_weights(iter(sent.items())))
    receiver.join(timeout=30)
    assert not receiver.is_alive()
    assert received.keys() == sent.keys()
    assert all(torch.equal(received[name], tensor) for name, tensor in sent.items())
    assert views == [{1 << 20}] * len(buckets)  # views into the 1 MiB bucket, not tensors of their own
    assert len(buckets) >= 2 and buckets[-1][1] and not any(last for _, last in buckets[:-1])
    assert shm.segments() - before == set()
