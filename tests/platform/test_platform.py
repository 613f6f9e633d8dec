"""verl loads our plugin in a fresh process, selects the CPU platform only when the run asks for it or torch has no
accelerator build, adds nothing heavy to a GPU node's processes, and the registrations a verl worker needs are all
present."""

import json
import subprocess
import sys
import textwrap

import pytest

from entropy_verl.platform.cpu.platform import _dedupe_backend


def run_fresh(code: str, **env) -> dict:
    """Run ``code`` in a new interpreter (verl resolves its platform once per process) and return its JSON line."""
    import os

    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONWARNINGS": "ignore", **env},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_verl_loads_our_registrations():
    result = run_fresh(
        """
        import json, sys
        import verl  # loads every verl.plugins entry point; ours must not fail silently
        plugin = sys.modules.get("entropy_verl.plugin")
        from verl.utils.device import get_device_name, get_nccl_backend, get_resource_name, get_torch_device
        from verl.workers.engine.base import EngineRegistry
        from verl.workers.rollout.base import _ROLLOUT_REGISTRY, get_rollout_class
        from verl.workers.rollout.replica import get_rollout_replica_class
        print(json.dumps({
            "loaded": plugin is not None,
            "error": repr(plugin.LOAD_ERROR) if plugin else "not loaded",
            "device": get_device_name(), "backend": get_nccl_backend(), "resource": get_resource_name(),
            "empty_cache": get_torch_device().empty_cache() is None,
            "engine": EngineRegistry.get_engine_cls("language_model", "fsdp2").__name__,
            "adapter": get_rollout_class("hf", "async").__name__,
            "replica": get_rollout_replica_class("hf").__name__,
        }))
        """
    )
    assert result == {
        "loaded": True,
        "error": "None",
        "device": "cpu",
        "backend": "gloo",
        "resource": "GPU",
        "empty_cache": True,
        "engine": "FSDPEngineWithLMHead",
        "adapter": "HFServerAdapter",
        "replica": "HFReplica",
    }


def test_gpu_platform_is_kept_when_cuda_is_available():
    # Pretend CUDA is present before verl (and so our plugin) is imported: verl's NVIDIA platform must win and our
    # CPU platform must not even be registered, while the hf rollout stays available.
    result = run_fresh(
        """
        import json, torch
        torch.cuda.is_available = lambda: True
        import verl, entropy_verl.plugin as plugin
        from verl.plugin.platform import PlatformRegistry, get_platform
        from verl.workers.rollout.base import _ROLLOUT_REGISTRY
        p = get_platform()
        print(json.dumps({"platform": type(p).__name__, "device": p.device_name, "cpu_registered": "cpu" in
                          PlatformRegistry.registered_names(), "cpu_active": plugin.CPU_PLATFORM_ACTIVE,
                          "hf": ("hf", "async") in _ROLLOUT_REGISTRY}))
        """
    )
    assert result == {
        "platform": "PlatformCUDA",
        "device": "cuda",
        "cpu_registered": False,
        "cpu_active": False,
        "hf": True,
    }


def test_gloo_process_group_initialises_through_verl():
    result = run_fresh(
        """
        import json, torch.distributed as dist
        import verl
        from verl.utils.distributed import initialize_global_process_group_ray
        initialize_global_process_group_ray()  # builds "cpu:gloo,cpu:gloo", which torch alone rejects
        t = __import__("torch").ones(2)
        dist.all_reduce(t)
        print(json.dumps({"backend": dist.get_backend(), "sum": t.tolist()}))
        dist.destroy_process_group()
        """,
        RANK="0",
        WORLD_SIZE="1",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT="29631",
    )
    assert result == {"backend": "gloo", "sum": [1.0, 1.0]}


def test_plugin_failure_is_loud():
    # Break the plugin on purpose (its rollout module cannot be imported). verl would hide that at DEBUG level;
    # we must print it, and check_loaded() (called by entropy_verl.main before anything starts) must raise it.
    import os

    code = textwrap.dedent(
        """
        import sys
        sys.modules["entropy_verl.rollout.hf"] = None
        import verl, entropy_verl.plugin as plugin
        try:
            plugin.check_loaded()
        except RuntimeError as exc:
            print("RAISED", exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=dict(os.environ)
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "plugin failed to register with verl" in out.stderr
    assert "RAISED entropy_verl's verl plugin failed to load" in out.stdout


@pytest.mark.parametrize(
    "given,expected",
    [("cpu:gloo,cpu:gloo", "gloo"), ("cpu:gloo,cuda:nccl", "cpu:gloo,cuda:nccl"), ("gloo", "gloo"), (None, None)],
)
def test_dedupe_backend(given, expected):
    assert _dedupe_backend(given) == expected


def test_dedupe_backend_rejects_conflicts():
    with pytest.raises(ValueError, match="conflicting"):
        _dedupe_backend("cpu:gloo,cpu:mpi")


FAKE_CUDA_BUILD = """
import json, sys, time, torch
torch.version.cuda = "13.0"                      # a CUDA build of torch, as on a GPU node
torch.cuda.is_available = lambda: {visible}     # with or without a visible GPU
start = time.perf_counter()
import verl
seconds = time.perf_counter() - start
from verl.plugin.platform import PlatformRegistry, get_platform
print(json.dumps({{"seconds": seconds, "modules": sorted(sys.modules), "platform": type(get_platform()).__name__,
                  "cpu_registered": "cpu" in PlatformRegistry.registered_names()}}))
"""
HEAVY = ("verl.workers.engine", "verl.trainer.ppo.v1", "transfer_queue", "peft", "vllm", "entropy_verl.trainer")


def test_the_plugin_adds_no_verl_engine_or_trainer_modules_on_a_gpu_node():
    code = FAKE_CUDA_BUILD.format(visible=True)
    without = run_fresh(code, VERL_USE_EXTERNAL_PLUGINS="none")
    with_ours = run_fresh(code, VERL_USE_EXTERNAL_PLUGINS="auto")
    added = sorted(set(with_ours["modules"]) - set(without["modules"]))
    print(f"import verl: {without['seconds']:.2f} s without our plugin, {with_ours['seconds']:.2f} s with it; +{added}")
    assert added and all(name.startswith("entropy_verl") for name in added), added
    assert not [name for name in added if name.startswith(HEAVY)]
    assert with_ours["platform"] == "PlatformCUDA" and not with_ours["cpu_registered"]


def test_a_node_showing_no_gpu_keeps_verls_platform_unless_the_run_asks_for_the_cpu():
    # a KubeRay head, or a CPU-only Ray actor on a GPU node: torch is the CUDA build, no GPU is visible
    no_gpu = run_fresh(FAKE_CUDA_BUILD.format(visible=False))
    assert no_gpu["platform"] == "PlatformCUDA" and not no_gpu["cpu_registered"]  # verl's own fallback
    asked = run_fresh(FAKE_CUDA_BUILD.format(visible=False), VERL_PLATFORM="cpu")  # trainer.device=cpu
    assert asked["platform"] == "PlatformCPU" and asked["cpu_registered"]
