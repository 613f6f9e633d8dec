"""``PlatformCPU``: verl's platform interface answered for a CPU-only host.

verl resolves its platform once per process (``verl.plugin.platform.get_platform``) by probing registered platforms in
registration order; NVIDIA, NPU and ROCm come first, so a machine with an accelerator never reaches this one.
We register it only when no accelerator is visible at all, which keeps the GPU path exactly verl's own.
"""

from __future__ import annotations

import functools
import os
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import torch
from verl.plugin.platform import PlatformBase, PlatformRegistry

from . import device_module

PLATFORM_NAME = "cpu"


def _torch_has_accelerator_build() -> bool:
    """Whether this torch was built for an accelerator (CUDA, ROCm, Ascend, XPU). A CPU-only Ray actor on a GPU node,
    or a node where no GPU is visible, still has the CUDA build: verl's own platform belongs there."""
    if torch.version.cuda is not None or torch.version.hip is not None or torch.cuda.is_available():
        return True
    return any(hasattr(torch, name) and getattr(torch, name).is_available() for name in ("npu", "xpu"))


def cpu_platform_wanted() -> bool:
    """True when verl should run on the CPU: the run asks for it (``VERL_PLATFORM=cpu``, which ``entropy_verl.main``
    sets for ``trainer.device=cpu`` and passes to every Ray worker), or nothing else is possible (a torch built for
    no accelerator). Never merely because this node shows no GPU."""
    forced = os.environ.get("VERL_PLATFORM", "").strip().lower()
    if forced:
        return forced == PLATFORM_NAME
    return not _torch_has_accelerator_build()


class PlatformCPU(PlatformBase):
    """Device ``cpu``, backend ``gloo``, Ray resource ``GPU`` used as logical trainer slots.

    verl's resource pools count ``GPU`` resources; on CPU we start Ray with ``num_gpus=N`` so each slot is one
    trainer process (see ``entropy_verl.main``), and the slot never maps to hardware.
    """

    @property
    def device_name(self) -> str:
        return PLATFORM_NAME

    @property
    def vendor_name(self) -> str:
        return PLATFORM_NAME

    @property
    def device_module(self) -> ModuleType:
        return device_module

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        return cpu_platform_wanted()

    def current_device(self) -> str:  # type: ignore[override]
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: int | None = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        # Ray sets this for "GPU" resources; harmless on CPU and keeps verl's bookkeeping uniform.
        return "CUDA_VISIBLE_DEVICES"

    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_resource_options(self, num_gpus: float) -> dict[str, Any]:
        return {"num_gpus": num_gpus}

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None


def _dedupe_backend(backend: str | None) -> str | None:
    """verl builds ``f"cpu:gloo,{device}:{backend}"``; with device ``cpu`` that names cpu twice and torch refuses."""
    if not backend or "," not in backend:
        return backend
    pairs = list(dict.fromkeys(part.strip() for part in backend.split(",") if part.strip()))
    devices = [p.split(":", 1)[0] for p in pairs]
    if len(set(devices)) != len(devices):
        raise ValueError(f"conflicting process-group backends for one device type: {backend!r}")
    return pairs[0].split(":", 1)[1] if len(pairs) == 1 else ",".join(pairs)


def _install_backend_dedupe() -> None:
    init = torch.distributed.init_process_group
    if getattr(init, "_entropy_verl_dedupe", False):
        return

    @functools.wraps(init)
    def init_process_group(*args, backend: str | None = None, **kwargs):
        return init(*args, backend=_dedupe_backend(backend), **kwargs)

    init_process_group._entropy_verl_dedupe = True
    torch.distributed.init_process_group = init_process_group


def register_cpu_platform() -> bool:
    """Register ``PlatformCPU`` with verl when the CPU is wanted (``cpu_platform_wanted``). Returns whether it did."""
    if not cpu_platform_wanted():
        return False
    PlatformRegistry.register(platform=PLATFORM_NAME)(PlatformCPU)
    _install_backend_dedupe()
    return True
