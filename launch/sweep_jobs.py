"""``launch/sweep``: one Ray job per combination of Hydra sweep overrides, each submitted like ``launch/submit``.

    launch/sweep --address http://HEAD:8265 --name zoo hardware=cluster_gpu task=gsm8k method=grpo,clip_b,nsr \
        data.seed=range(1,4) trainer.total_training_steps=200 actor_rollout_ref.model.path=... data.train_files=...
    launch/sweep --name clip_b-mu method=clip_b entropy_verl.methods.clip_b.mu=1.5,2.5 ...

The sweep grammar is Hydra's own (``a=1,2``, ``range(1,4)``, ``choice(x,y)``; lists and quoted strings stay single
values), parsed with Hydra's override parser; overrides without a sweep are passed to every job. Hydra's ``--multirun``
launchers are not used because each job is its own verl driver that starts or joins Ray (``run_ppo``): a multirun
launcher would run those drivers inside one local process pool instead of as cluster jobs.
"""

from __future__ import annotations

import argparse
import itertools
import re
import shlex
import sys
import time

from ray_jobs import (
    TERMINAL,
    add_job_arguments,
    check_placement,
    client_for,
    key_value,
    parse_with_overrides,
    spec_from,
    status_of,
    submit,
    wait,
)


def expand(overrides: list[str]) -> list[tuple[list[str], list[str]]]:
    """One (swept overrides, fixed overrides) per combination, sweeps in the order given."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    axes = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] for o in parsed if o.is_sweep_override()]
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    return [(list(combination), fixed) for combination in itertools.product(*axes)]


def run_name(prefix: str, index: int, swept: list[str]) -> str:
    """``<prefix>-<i>-<key>_<value>...`` from the swept overrides (last key segment), safe as a directory name."""
    parts = []
    for key, value in map(key_value, swept):
        parts.append(f"{key.split('.')[-1]}_{re.sub(r'[^A-Za-z0-9_.+-]+', '-', value).strip('-')}")
    return "-".join([prefix, str(index), *parts])


def submit_command(args, spec) -> str:
    """The equivalent ``launch/submit`` command line (what --dry-run prints)."""
    options = ["--address", args.address, "--name", spec.name]
    for flag, value in (
        ("--nnodes", spec.nnodes),
        ("--gpus-per-node", spec.gpus_per_node),
        ("--run-root", spec.run_root),
    ):
        if value is not None:
            options += [flag, str(value)]
    options += [f"--env={key}={value}" for key, value in spec.env_vars.items()]
    return shlex.join(["launch/submit", *options, *(["--no-wait"] if args.no_wait else []), *spec.overrides])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="launch/sweep",
        allow_abbrev=False,
        description="Submit one Ray job per combination of Hydra sweep overrides (a=1,2 b=x,y, range(...)).",
    )
    add_job_arguments(parser)
    parser.add_argument("--name", default="sweep", help="run-name prefix (default: %(default)s)")
    parser.add_argument(
        "--max-concurrent", type=int, default=0, help="at most this many jobs running at once (0: no limit)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print one launch/submit command per job, submit nothing"
    )
    args, overrides = parse_with_overrides(parser, list(sys.argv[1:] if argv is None else argv))
    specs = [
        spec_from(args, run_name(args.name, i, swept), swept + fixed)
        for i, (swept, fixed) in enumerate(expand(overrides))
    ]
    if args.dry_run:
        for spec in specs:
            print(submit_command(args, spec))
        return 0
    client = client_for(args.address)
    for spec in specs:  # before any is submitted: a sweep is placed whole or not at all
        check_placement(args.address, spec)
    submitted: dict[str, str] = {}  # job id -> run name
    for spec in specs:
        while (
            args.max_concurrent and sum(status_of(client, j) not in TERMINAL for j in submitted) >= args.max_concurrent
        ):
            time.sleep(2.0)
        job_id = submit(client, spec)
        submitted[job_id] = spec.name
        print(f"submitted {spec.name}: job id {job_id}", flush=True)
    statuses = {j: status_of(client, j) for j in submitted} if args.no_wait else wait(client, list(submitted))
    print(f"\n{len(submitted)} job(s) on {args.address}:")
    for job_id, name in submitted.items():
        print(f"  {statuses[job_id]:<10} {job_id:<48} {name}")
    return 0 if args.no_wait or all(s == "SUCCEEDED" for s in statuses.values()) else 1
