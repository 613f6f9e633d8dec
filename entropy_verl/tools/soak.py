"""``python -m entropy_verl.tools.soak --out DIR [--every 10] -- <overrides>``: a long run, watched for leaks.

Runs ``python -m entropy_verl.main <overrides>`` with its run directory at ``DIR/run`` and, every ``--every`` seconds
until it ends, samples the driver and every process it started (Ray's GCS and raylet, verl's workers, the rollout
servers: one process tree, read from /proc): resident memory, open file descriptors and threads, summed by process
kind (Ray's process title, e.g. ``ray::WorkerDict``), and /dev/shm's segments (count, MiB). Samples go to
``DIR/samples.jsonl``, each with the last step the run had logged.

``python -m entropy_verl.tools.soak --report DIR`` draws ``DIR/soak.png`` and writes ``DIR/soak.md``: every series
against step and its growth per 100 steps, the least-squares slope over the second half of the run (after start-up
and warm-up), so a leak shows as a steady positive slope and a plateau as ~0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from entropy_verl.run_state import METRICS_FILE

SHM = "/dev/shm"
SERIES = ("rss_mib", "fds", "threads")


def kind_of(cmdline: list[str]) -> str:
    """A process's kind: Ray's title (``ray::WorkerDict``, actor method dropped), a Python module or script, or the
    executable's name (``raylet``, ``gcs_server``)."""
    if not cmdline:
        return "?"
    first = cmdline[0]
    if first.startswith("ray::"):
        return first.split()[0].split(".")[0]
    name = os.path.basename(first.split()[0])
    if name.startswith("python") and len(cmdline) > 1:
        if "-m" in cmdline[1:-1]:
            return cmdline[cmdline.index("-m") + 1]
        if "-c" in cmdline[1:]:
            return "python -c"
        script = next((a for a in cmdline[1:] if not a.startswith("-")), name)  # past flags such as -u, -B
        return os.path.basename(script)
    return name


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:  # the process ended between listing and reading
        return None


def tree(root: int) -> list[int]:
    """``root`` and every process descended from it (from /proc's parent ids)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _read(f"/proc/{entry}/stat")):
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def process_sample(pid: int) -> tuple[str, dict[str, float]] | None:
    """(kind, {rss_mib, fds, threads}) of one process, or None if it has ended."""
    status, cmdline = _read(f"/proc/{pid}/status"), _read(f"/proc/{pid}/cmdline")
    if status is None or cmdline is None:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    rss_kib = float(fields.get("VmRSS", "0 kB").split()[0])
    return kind_of([a for a in cmdline.split("\0") if a]), {
        "rss_mib": rss_kib / 1024,
        "fds": fds,
        "threads": int(fields.get("Threads", "0")),
    }


def shm_usage(folder: str = SHM) -> dict[str, float]:
    sizes = [entry.stat().st_size for entry in os.scandir(folder) if entry.is_file(follow_symlinks=False)]
    return {"segments": len(sizes), "mib": sum(sizes) / 2**20}


def sample(root: int) -> dict:
    """One sample of ``root``'s process tree: per kind and in total, and /dev/shm."""
    kinds: dict[str, dict[str, float]] = {}
    for pid in tree(root):
        if (found := process_sample(pid)) is not None:
            kind, values = found
            totals = kinds.setdefault(kind, {"procs": 0, **dict.fromkeys(SERIES, 0.0)})
            totals["procs"] += 1
            for key in SERIES:
                totals[key] += values[key]
    total = {key: sum(k[key] for k in kinds.values()) for key in ("procs", *SERIES)}
    return {"kinds": kinds, "total": total, "shm": shm_usage()}


def last_step(run_dir: str) -> int:
    path = os.path.join(run_dir, METRICS_FILE)
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        lines = f.read().splitlines()
    return json.loads(lines[-1])["step"] if lines else 0


def watch(out: str, overrides: list[str], every_s: float) -> int:
    """Run the job and sample it until it ends; returns its exit code."""
    os.makedirs(out, exist_ok=True)
    run_dir = os.path.join(out, "run")
    command = [sys.executable, "-m", "entropy_verl.main", *overrides, f"entropy_verl.run_dir={run_dir}"]
    start = time.monotonic()
    with open(os.path.join(out, "driver.log"), "w") as log, open(os.path.join(out, "samples.jsonl"), "w") as samples:
        job = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        while job.poll() is None:
            record = {"t_s": round(time.monotonic() - start, 1), "step": last_step(run_dir), **sample(job.pid)}
            samples.write(json.dumps(record) + "\n")
            samples.flush()
            time.sleep(every_s)
    return job.returncode


def growth_per_100_steps(steps: list[float], values: list[float]) -> float:
    """Least-squares slope of ``values`` against ``steps`` over the second half of the steps, per 100 steps."""
    steps_arr, values_arr = np.asarray(steps, float), np.asarray(values, float)
    late = steps_arr >= steps_arr.min() + (steps_arr.max() - steps_arr.min()) / 2
    if late.sum() < 2 or np.ptp(steps_arr[late]) == 0:
        return float("nan")
    return float(np.polyfit(steps_arr[late], values_arr[late], 1)[0] * 100)


def load_samples(out: str) -> list[dict]:
    with open(os.path.join(out, "samples.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def series_of(samples: list[dict]) -> dict[str, tuple[list[float], list[float]]]:
    """{name: (steps, values)} for the totals, each kind's memory and /dev/shm, from the samples once training began."""
    trained = [s for s in samples if s["step"] > 0]
    out = {f"total/{key}": ([s["step"] for s in trained], [s["total"][key] for s in trained]) for key in SERIES}
    for key in ("segments", "mib"):
        out[f"/dev/shm/{key}"] = ([s["step"] for s in trained], [s["shm"][key] for s in trained])
    for kind in sorted({k for s in trained for k in s["kinds"]}):
        points = [(s["step"], s["kinds"][kind]["rss_mib"]) for s in trained if kind in s["kinds"]]
        out[f"{kind}/rss_mib"] = ([p for p, _ in points], [v for _, v in points])
    return out


def report(out: str) -> str:
    """Write ``soak.md`` (growth per 100 steps) and ``soak.png``; returns the markdown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = load_samples(out)
    series = series_of(samples)
    steps = [s["step"] for s in samples if s["step"] > 0]
    lines = [
        f"Soak of `{out}`: {len(samples)} samples, steps {min(steps, default=0)}-{max(steps, default=0)}, "
        f"{samples[-1]['t_s'] / 60:.0f} min.",
        "",
        "| series | first | last | growth per 100 steps (second half) |",
        "|---|---|---|---|",
    ]
    for name, (xs, ys) in series.items():
        if ys:
            lines.append(f"| {name} | {ys[0]:.1f} | {ys[-1]:.1f} | {growth_per_100_steps(xs, ys):+.2f} |")
    panels = [("memory (MiB)", "rss_mib"), ("open file descriptors", "fds"), ("threads", "threads")]
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.5))
    for ax, (title, key) in zip(axes, panels, strict=False):
        if key == "rss_mib":
            for name, (xs, ys) in series.items():
                if name.endswith("/rss_mib"):
                    ax.plot(xs, ys, label=name.removesuffix("/rss_mib"))
            ax.legend(fontsize=6)
        else:
            ax.plot(*series[f"total/{key}"])
        ax.set_title(title)
        ax.set_xlabel("step")
    axes[3].plot(*series["/dev/shm/mib"])
    axes[3].set_title("/dev/shm (MiB)")
    axes[3].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "soak.png"), dpi=110)
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "soak.md"), "w") as f:
        f.write(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="where the run, its samples and the report go")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples (default: %(default)s)")
    parser.add_argument("--report", metavar="DIR", help="only draw and write the report of an earlier soak in DIR")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the run (after --)")
    args = parser.parse_args(argv)
    if args.report:
        print(report(args.report))
        return 0
    if not args.out:
        parser.error("--out is required to run a soak")
    code = watch(args.out, args.overrides, args.every)
    print(report(args.out))
    return code


if __name__ == "__main__":
    sys.exit(main())
