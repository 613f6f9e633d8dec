"""The one packaging fact pyproject.toml cannot say: the repository keeps ``trainer_configs/`` at its top level, and
an installed package carries it as ``entropy_verl/trainer_configs/`` (its config groups as data-only subpackages), so
a built wheel (``pip install .``) runs from any directory. Everything else is in pyproject.toml."""

import os

from setuptools import find_packages, setup

CONFIGS = "entropy_verl.trainer_configs"
GROUPS = sorted(d for d in os.listdir("trainer_configs") if os.path.isdir(os.path.join("trainer_configs", d)))
config_packages = [CONFIGS, *(f"{CONFIGS}.{group}" for group in GROUPS)]

setup(
    packages=[*find_packages(include=["entropy_verl*"]), *config_packages],
    package_dir={CONFIGS: "trainer_configs"},
    package_data={package: ["*.yaml"] for package in config_packages},
)
