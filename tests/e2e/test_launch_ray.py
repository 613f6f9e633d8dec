"""``launch/submit`` and ``launch/sweep`` against a real Ray head started by the test on 127.0.0.1 (CPU: the head
advertises logical "GPU" slots, which is what verl's resource pools count)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path_factory):
    """A Ray head on 127.0.0.1 in its own session directory; stopped (its whole process group) afterwards. Logical
    resources as the embedded config asks of a local Ray (16 CPUs: verl's driver, TransferQueue, agent-loop, reward
    and trainer actors each reserve one), room for two jobs: 32 CPUs, 2 "GPU" trainer slots."""
    port, dashboard = free_port(), free_port()
    temp_dir = tmp_path_factory.mktemp("ray")
    # no token auth on this throwaway 127.0.0.1 head (Ray turns it on when ~/.ray/auth_token exists); on Linux Ray
    # advertises the machine's network address instead of 127.0.0.1 unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
    env = {
        **{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
        "RAY_AUTH_MODE": "disabled",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }
    head = subprocess.Popen(
        [
            os.path.join(os.path.dirname(sys.executable), "ray"),
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard}",
            "--num-cpus=32",
            "--num-gpus=2",
            f"--temp-dir={temp_dir}",
            "--disable-usage-stats",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    address = f"http://127.0.0.1:{dashboard}"
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # for this process's readiness check
    try:
        from ray.job_submission import JobSubmissionClient

        deadline = time.monotonic() + 120
        while True:
            try:
                JobSubmissionClient(address).list_jobs()
                break
            except Exception:
                if time.monotonic() > deadline or head.poll() is not None:
                    raise
                time.sleep(1.0)
        yield address
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)


def metrics_rows(run_root, name):
    path = os.path.join(run_root, "entropy_verl", name, "metrics.jsonl")
    with open(path) as f:
        return [json.loads(line)["data"] for line in f]


@pytest.mark.slow
def test_submit_a_job_then_a_two_job_sweep_on_a_local_ray_head(ray_head, tmp_path, smoke_overrides, launch):
    run_root = str(tmp_path / "runs")
    common = ["--address", ray_head, "--python", sys.executable, "--run-root", run_root]
    # the head has 32 CPUs and 2 trainer slots: 3 slots on one node cannot be placed, and are refused before submitting
    out = launch("submit", *common, "--name", "big", "--gpus-per-node", "3", *smoke_overrides)
    assert out.returncode != 0 and out.stderr.strip().splitlines()[-1].startswith(
        "launch: the cluster cannot place this job: it needs 1 node(s) with {CPU: 9, GPU: 3}"
    ), out.stderr[-2000:]
    out = launch("submit", *common, "--name", "one", *smoke_overrides)
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    assert "job id one-" in out.stdout and "SUCCEEDED" in out.stdout
    rows = metrics_rows(run_root, "one")
    assert len(rows) == 2 and all("actor/entropy" in row for row in rows)

    # one at a time: two verl jobs at once on 2 cores starve each other's TransferQueue (its 200 s get timeout)
    out = launch("sweep", *common, "--name", "sw", "--max-concurrent", "1", *smoke_overrides, "data.seed=1,2")
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    assert out.stdout.count("SUCCEEDED") == 2
    for name in ("sw-0-seed_1", "sw-1-seed_2"):
        assert len(metrics_rows(run_root, name)) == 2
