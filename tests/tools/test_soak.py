"""The soak sampler (entropy_verl/tools/soak.py): process kinds, a real process tree read from /proc, the growth
slope by hand, and the report."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from entropy_verl.tools.soak import growth_per_100_steps, kind_of, report, sample, tree


def test_process_kinds():
    assert kind_of(["ray::WorkerDict.actor_rollout_compute_log_prob"]) == "ray::WorkerDict"
    assert kind_of(["ray::IDLE"]) == "ray::IDLE"
    assert kind_of(["/venv/bin/python3", "-m", "entropy_verl.main", "method=grpo"]) == "entropy_verl.main"
    assert kind_of(["/venv/bin/python", "/venv/lib/ray/dashboard/dashboard.py", "--host=127.0.0.1"]) == "dashboard.py"
    assert kind_of(["/venv/bin/python", "-u", "/venv/lib/ray/_private/log_monitor.py", "--x=1"]) == "log_monitor.py"
    assert kind_of(["/venv/lib/ray/core/src/ray/raylet/raylet", "--port=1"]) == "raylet"
    assert kind_of(["python", "-c", "pass"]) == "python -c" and kind_of([]) == "?"


def test_a_process_tree_is_sampled_with_its_children():
    """A parent with a child that holds 7 extra open files: both found, summed by kind."""
    child_code = "import time; files = [open('/dev/null') for _ in range(7)]; time.sleep(60)"
    parent_code = (
        f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child_code!r}]); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    try:
        deadline = time.monotonic() + 20
        while len(tree(parent.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # the child opens its files
        got = sample(parent.pid)
        assert got["total"]["procs"] == 2 and got["kinds"]["python -c"]["procs"] == 2
        assert got["total"]["fds"] >= 2 * 3 + 7 and got["total"]["threads"] >= 2 and got["total"]["rss_mib"] > 1
        assert got["shm"]["segments"] >= 0
    finally:
        for pid in tree(parent.pid)[1:]:
            subprocess.run(["kill", str(pid)], check=False)
        parent.kill()


def test_growth_is_the_slope_over_the_second_half_per_100_steps():
    steps = list(range(0, 101, 10))
    assert growth_per_100_steps(steps, [2.0 * s for s in steps]) == pytest.approx(200.0)
    warm_then_flat = [100.0 + 50 * (s < 40) * (40 - s) for s in steps]  # start-up falls away, then a plateau
    assert growth_per_100_steps(steps, warm_then_flat) == pytest.approx(0.0)


def test_report_on_samples(tmp_path):
    rows = [
        {
            "t_s": 10.0 * i,
            "step": i,
            "kinds": {"ray::WorkerDict": {"procs": 1, "rss_mib": 700.0 + i, "fds": 50, "threads": 30}},
            "total": {"procs": 1, "rss_mib": 700.0 + i, "fds": 50, "threads": 30},
            "shm": {"segments": 2, "mib": 4.0},
        }
        for i in range(0, 21)
    ]
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = report(str(tmp_path))
    assert "| total/rss_mib | 701.0 | 720.0 | +100.00 |" in text and "| total/fds | 50.0 | 50.0 | +0.00 |" in text
    assert (tmp_path / "soak.png").stat().st_size > 0 and (tmp_path / "soak.md").read_text() == text
