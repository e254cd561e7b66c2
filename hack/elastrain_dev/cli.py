"""``elastrain-dev``: the local cluster from the command line (what the Makefile calls).

elastrain-dev cluster-up [--nodes 4] [--gpus 8]   # last line: export KUBECONFIG=...
elastrain-dev cluster-down
elastrain-dev nodes
elastrain-dev fail-node NAME | restore-node NAME | delete-node NAME
elastrain-dev add-nodes [--count 1] [--gpus 8]
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from pathlib import Path

from elastrain_dev import nodes
from elastrain_dev.cluster import ClusterError, KubectlError, LocalCluster, default_cluster


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="elastrain-dev", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("cluster-up", help="build (once) and start the local control plane with fake GPU nodes")
    up.add_argument("--nodes", type=int, default=4, help="fake nodes to create (default 4)")
    up.add_argument("--gpus", type=int, default=8, help="nvidia.com/gpu capacity per node (default 8)")
    sub.add_parser("cluster-down", help="stop the local cluster and delete its state")
    sub.add_parser("nodes", help="print the nodes with their GPU capacity")
    sub.add_parser("demo", help="the operator on the local cluster: a job through a node loss and back")
    for verb, text in (
        ("fail-node", "stop a node's heartbeat: NotReady, then its pods are evicted"),
        ("restore-node", "bring a failed node back to Ready"),
        ("delete-node", "delete a node; its pods are garbage-collected"),
    ):
        sub.add_parser(verb, help=text).add_argument("name")
    runner = sub.add_parser("pod-runner", help="run pods labelled podrunner.elastrain.dev/run=true as local processes")
    runner.add_argument("--workdir", type=Path, default=None, help="where pods run (default: the cluster's state dir)")
    add = sub.add_parser("add-nodes", help="add fake GPU nodes")
    add.add_argument("--count", type=int, default=1)
    add.add_argument("--gpus", type=int, default=8)
    return parser


def run(argv: list[str], cluster: LocalCluster) -> int:
    args = _parser().parse_args(argv)
    if args.command == "cluster-up":
        start = time.monotonic()
        nodes.bring_up(cluster, nodes=args.nodes, gpus=args.gpus)
        print(f"local cluster up in {time.monotonic() - start:.1f} s at {cluster.server}; logs in {cluster.log_dir}")
        print(nodes.describe_nodes(cluster), end="")
        print(f"export KUBECONFIG={cluster.kubeconfig}")
    elif args.command == "cluster-down":
        cluster.down()
        print("local cluster stopped")
    elif args.command == "demo":
        from elastrain_dev.demo import run as run_demo

        run_demo(cluster)
    elif args.command == "nodes":
        print(nodes.describe_nodes(cluster), end="")
    elif args.command == "fail-node":
        nodes.fail_node(cluster, args.name)
    elif args.command == "restore-node":
        nodes.restore_node(cluster, args.name)
    elif args.command == "delete-node":
        nodes.delete_node(cluster, args.name)
    elif args.command == "pod-runner":
        from elastrain_dev.podrunner import PodRunner

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        workdir = args.workdir or cluster.state_dir / "pods"
        PodRunner(cluster.kubeconfig, workdir, extra_path=str(Path(sys.executable).parent)).run()
    elif args.command == "add-nodes":
        print("\n".join(nodes.add_nodes(cluster, count=args.count, gpus=args.gpus)))
    return 0


def one_line(err: Exception) -> str:
    """What went wrong, in one line: kubectl's own last word for a failed kubectl, else the error's first line."""
    if isinstance(err, KubectlError):
        said = [line.strip() for line in (err.stderr or "").splitlines() if line.strip()]
        return said[-1] if said else f"kubectl exited with {err.returncode}"
    if isinstance(err, subprocess.TimeoutExpired):
        return f"{err.cmd[0] if isinstance(err.cmd, list) else err.cmd} did not answer within {err.timeout:.0f} s"
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def main() -> None:
    try:
        sys.exit(run(sys.argv[1:], default_cluster()))
    except (ClusterError, KubectlError, subprocess.TimeoutExpired, OSError) as err:
        command = sys.argv[1] if len(sys.argv) > 1 else ""
        print(f"elastrain-dev {command}: {one_line(err)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
