"""A rehearsal of the cluster group on two Ray nodes of this machine: ``launch/submit --nnodes 2`` sends
``hardware=cluster_gpu`` with the smallest overlay that runs here to a cluster of two raylets on 127.0.0.1
(``entropy_verl.tools.local_cluster``), one trainer slot each: FSDP2 across both nodes over gloo, verl's vLLM rollout
(CPU build) with a replica on each node, remove-padding, dynamic batch sizes, the chunked entropy, checkpoint
retention, validation with pass@k and EntroPIC's driver-side controller. The worker node is killed after step 3's
checkpoint; the job must fail quickly naming what died, and the same job sent again (to a replacement node) must
resume exactly. launch/submit's placement refusal and launch/sweep run against the same two nodes first.

What one machine cannot show: both "nodes" share a filesystem, /dev/shm and environment; gloo runs over loopback
(no NCCL/RDMA); missing shared storage goes unnoticed."""

from __future__ import annotations

import json
import os
import sys
import time

import pytest
from conftest import LocalCluster

from entropy_verl.rollout.vllm_cpu import shm
from entropy_verl.rollout.vllm_cpu.settings import REQUIRED

NAME = "rehearsal"
KILL_AFTER = 3  # the worker node dies once step 3 is checkpointed and logged
TOTAL_STEPS = 5
KEEP = 2  # cluster_gpu's max_actor_ckpt_to_keep, run as written
# The driver ends the job lost_worker_grace_s (30 s) after it sees a worker dead; Ray declares the node dead ~12 s after
# the kill. Without that, the job took 50-292 s: the trainer waited up to 200 s in TransferQueue for the lost node's
# storage unit, then the driver's cleanup ~80 s (docs/cluster.md).
FAIL_WITHIN_S = 120

# Every key the overlay may change, and why it must differ from hardware=cluster_gpu here. The CPU build of vLLM's
# keys are entropy_verl's own start-up requirements (entropy_verl/rollout/vllm_cpu/settings.py), with their values
# taken from hardware=embedded_cpu_vllm.
DECLARED = {
    "trainer.device": "device: no GPU here; entropy_verl's CPU platform runs FSDP2 over gloo",
    "actor_rollout_ref.model.override_config.attn_implementation": (
        "no flash-attn on a CPU (PyPI has no wheel): with verl's default flash_attention_2, transformers refuses to "
        "build the model ('FlashAttention2 has been toggled on, but it cannot be used ... not installed'); sdpa. "
        "Remove-padding (use_remove_padding: true) runs as written: verl 0.9.1 unpads with pure-torch fallbacks "
        "without flash-attn (verl/utils/attention_utils.py), trainer and rollout log-probs agreeing within 9e-7"
    ),
    "data.train_batch_size": "size: 4 prompts a step (cluster: 512), 32 samples at the cluster's n=8, on 2 cores",
    "actor_rollout_ref.actor.ppo_mini_batch_size": "size: 2 prompts, 2 updates a step (cluster: 128 of 512, 4)",
    "data.val_max_samples": "size: 8 held-out prompts x the cluster's 8 samples (cluster: the whole split)",
    "actor_rollout_ref.rollout.agent.num_workers": (
        "size: 1 agent-loop process (verl's 8 start 8 vLLM-importing processes on 2 cores, minutes of start-up)"
    ),
    "trainer.total_training_steps": "length: 5 steps (cluster: 500)",
    "trainer.save_freq": "length: a checkpoint every step (cluster: 50), so retention prunes within the rehearsal",
    "trainer.test_freq": "length: validation at step 2 and 4 (cluster: every 25)",
    **{key: f"the CPU build of vLLM: {why}" for key, _, why in REQUIRED},
}


def cpu_vllm_overlay() -> list[str]:
    """The CPU build of vLLM's required settings, as hardware=embedded_cpu_vllm sets them."""
    from omegaconf import OmegaConf

    from entropy_verl.main import compose_run

    config = compose_run(["hardware=embedded_cpu_vllm"])
    return [f"++{key}={OmegaConf.select(config, key)}" for key, _, _ in REQUIRED]


def overlay(total_steps: int) -> list[str]:
    return [
        "trainer.device=cpu",
        "++actor_rollout_ref.model.override_config.attn_implementation=sdpa",
        "data.train_batch_size=4",
        "actor_rollout_ref.actor.ppo_mini_batch_size=2",
        "data.val_max_samples=8",
        "actor_rollout_ref.rollout.agent.num_workers=1",
        f"trainer.total_training_steps={total_steps}",
        "trainer.save_freq=1",
        "trainer.test_freq=2",
        *cpu_vllm_overlay(),
    ]


# the run itself, not the hardware: EntroPIC (its target is stated at the cluster's temperature 1.0), its integral
# unclamped so the test can continue it by hand
RUN = ["experiment=embedded_entropic", "entropy_verl.controllers.pi.integral_limit=null"]


def leaves(config, prefix="") -> dict:
    from omegaconf import DictConfig, OmegaConf

    out = {}
    for key in config:
        value = config._get_node(key)
        path = f"{prefix}{key}"
        if isinstance(value, DictConfig):
            out.update(leaves(value, path + "."))
        else:
            out[path] = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value._value()
    return out


def test_the_rehearsal_overlay_changes_only_declared_keys():
    """hardware=cluster_gpu with and without the overlay differ in declared keys only, and every declared key is
    used: the rehearsal runs the cluster group as written everywhere else."""
    from entropy_verl.main import compose_run

    cluster = leaves(compose_run(["hardware=cluster_gpu", *RUN]))
    rehearsed = leaves(compose_run(["hardware=cluster_gpu", *RUN, *overlay(TOTAL_STEPS)]))
    changed = {key for key in cluster.keys() | rehearsed.keys() if cluster.get(key) != rehearsed.get(key)}
    assert changed == set(DECLARED), (sorted(changed - set(DECLARED)), sorted(set(DECLARED) - changed))
    assert all(DECLARED.values())


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    """Two nodes, torn down afterwards with whatever their processes left in /dev/shm after a failure."""
    before, saved_env = shm.segments(), dict(os.environ)
    cluster = LocalCluster(str(tmp_path_factory.mktemp("ray")))
    os.environ.update(cluster.info["env"])  # this process's Ray clients and the launch tools: 127.0.0.1 only
    try:
        yield cluster
    finally:
        cluster.stop()
        os.environ.clear()
        os.environ.update(saved_env)
        shm.remove_leftovers(before, wait_s=10.0)


@pytest.mark.slow
def test_submit_refuses_what_two_nodes_cannot_place_and_a_sweep_runs_its_jobs_one_at_a_time(
    two_nodes, tmp_path, smoke_overrides, launch, read_metrics
):
    """launch/submit and launch/sweep against the two nodes, with the embedded default (1 trainer slot a job)."""
    run_root = tmp_path / "runs"
    common = ["--address", two_nodes.info["dashboard"], "--python", sys.executable, "--run-root", str(run_root)]
    # each node has 16 CPUs and 1 trainer slot: 3 slots on a node, or 3 nodes, cannot be placed, and are refused
    # before anything is submitted (Ray would wait for them forever)
    for size, need, fit in (
        (["--gpus-per-node", "3"], "1 node(s) with {CPU: 9, GPU: 3}", 0),
        (["--nnodes", "3"], "3 node(s) with {CPU: 3, GPU: 1}", 2),
    ):
        out = launch("submit", *common, "--name", "big", *size, *smoke_overrides)
        last = out.stderr.strip().splitlines()[-1]
        assert out.returncode != 0 and last.startswith(f"launch: the cluster cannot place this job: it needs {need}")
        assert f"and {fit} of the alive nodes have it" in last, last
    # one at a time: two verl jobs at once on 2 cores starve each other's TransferQueue (its 200 s get timeout)
    out = launch("sweep", *common, "--name", "sw", "--max-concurrent", "1", *smoke_overrides, "data.seed=1,2")
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    assert out.stdout.count("SUCCEEDED") == 2
    for name in ("sw-0-seed_1", "sw-1-seed_2"):
        rows = read_metrics(run_root / "entropy_verl" / name)
        assert len(rows) == 2 and all("actor/entropy" in row for row in rows)


def kept(last: int) -> list[str]:
    """The checkpoint folder's listing when retention keeps the last KEEP steps up to ``last``."""
    return [f"global_step_{s}" for s in range(last - KEEP + 1, last + 1)] + ["latest_checkpointed_iteration.txt"]


def actor_nodes(address: str, class_name: str) -> list[str]:
    """The node ids of the alive actors of ``class_name`` on the cluster whose dashboard is at ``address``."""
    from ray.util.state import list_actors

    actors = list_actors(address=address, filters=[("state", "=", "ALIVE")])  # verl's WorkerDict has a prefix
    return sorted(actor.node_id for actor in actors if actor.class_name.split(".")[-1].endswith(class_name))


@pytest.mark.slow
def test_cluster_group_on_two_nodes_survives_a_node_loss_and_resumes_exactly(
    two_nodes, tmp_path, launch, last_checkpoint
):
    from ray.job_submission import JobSubmissionClient

    from entropy_verl.run_state import load_metrics

    dashboard = two_nodes.info["dashboard"]
    node_ids = [node["node_id"] for node in two_nodes.info["nodes"]]
    assert len(set(node_ids)) == 2 and all(node["ip"] == "127.0.0.1" for node in two_nodes.info["nodes"])
    run_root = tmp_path / "shared"  # both nodes' run root (one filesystem here)
    run_dir = run_root / "entropy_verl" / NAME
    shm_before = shm.segments()
    submit = [
        "submit",
        "--address",
        dashboard,
        "--python",
        sys.executable,
        "--run-root",
        str(run_root),
        "--nnodes",
        "2",
        "--gpus-per-node",
        "1",
        "--name",
        NAME,
        "hardware=cluster_gpu",
        *RUN,
    ]

    # 1. the job, followed until step KILL_AFTER is checkpointed and logged, then the worker node dies
    out = launch(*submit, *overlay(TOTAL_STEPS), "--no-wait", timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    job_id = out.stdout.split("job id ")[1].split()[0]
    client = JobSubmissionClient(dashboard)
    metrics = run_dir / "metrics.jsonl"
    deadline, placed = time.monotonic() + 900, {}
    while last_checkpoint(run_dir) < KILL_AFTER or f'"step":{KILL_AFTER},' not in (
        metrics.read_text() if metrics.exists() else ""
    ):
        status = client.get_job_status(job_id).value
        assert status == "RUNNING" or status == "PENDING", (status, client.get_job_logs(job_id)[-5000:])
        assert time.monotonic() < deadline, client.get_job_logs(job_id)[-5000:]
        if not placed and metrics.exists():  # training has started: every worker is placed
            placed = {kind: actor_nodes(dashboard, kind) for kind in ("WorkerDict", "vLLMHttpServer")}
        time.sleep(0.5)
    # one FSDP rank and one vLLM replica on each node
    assert placed == {kind: sorted(node_ids) for kind in ("WorkerDict", "vLLMHttpServer")}, placed
    killed = two_nodes.ask("remove 1")
    killed_at = time.monotonic()
    assert killed["removed"] == 1
    while (status := client.get_job_status(job_id).value) not in ("FAILED", "SUCCEEDED", "STOPPED"):
        assert time.monotonic() - killed_at < FAIL_WITHIN_S, f"the job did not fail within {FAIL_WITHIN_S} s"
        time.sleep(0.5)
    fail_s = time.monotonic() - killed_at
    log = client.get_job_logs(job_id)
    assert status == "FAILED", log[-5000:]
    died = [line for line in log.splitlines() if "a Ray worker of this run died" in line]
    assert died and node_ids[1] in died[-1], log[-5000:]  # names the dead workers and their node
    first = load_metrics(str(run_dir))
    assert [row["step"] for row in first] == list(range(0, KILL_AFTER + 1))  # 0: cluster_gpu's val_before_train
    ckpt = run_dir / "checkpoints"
    assert sorted(os.listdir(ckpt)) == kept(KILL_AFTER)
    saved = json.loads((ckpt / f"global_step_{KILL_AFTER}" / "entropy_controllers.json").read_text())

    # 2. a replacement node joins; the same job again resumes after step KILL_AFTER and finishes
    # the lost node's vLLM processes were killed with it and left their /dev/shm segments (on a real cluster, on
    # that machine); its replacement starts clean
    lost_node_left = shm.remove_leftovers(shm_before, wait_s=10.0)
    two_nodes.ask("add")
    out = launch(*submit, *overlay(TOTAL_STEPS), timeout=900)
    assert out.returncode == 0 and "SUCCEEDED" in out.stdout, out.stdout[-5000:]
    rows = {row["step"]: row for row in load_metrics(str(run_dir))}
    assert sorted(rows) == list(range(0, TOTAL_STEPS + 1))  # metrics continued: each step once
    integral = saved["controllers"]["pi"]["integral"]
    for step in range(KILL_AFTER + 1, TOTAL_STEPS + 1):  # I_t = I_{t-1} + e_t from the checkpointed integral
        integral += rows[step]["entropy_control/pi/error"]
        assert rows[step]["entropy_control/pi/integral"] == pytest.approx(integral, abs=1e-12)
    for row in (rows[step] for step in range(1, TOTAL_STEPS + 1)):  # both ranks used the driver's coefficient
        driver = row["entropy_verl/driver_coef/alpha"]
        used = [row[f"actor/entropy_verl/worker_coef/alpha/{s}"] for s in ("min", "max")]
        assert used == [pytest.approx(driver, abs=1e-12)] * 2, (row["step"], driver, used)
        assert row["entropy_verl/worker_coef_mismatch_steps"] == 0
    for step in (2, 4):  # validation with pass@k at the cluster's 8 samples
        assert 0.0 <= rows[step]["val/pass@1"] <= rows[step]["val/pass@8"] <= 1.0
    syncs = [json.loads(line) for line in (run_dir / "rollout_weight_syncs.jsonl").read_text().splitlines()]
    assert len({s["fingerprint"] for s in syncs}) > TOTAL_STEPS - KILL_AFTER  # the replicas got the new weights
    assert sorted(os.listdir(ckpt)) == kept(TOTAL_STEPS)
    # the successful job's driver removed what its vLLM processes left on every node
    assert shm.segments() - shm_before == set(), sorted(shm.segments() - shm_before)
    print(f"two-node rehearsal: failed {fail_s:.1f} s after the worker node died: {died[-1]}")
    print(f"the lost node left {len(lost_node_left)} segments: {lost_node_left}")
