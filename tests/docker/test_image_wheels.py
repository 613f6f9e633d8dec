"""Everything the GPU image installs resolves to wheels for its Python (3.12) on its glibc (Ubuntu 24.04's 2.39), as
the image's own pip (the Dockerfile's ``pip==X``) resolves it there (``--only-binary=:all:``, the image's platform
tags, ``-c`` the lock), and the result is exactly the committed lock, docker/constraints-gpu.txt: a lock that no
longer matches what the image's files ask for fails here (regenerate it: ``make lock-gpu-image``). This is also where
a source-only pin (flash-attn's sdist, an sdist-only dependency) shows before anyone builds the image. Needs the
package index (CI has it); a package this index lacks is reported as such and skips the test, naming it, rather than
passing."""

from __future__ import annotations

import difflib
import importlib.util
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("check_pins", ROOT / "docker" / "check_pins.py")
check_pins = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_pins)

MIRROR = check_pins.MIRROR
NOT_HERE = (check_pins.MIRROR, check_pins.NO_PYTHON)  # gaps of this machine, not of the image


def resolved_or_skip(resolved: dict) -> dict:
    real = [(req, why) for req, why in resolved["problems"] if why not in NOT_HERE]
    assert not real, real  # source only / no wheel for Python 3.12 manylinux x86_64 / a stale lock: fix the image
    if resolved["problems"]:
        pytest.skip(f"cannot resolve the image here: {resolved['problems']}")
    return resolved


@pytest.mark.slow
def test_the_gpu_image_resolves_to_its_lock_with_its_own_pip(tmp_path):
    lock = ROOT / check_pins.LOCK
    resolved = resolved_or_skip(check_pins.resolve_image(ROOT, tmp_path, constraints=lock))
    # the resolver that ran is the image's pip (the Dockerfile's pin), under the image's Python
    pip_version = check_pins.image_pip_version(ROOT)
    assert resolved["pip"] == pip_version
    assert re.fullmatch(
        rf"pip {re.escape(pip_version)} from \S+ \(python {check_pins.IMAGE_PYTHON}\)", resolved["pip_version_output"]
    ), resolved["pip_version_output"]
    installed = resolved["installed"]
    assert all(file.endswith(".whl") for _, file in installed.values())
    rendered, committed = check_pins.render_lock(installed, ROOT), lock.read_text()
    diff = "".join(difflib.unified_diff(committed.splitlines(True), rendered.splitlines(True), "committed", "resolved"))
    assert rendered == committed, f"{check_pins.STALE}\n{diff[:4000]}"
    for name, version in check_pins.image_pins(ROOT).items():
        if name != "flash-attn":  # built in the image's own stage from its sdist
            assert installed[name][0] == version, (name, installed[name], version)
    assert installed["antlr4-python3-runtime"][1].endswith("-py3-none-any.whl")  # hydra's, built in the image's stage
    # flash-attn, compiled in the image and so not resolved here: what it requires is in the lock all the same
    flash_attn = check_pins.image_pins(ROOT)["flash-attn"]
    for requirement in check_pins.sdist_requirements(f"flash-attn=={flash_attn}", tmp_path):
        name = check_pins.normalize(re.match(r"[A-Za-z0-9_.-]+", requirement).group(0))
        assert name in installed, (requirement, "flash-attn requires it; the lock does not pin it")
    print(
        f"{len(installed)} packages, all wheels for Python {check_pins.IMAGE_PYTHON}, {resolved['pip_version_output']}"
    )


def small_image(root: Path, requirements: str, lock: str | None = None) -> Path:
    """A copy of the image's files whose requirements-gpu.txt is ``requirements`` (and no project dependencies)."""
    (root / "docker").mkdir(parents=True)
    for name in ("docker/Dockerfile", "docker/source-builds.txt"):
        shutil.copy(ROOT / name, root / name)
    (root / "docker" / "requirements-gpu.txt").write_text(requirements)
    (root / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = []\n')
    if lock is not None:
        (root / check_pins.LOCK).write_text(lock)
    return root


@pytest.mark.slow
def test_a_lock_is_written_and_a_stale_one_fails(tmp_path, capsys):
    root = small_image(tmp_path / "image", "omegaconf==2.3.1\n")
    if check_pins.write_lock(root) != 0:
        err = capsys.readouterr().err
        assert check_pins.MIRROR in err or check_pins.NO_PYTHON in err, err
        pytest.skip(f"cannot resolve here: {err}")
    lock = (root / check_pins.LOCK).read_text()
    assert re.search(r"^omegaconf==2\.3\.1 +# omegaconf-2\.3\.1-py3-none-any\.whl$", lock, re.M)
    assert re.search(r"^pyyaml==\S+ +# \S+\.whl$", lock, re.M)  # omegaconf's requirement, locked too
    assert check_pins.check_wheels(root) == []  # the lock it wrote is what a resolution against it gives
    # a package the lock no longer pins (a requirement added since it was written): the resolution differs
    (root / check_pins.LOCK).write_text(re.sub(r"^pyyaml==.*\n", "", lock, flags=re.M))
    assert check_pins.check_wheels(root) == [(str(check_pins.LOCK), check_pins.STALE)]
    # a pin moved in requirements-gpu.txt but not in the lock: a conflict, reported as a stale lock, never as a gap
    (root / "docker" / "requirements-gpu.txt").write_text("omegaconf==2.3.0\n")
    (root / check_pins.LOCK).write_text(lock)
    [(what, why)] = check_pins.check_wheels(root)
    assert what == str(check_pins.LOCK) and why.startswith(check_pins.STALE), why


def test_a_source_only_pin_is_named_and_not_mistaken_for_a_missing_file():
    # flash-attn 2.8.3 is on PyPI as a source package only: asked for as a wheel, it must be reported as such
    assert check_pins.classify_missing("flash-attn==2.8.3") == "source only"
    assert check_pins.classify_missing("entropy-verl-no-such-package==1.0") == MIRROR
