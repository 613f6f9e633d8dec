"""Everything the GPU image installs resolves to wheels for its Python (3.12) on manylinux x86_64, as pip resolves
it there (``--only-binary=:all:``, the image's platform tags), with the versions the image's files pin: this is
where a source-only pin (flash-attn's sdist, an sdist-only dependency) shows before anyone builds the image. Needs the
package index (CI has it); a package this index lacks is reported as such and skips the test, naming it, rather than
passing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("check_pins", ROOT / "docker" / "check_pins.py")
check_pins = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_pins)

MIRROR = "missing from this package index"


@pytest.mark.slow
def test_the_gpu_images_installs_resolve_to_wheels_at_its_pins(tmp_path):
    resolved = check_pins.resolve_image_wheels(ROOT, tmp_path)
    real = [(req, why) for req, why in resolved["problems"] if why != MIRROR]
    assert not real, real  # source only / no wheel for Python 3.12 manylinux x86_64: the image would not build
    if resolved["problems"]:
        pytest.skip(f"this package index lacks {resolved['problems']}: resolution incomplete")
    installed = resolved["installed"]
    assert all(file.endswith(".whl") for _, file in installed.values())
    for name, version in check_pins.image_pins(ROOT).items():
        if name != "flash-attn":  # built in the image's own stage from its sdist
            assert installed[name][0] == version, (name, installed[name], version)
    assert installed["antlr4-python3-runtime"][1].endswith("-py3-none-any.whl")  # hydra's, built in the image's stage
    print(f"{len(installed)} packages, all wheels for Python {check_pins.IMAGE_PYTHON}")


def test_a_source_only_pin_is_named_and_not_mistaken_for_a_missing_file():
    # flash-attn 2.8.3 is on PyPI as a source package only: asked for as a wheel, it must be reported as such
    assert check_pins.classify_missing("flash-attn==2.8.3") == "source only"
    assert check_pins.classify_missing("entropy-verl-no-such-package==1.0") == MIRROR
