"""A ``torch.cuda``-shaped namespace for the CPU.

verl calls ``get_torch_device().<fn>()`` (empty_cache, synchronize, mem_get_info, Stream, ...) on whatever module the
platform returns. ``torch.cpu`` has only part of that surface, so this module re-exports it and adds the rest as the
obvious CPU answers: memory is host memory, caches and IPC are no-ops, there is exactly one device.
"""

from __future__ import annotations

import psutil
import torch
from torch.cpu import Event, Stream, current_stream, is_available, stream, synchronize  # noqa: F401


def current_device() -> str:
    # verl passes this straight to ``tensor.to(device=...)``; an int would mean cuda:N.
    return "cpu"


def device_count() -> int:
    return 1


def set_device(device) -> None:
    return None


def empty_cache() -> None:
    return None


def ipc_collect() -> None:
    return None


def mem_get_info(device=None) -> tuple[int, int]:
    vm = psutil.virtual_memory()
    return int(vm.available), int(vm.total)


def memory_allocated(device=None) -> int:
    return 0


def memory_reserved(device=None) -> int:
    return 0


def max_memory_allocated(device=None) -> int:
    return 0


def max_memory_reserved(device=None) -> int:
    return 0


def reset_peak_memory_stats(device=None) -> None:
    return None


def set_per_process_memory_fraction(fraction, device=None) -> None:
    return None


def get_device_name(device=None) -> str:
    return "cpu"


def get_rng_state(device=None) -> torch.Tensor:
    return torch.get_rng_state()


def set_rng_state(state, device=None) -> None:
    torch.set_rng_state(state)


def manual_seed(seed: int) -> None:
    torch.manual_seed(seed)


def manual_seed_all(seed: int) -> None:
    torch.manual_seed(seed)
