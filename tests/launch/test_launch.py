"""``launch/submit`` and ``launch/sweep`` without a cluster: the sweep's expansion and the options they refuse (the
runs on a real two-node Ray cluster are in tests/e2e/test_two_nodes.py)."""

from __future__ import annotations

import shlex


def test_sweep_dry_run_expands_methods_times_seeds_into_4_submit_commands(launch):
    out = launch("sweep", "--dry-run", "method=grpo,clip_b", "data.seed=1,2")
    assert out.returncode == 0, out.stderr
    commands = [shlex.split(line) for line in out.stdout.splitlines()]
    assert [c[-2:] for c in commands] == [
        ["method=grpo", "data.seed=1"],
        ["method=grpo", "data.seed=2"],
        ["method=clip_b", "data.seed=1"],
        ["method=clip_b", "data.seed=2"],
    ]
    assert [c[c.index("--name") + 1] for c in commands] == [
        "sweep-0-method_grpo-seed_1",
        "sweep-1-method_grpo-seed_2",
        "sweep-2-method_clip_b-seed_1",
        "sweep-3-method_clip_b-seed_2",
    ]


def test_sweep_dry_run_expands_a_settings_grid_and_passes_fixed_overrides_unchanged(launch):
    out = launch(
        "sweep",
        "--dry-run",
        "--name",
        "grid",
        "--nnodes",
        "2",
        "--gpus-per-node",
        "8",
        "--run-root",
        "/shared/runs",
        "method=clip_b",
        "entropy_verl.methods.clip_b.mu=1.5,2.5",
        "data.seed=range(1,3)",
        "trainer.total_training_steps=5",
        "+trainer.tags=[a,b]",
    )
    assert out.returncode == 0, out.stderr
    commands = [shlex.split(line) for line in out.stdout.splitlines()]
    assert len(commands) == 4
    names = [c[c.index("--name") + 1] for c in commands]
    assert names == ["grid-0-mu_1.5-seed_1", "grid-1-mu_1.5-seed_2", "grid-2-mu_2.5-seed_1", "grid-3-mu_2.5-seed_2"]
    combos = {(c[-5], c[-4]) for c in commands}
    assert combos == {
        (f"entropy_verl.methods.clip_b.mu={mu}", f"data.seed={seed}") for mu in ("1.5", "2.5") for seed in (1, 2)
    }
    for c in commands:  # fixed overrides reach every job unchanged (a list is one value, not a sweep)
        assert c[0] == "launch/submit" and c[-3:] == [
            "method=clip_b",
            "trainer.total_training_steps=5",
            "+trainer.tags=[a,b]",
        ]
        assert c[c.index("--nnodes") + 1] == "2" and c[c.index("--gpus-per-node") + 1] == "8"


def test_submit_refuses_an_unknown_option_and_a_name_that_is_not_a_directory_name(launch):
    out = launch("submit", "--dry-run", "--nnode", "2")
    assert out.returncode != 0 and "--nnode" in out.stderr
    out = launch("submit", "--dry-run", "--name", "a,b")
    assert out.returncode != 0 and "'a,b'" in out.stderr


def test_submit_dry_run_runs_entropy_verls_entry_point_with_the_overrides(launch):
    out = launch(
        "submit",
        "--dry-run",
        "--nnodes",
        "2",
        "--run-root",
        "/shared/runs",
        "hardware=cluster_gpu",
        "method=[entropy_adv,steer]",
        "data.seed=3",
    )
    assert out.returncode == 0, out.stderr
    command = shlex.split(out.stdout.splitlines()[0])
    assert command[1:3] == ["-m", "entropy_verl.main"] and command[-3:] == [
        "hardware=cluster_gpu",
        "method=[entropy_adv,steer]",
        "data.seed=3",
    ]
    assert "trainer.nnodes=2" in command and next(
        c for c in command if c.startswith("trainer.experiment_name=entropy_adv+steer-")
    )


def test_submit_refuses_a_cluster_run_without_shared_storage_for_its_checkpoints(launch):
    for args in (["hardware=cluster_gpu"], ["--nnodes", "2"]):
        out = launch("submit", "--dry-run", *args)
        assert out.returncode != 0 and "--run-root" in out.stderr and "shared storage" in out.stderr, out.stderr
    out = launch("submit", "--dry-run", "--run-root", "runs", "hardware=cluster_gpu")
    assert out.returncode != 0 and "'runs' must be an absolute path" in out.stderr
    out = launch("submit", "--dry-run", "hardware=cluster_gpu", "entropy_verl.run_dir=/shared/runs/mine")
    assert out.returncode == 0, out.stderr  # the user placed the run's files themselves
    assert (
        "ENTROPY_VERL_RUN_ROOT"
        in launch("submit", "--dry-run", "--run-root", "/shared/r", "hardware=cluster_gpu").stdout
    )


def test_an_unreachable_address_is_one_line_and_quick(launch):
    import socket
    import time

    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for address, words in ((f"http://127.0.0.1:{port}", "cannot reach the Ray job server"), ("127.0.0.1:8265", "URL")):
        start = time.monotonic()
        out = launch("submit", "--address", address, "method=grpo", timeout=120)
        assert out.returncode != 0 and words in out.stderr, out.stderr[-2000:]
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert time.monotonic() - start < 30


def test_a_job_the_clusters_nodes_cannot_place_is_refused_in_one_line():
    """verl places each node's trainer slots together, {CPU: 3, GPU: 1} each; Ray would wait forever for nodes that
    do not exist."""
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "launch"))
    import ray_jobs

    nodes = [{"CPU": 2.0, "GPU": 1.0}, {"CPU": 8.0, "GPU": 1.0}]  # the first has too few CPUs for one slot
    assert ray_jobs.placement_problem(nodes, nodes=1, slots=1) is None
    two = ray_jobs.placement_problem(nodes, nodes=2, slots=1)
    assert "needs 2 node(s) with {CPU: 3, GPU: 1} each" in two and "1 of the alive nodes have it" in two
    assert "{CPU: 2, GPU: 1}; {CPU: 8, GPU: 1}" in two and "\n" not in two
    assert "{CPU: 6, GPU: 2}" in ray_jobs.placement_problem(nodes, nodes=1, slots=2)
    assert ray_jobs.cluster_size(["hardware=cluster_gpu"], None, None) == (1, 8)
    assert ray_jobs.cluster_size(["trainer.nnodes=2", "trainer.n_gpus_per_node=4"], None, None) == (2, 4)
    assert ray_jobs.cluster_size(["trainer.nnodes=2"], 3, 2) == (3, 2)  # the options win
