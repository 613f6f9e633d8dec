"""What the two benchmarks' results share: the machine they ran on, the stamp every result starts with (date,
commit, machine, command), the markdown header made from it, and the two files written (``results.json``,
``results.md``). torch and the standard library only: ``make bench`` runs where verl is not installed."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess

import torch

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def machine(device: str | None = None) -> dict:
    """The CPU (model, count), torch (version, threads) and Python; with ``device="cuda"`` also the GPU and CUDA."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    info = {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    if device == "cuda":
        info.update(gpu=torch.cuda.get_device_name(), cuda=torch.version.cuda)
    return info


def describe(info: dict) -> str:
    """``machine()``'s dict in one line."""
    gpu = f"{info['gpu']} (CUDA {info['cuda']}); " if info.get("gpu") else ""
    return f"{gpu}{info['cpu_model']}, {info['cpu_count']} CPUs; torch {info['torch']}, {info['torch_threads']} threads"


def git_commit(checkout: str = REPO) -> str | None:
    """The checkout's short commit, ``+dirty`` with uncommitted changes; None outside a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=checkout, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def stamp(command: str, device: str | None = None) -> dict:
    """The fields a result starts with: when, from which commit, on which machine, by which command."""
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "machine": machine(device),
        "command": command,
    }


def header(title: str, result: dict) -> list[str]:
    """The markdown's first lines, from ``result``'s stamp."""
    return [
        f"# {title}",
        "",
        f"{describe(result['machine'])}; {result['date']}, commit {result['git_commit'] or 'unknown'}.",
        "",
        f"Command: `{result['command']}`",
        "",
    ]


def write_results(result: dict, markdown: str, out: str, log_prefix: str) -> None:
    """``<out>/results.json`` (``result``) and ``<out>/results.md`` (``markdown``), both printed to say so."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(markdown)
    print(markdown)
    print(f"{log_prefix} results written to {os.path.abspath(out)}/results.{{json,md}}")
