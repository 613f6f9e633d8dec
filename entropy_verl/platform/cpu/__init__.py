"""CPU platform: lets verl's own trainer (FSDP2 + gloo, Ray, TransferQueue) run on a machine without a GPU."""

from .platform import PlatformCPU, cpu_platform_wanted, register_cpu_platform

__all__ = ["PlatformCPU", "cpu_platform_wanted", "register_cpu_platform"]
