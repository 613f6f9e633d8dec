"""A Ray cluster of several nodes on this machine, every listener on 127.0.0.1: a rehearsal of a multi-node job.

    python -m entropy_verl.tools.local_cluster --nodes 2 --cpus-per-node 16 --gpus-per-node 1

Each node is its own raylet with its own ports and resources (Ray's ``cluster_utils.Cluster``); a CPU node's "GPU"s
are logical trainer slots, which is what verl's resource pools count. ``ray start --address`` cannot add a second
node on 127.0.0.1: on Linux Ray advertises the machine's network address unless
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, and with it set refuses a second ``ray start``. Submit to it with
``launch/submit --address <dashboard>`` (and that variable set: the tool prints it).

It prints one JSON line, ``{"dashboard": ..., "gcs": ..., "nodes": [...], "env": {...}}``, then reads commands on
stdin, one per line, answering each with a JSON line:

    remove N    kill node N's processes at once (N >= 1: a worker node), as a node that dies does
    add         start one more node like the others
    stop        (or end of input) shut every node down and exit
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys

LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_info(node) -> dict:
    raylet = node.all_processes["raylet"][0].process
    return {"node_id": node.node_id, "ip": node.node_ip_address, "raylet_pid": raylet.pid}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m entropy_verl.tools.local_cluster", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--nodes", type=int, default=2, help="nodes, the head included (default: %(default)s)")
    parser.add_argument("--cpus-per-node", type=int, default=16, help="logical CPUs per node (default: %(default)s)")
    parser.add_argument("--gpus-per-node", type=int, default=1, help="logical GPUs (trainer slots) per node")
    parser.add_argument(
        "--object-store-mib", type=int, default=512, help="object store per node, MiB (default: %(default)s)"
    )
    parser.add_argument("--temp-dir", help="Ray's session directory (default: Ray's)")
    args = parser.parse_args(argv)
    if args.nodes < 1:
        parser.error(f"--nodes must be >= 1, got {args.nodes}")
    os.environ.update(LOOPBACK_ENV)  # read by Ray when imported, and inherited by every process it starts
    from ray.cluster_utils import Cluster

    node_args = {
        "node_ip_address": "127.0.0.1",
        "num_cpus": args.cpus_per_node,
        "num_gpus": args.gpus_per_node,
        "object_store_memory": args.object_store_mib * 2**20,
        # every node's: a job supervisor finds its cluster through <temp_dir>/ray_current_cluster, which another
        # Ray on the machine would overwrite in the shared default /tmp/ray
        **({"temp_dir": args.temp_dir} if args.temp_dir else {}),
    }
    dashboard_port = free_port()
    head_args = {
        **node_args,
        "include_dashboard": True,
        "dashboard_host": "127.0.0.1",
        "dashboard_port": dashboard_port,
    }
    cluster = Cluster(initialize_head=True, head_node_args=head_args)
    nodes = [cluster.head_node] + [cluster.add_node(**node_args) for _ in range(args.nodes - 1)]
    cluster.wait_for_nodes()

    def answer(**fields) -> None:
        print(json.dumps(fields), flush=True)

    try:
        answer(
            dashboard=f"http://127.0.0.1:{dashboard_port}",
            gcs=cluster.address,
            nodes=[node_info(n) for n in nodes],
            env=LOOPBACK_ENV,
        )
        for line in sys.stdin:
            command = line.split()
            if not command:
                continue
            if command == ["stop"]:
                break
            if command[0] == "remove" and len(command) == 2 and command[1].isdigit():
                index = int(command[1])
                if not 1 <= index < len(nodes) or nodes[index] is None:
                    answer(error=f"no worker node {index} (nodes 1..{len(nodes) - 1} are workers)")
                    continue
                cluster.remove_node(nodes[index], allow_graceful=False)
                answer(removed=index, node_id=nodes[index].node_id)
                nodes[index] = None
            elif command == ["add"]:
                nodes.append(cluster.add_node(**node_args))
                answer(added=len(nodes) - 1, **node_info(nodes[-1]))
            else:
                answer(error=f"unknown command {line.strip()!r} (remove N, add, stop)")
    finally:
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
