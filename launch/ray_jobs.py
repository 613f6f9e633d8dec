"""Submitting entropy_verl training jobs to a Ray cluster, shared by ``launch/submit`` and ``launch/sweep``.

A job is what verl's multinode docs submit by hand:

    ray job submit --address=http://<head>:8265 --runtime-env=... -- python3 -m verl.trainer.main_ppo <overrides>

here through Ray's job-submission SDK (``ray.job_submission.JobSubmissionClient``), with the entrypoint
``python3 -m entropy_verl.main <overrides>`` (e.g. ``hardware=cluster_gpu task=gsm8k method=clip_b ...``) and a
runtime env that uploads this checkout as the
job's working directory (minus ``.git``, virtual envs, run outputs and checkpoints). verl's own driver (``run_ppo``)
then joins the cluster the job runs on. This module imports Ray only, not verl or entropy_verl: the submitting machine
needs neither a GPU nor the training stack.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shlex
import sys
import time
import uuid
from dataclasses import dataclass, field

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
SELECTION_GROUPS = ("experiment", "method")  # a default run name is the experiment or method chosen
# never uploaded: history, environments, run outputs, weights (Ray caps a working_dir at 500 MiB)
WORKING_DIR_EXCLUDES = [
    ".git",
    ".venv",
    "venv",
    "outputs",
    "checkpoints",
    "wandb",
    "__pycache__",
    ".pytest_cache",
    "*.pt",
    "*.safetensors",
    "*.bin",
    "*.parquet",
]
# the job-level variables verl recommends (verl.trainer.constants_ppo.PPO_RAY_RUNTIME_ENV, multinode docs)
JOB_ENV_VARS = {
    "TOKENIZERS_PARALLELISM": "true",
    "NCCL_DEBUG": "WARN",
    "VLLM_LOGGING_LEVEL": "WARN",
    "TORCH_NCCL_AVOID_RECORD_STREAMS": "1",
}
RUN_ROOT_ENV = "ENTROPY_VERL_RUN_ROOT"  # trainer_configs: run_dir = $ENTROPY_VERL_RUN_ROOT/<project>/<experiment>
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


@dataclass
class JobSpec:
    name: str  # trainer.experiment_name: the run's directory name and the job's metadata
    overrides: list[str] = field(default_factory=list)  # Hydra overrides, passed through unchanged
    nnodes: int | None = None
    gpus_per_node: int | None = None
    run_root: str | None = None  # where runs go on the cluster (shared storage); None: the config's default
    python: str = "python3"
    working_dir: str = REPO_ROOT
    env_vars: dict[str, str] = field(default_factory=dict)

    def command(self) -> list[str]:
        cluster = ([f"trainer.nnodes={self.nnodes}"] if self.nnodes else []) + (
            [f"trainer.n_gpus_per_node={self.gpus_per_node}"] if self.gpus_per_node else []
        )
        return [
            self.python,
            "-m",
            "entropy_verl.main",
            *cluster,
            f"trainer.experiment_name={self.name}",
            *self.overrides,
        ]

    def entrypoint(self) -> str:
        return shlex.join(self.command())

    def runtime_env(self) -> dict:
        env = {**JOB_ENV_VARS, **({RUN_ROOT_ENV: self.run_root} if self.run_root else {}), **self.env_vars}
        return {"working_dir": self.working_dir, "excludes": list(WORKING_DIR_EXCLUDES), "env_vars": env}


def key_value(override: str) -> tuple[str, str]:
    """A Hydra override's (key without its ``+``, ``++`` or ``~`` prefix, value): ``++a.b=1`` -> ``("a.b", "1")``,
    ``~a.b`` -> ``("a.b", "")``."""
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def selection_of(overrides: list[str]) -> str:
    """What the overrides choose, for a default run name: the experiment, else the method(s) (``grpo`` by default)."""
    chosen = {}
    for key, value in map(key_value, overrides):
        if key in SELECTION_GROUPS:
            chosen[key] = "+".join(v.strip() for v in value.strip("[]").split(",") if v.strip())
    return chosen.get("experiment") or chosen.get("method") or "grpo"


def check_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", name):
        raise SystemExit(
            f"launch: run name {name!r} must be letters, digits and _ . + - (it names a directory and is a "
            "Hydra override value)"
        )
    return name


def client_for(address: str):
    """Ray's job client for the dashboard at ``address``; one line, not a traceback, when it cannot be reached."""
    if not address.startswith(("http://", "https://")):
        raise SystemExit(
            f"launch: --address {address!r} must be the Ray dashboard's URL, e.g. http://{address.split('://')[-1]} "
            "(the job API; port 8265 by default)"
        )
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except Exception as exc:  # noqa: BLE001 - connection refused, DNS, TLS, auth: say which, in one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SystemExit(f"launch: cannot reach the Ray job server at {address}: {reason}") from None


CPUS_PER_SLOT = 3  # verl's RayResourcePool bundle per trainer slot: {"CPU": max_colocate_count (3), "GPU": 1}


def cluster_size(overrides: list[str], nnodes: int | None, gpus_per_node: int | None) -> tuple[int, int]:
    """(nodes, trainer slots per node) the job will ask for: the options, else the overrides, else the hardware
    group's defaults (hardware=cluster_gpu: 8 per node; the embedded default: 1)."""
    placed = dict(key_value(o) for o in overrides if "=" in o and not o.startswith("~"))
    nodes = nnodes or int(placed.get("trainer.nnodes", 1))
    default_slots = 8 if placed.get("hardware") == "cluster_gpu" else 1
    return nodes, gpus_per_node or int(placed.get("trainer.n_gpus_per_node", default_slots))


def placement_problem(nodes_resources: list[dict], nodes: int, slots: int) -> str | None:
    """Why a cluster whose alive nodes have ``nodes_resources`` (Ray's total resources per node) cannot place a job
    of ``nodes`` x ``slots`` trainer slots, or None when it can: verl places each node's slots together, every slot
    taking {CPU: 3, GPU: 1}, and a job that cannot be placed waits forever without an error."""
    need = {"CPU": CPUS_PER_SLOT * slots, "GPU": slots}
    fit = [r for r in nodes_resources if all(r.get(k, 0) >= v for k, v in need.items())]
    if len(fit) >= nodes:
        return None
    have = "; ".join(f"{{CPU: {r.get('CPU', 0):g}, GPU: {r.get('GPU', 0):g}}}" for r in nodes_resources) or "none"
    return (
        f"launch: the cluster cannot place this job: it needs {nodes} node(s) with {{CPU: {need['CPU']}, GPU: "
        f"{need['GPU']}}} each (verl: {CPUS_PER_SLOT} CPUs and 1 GPU per trainer slot, {slots} slot(s) per node), "
        f"and {len(fit)} of the alive nodes have it (nodes: {have}); Ray would wait for them forever"
    )


def check_placement(address: str, spec: JobSpec) -> None:
    """Refuse, in one line, a job the cluster's nodes cannot place (read through the dashboard's state API)."""
    from ray.util.state import list_nodes

    alive = [n for n in list_nodes(address=address, detail=True) if n.state == "ALIVE"]
    nodes, slots = cluster_size(spec.overrides, spec.nnodes, spec.gpus_per_node)
    if problem := placement_problem([dict(n.resources_total) for n in alive], nodes, slots):
        raise SystemExit(problem)


def submit(client, spec: JobSpec) -> str:
    """Submit ``spec``; returns the job's submission id."""
    submission_id = f"{spec.name}-{uuid.uuid4().hex[:8]}"
    return client.submit_job(
        entrypoint=spec.entrypoint(),
        runtime_env=spec.runtime_env(),
        submission_id=submission_id,
        metadata={"run_name": spec.name, "selection": selection_of(spec.overrides)},
    )


def status_of(client, job_id: str) -> str:
    status = client.get_job_status(job_id)
    return getattr(status, "value", str(status))


def follow(client, job_id: str) -> str:
    """Stream the job's logs to stdout until it ends; returns its final status."""

    async def tail():
        async for lines in client.tail_job_logs(job_id):
            print(lines, end="", flush=True)

    asyncio.run(tail())
    return wait(client, [job_id])[job_id]


def wait(client, job_ids: list[str], poll_s: float = 2.0, timeout_s: float | None = None) -> dict[str, str]:
    """Block until every job is in a terminal state; returns job id -> status."""
    start, statuses = time.monotonic(), {}
    while True:
        statuses = {job_id: status_of(client, job_id) for job_id in job_ids}
        if all(s in TERMINAL for s in statuses.values()):
            return statuses
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"jobs still running after {timeout_s:.0f} s: {statuses}")
        time.sleep(poll_s)


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by launch/submit and launch/sweep."""
    parser.add_argument(
        "--address",
        default=os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS") or DEFAULT_ADDRESS,
        help=f"Ray dashboard / job server (default: $RAY_ADDRESS or {DEFAULT_ADDRESS})",
    )
    parser.add_argument("--nnodes", type=int, help="trainer.nnodes")
    parser.add_argument("--gpus-per-node", type=int, help="trainer.n_gpus_per_node")
    parser.add_argument(
        "--run-root", help=f"where runs are written on the cluster (sets ${RUN_ROOT_ENV}; use shared storage)"
    )
    parser.add_argument("--python", default="python3", help="interpreter on the cluster nodes (default: %(default)s)")
    parser.add_argument(
        "--working-dir", default=REPO_ROOT, help="uploaded as the job's working directory (default: this checkout)"
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="extra job environment variable (repeatable)"
    )
    parser.add_argument("--no-wait", action="store_true", help="print the job id(s) and return without waiting")


RUN_DIR_KEYS = ("entropy_verl.run_dir", "trainer.default_local_dir")  # overrides that place a run's files themselves


def check_storage(run_root: str | None, nnodes: int | None, overrides: list[str]) -> None:
    """A cluster run writes its checkpoints, controller state and metrics where every node and the user can reach
    them again: ``--run-root`` (or an explicit run directory) must be an absolute path on shared storage. Without it
    they would go to ``outputs/`` inside Ray's per-node cache of the uploaded working directory and be lost with it."""
    placed = dict(key_value(o) for o in overrides if "=" in o and not o.startswith("~"))  # a deletion places nothing
    explicit = [placed[k] for k in RUN_DIR_KEYS if k in placed]
    for where, path in (
        [("--run-root", run_root)] if run_root else [(k, placed[k]) for k in RUN_DIR_KEYS if k in placed]
    ):
        if not os.path.isabs(path):
            raise SystemExit(f"launch: {where} {path!r} must be an absolute path on storage every node mounts")
    on_cluster = (nnodes or 1) > 1 or "hardware=cluster_gpu" in overrides
    if on_cluster and not run_root and not explicit:
        raise SystemExit(
            "launch: a cluster run needs shared storage for its checkpoints and metrics: pass --run-root "
            "/shared/runs (a path every node mounts); without it they would be written to outputs/ inside Ray's "
            "per-node copy of the uploaded working directory, and lost with it"
        )


def spec_from(args, name: str, overrides: list[str]) -> JobSpec:
    env_vars = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"launch: --env needs KEY=VALUE, got {item!r}")
        env_vars[key] = value
    check_storage(args.run_root, args.nnodes, overrides)
    return JobSpec(
        name=check_name(name),
        overrides=list(overrides),
        nnodes=args.nnodes,
        gpus_per_node=args.gpus_per_node,
        run_root=args.run_root,
        python=args.python,
        working_dir=os.path.abspath(args.working_dir),
        env_vars=env_vars,
    )


def parse_with_overrides(parser: argparse.ArgumentParser, argv: list[str]):
    """(our options, Hydra overrides): every word that is not one of our options is an override (``key=value``,
    ``+key=value``, ``~key``), passed through unchanged; ``--`` ends our options explicitly."""
    args, overrides = parser.parse_known_args(argv)
    overrides = [o for o in overrides if o != "--"]
    unknown = [o for o in overrides if o.startswith("-")]
    if unknown:
        parser.error(f"unrecognized option(s): {' '.join(unknown)} (Hydra overrides are key=value words)")
    return args, overrides


def submit_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="launch/submit",
        allow_abbrev=False,
        description="Submit one entropy_verl training job to a Ray "
        "cluster; Hydra overrides (key=value) pass through unchanged.",
    )
    add_job_arguments(parser)
    parser.add_argument("--name", help="run name (trainer.experiment_name; default: <experiment or method>-<time>)")
    parser.add_argument("--dry-run", action="store_true", help="print the entrypoint and runtime env, submit nothing")
    args, overrides = parse_with_overrides(parser, list(sys.argv[1:] if argv is None else argv))
    spec = spec_from(args, args.name or f"{selection_of(overrides)}-{time.strftime('%Y%m%d-%H%M%S')}", overrides)
    if args.dry_run:
        print(spec.entrypoint())
        print(spec.runtime_env())
        return 0
    client = client_for(args.address)
    check_placement(args.address, spec)
    job_id = submit(client, spec)
    print(f"submitted {spec.name}: job id {job_id} ({args.address})", flush=True)
    if args.no_wait:
        return 0
    status = follow(client, job_id)
    print(f"job {job_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1
