"""The ``elastrain`` command: ``train FILE.yaml`` (a TrainingJob's trainer section on a local Ray cluster of
CPU pods), ``pod`` (what a pod runs) and ``data prepare`` (an offline corpus pipeline, data/prepare/)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from elastrain_trainer.manifest import load_manifest
from elastrain_trainer.pod.termination import write_termination_message


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="elastrain", description="elastrain trainer tools")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train locally: one Ray node per simulated worker pod (CPU, gloo)")
    train.add_argument("file", help="a TrainingJob manifest or a bare trainer config (YAML)")
    train.add_argument("--pods", type=int, help="worker pods (replica groups); default: spec.replicas")
    train.add_argument("--ranks-per-pod", type=int, help="processes per pod; default: spec.acceleratorsPerWorker")
    train.add_argument("--kill-pod-at", type=int, action="append", default=[], help="remove a pod at this step")
    train.add_argument("--add-pod-at", type=int, action="append", default=[], help="add a pod at this step")
    train.add_argument("--checkpoint-dir", help="durable checkpoints here (default: spec.checkpoint.uri)")
    train.add_argument("--checkpoint-interval", type=int, help="steps between checkpoints")
    train.add_argument(
        "--export-dir", help="write the trained model as a Hugging Face model directory DIR/final at the end"
    )
    train.add_argument("--metrics-out", help="write per-step metrics and events as JSON here")
    train.add_argument(
        "--step-delay", type=float, default=0.0, help="slow every step down by this many seconds (to watch resizes)"
    )
    train.add_argument(
        "--curve-out", help="write the loss curve with resize markers as a PNG here (default: JOB-loss.png)"
    )
    pod = sub.add_parser("pod", help="what a TrainingJob's pod runs (configured by the operator's ELASTRAIN_* env)")
    pod.add_argument("role", choices=["head", "worker"], help="head: Ray head and driver; worker: a Ray node")
    from elastrain_trainer.data.prepare.command import add_prepare_parser

    add_prepare_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train":
        return train(args)
    if args.command == "pod":
        return pod(args.role)
    if args.command == "data":
        from elastrain_trainer.data.prepare.command import run_prepare

        return run_prepare(args)
    return 2


def pod(role: str) -> int:
    """Run this pod's part from the environment the operator set; a bad contract exits 2 saying why."""
    from elastrain_trainer.config.podenv import PodEnvError, read_pod_env

    os.environ.setdefault("RUST_LOG", "warn")
    try:
        contract = read_pod_env(os.environ)
    except PodEnvError as err:
        return _refuse(f"elastrain pod {role}: {err}")
    if contract.role != role:
        message = f"elastrain pod {role}: ELASTRAIN_ROLE is {contract.role!r}; run `elastrain pod {contract.role}`"
        return _refuse(message)
    if role == "head":
        from elastrain_trainer.pod.head import configure_logging, run_head

        configure_logging()
        return run_head(contract)
    from elastrain_trainer.pod.worker import run_worker

    return run_worker(contract)


def _refuse(message: str) -> int:
    """A pod that cannot start: say why on stderr and in the termination log, exit 2."""
    print(message, file=sys.stderr)
    write_termination_message(message)
    return 2


def _pick_victim(driver: Any, pods: list[str]) -> str:
    """The newest pod, preferring one whose loss leaves another trained group alive."""
    ready = [g.node_id for g in driver.groups.values() if g.ready and g.node_id in pods]
    return ready[-1] if len(ready) >= 2 else pods[-1]


def train(args: argparse.Namespace) -> int:
    os.environ.setdefault("RUST_LOG", "warn")
    from tqdm import tqdm

    from elastrain_trainer.curve import render_loss_curve, write_loss_curve_png
    from elastrain_trainer.driver import Driver, DriverOptions, GroupSetupError, StepFailureError
    from elastrain_trainer.errors import SpecError
    from elastrain_trainer.localmode import LocalCluster
    from elastrain_trainer.metrics import StepMetrics

    job = load_manifest(args.file)
    pods = args.pods or job.pods
    ranks = args.ranks_per_pod or job.ranks_per_pod
    options = DriverOptions(
        checkpoint_dir=args.checkpoint_dir or job.checkpoint_dir,
        checkpoint_interval=args.checkpoint_interval
        if args.checkpoint_interval is not None
        else job.checkpoint_interval,
        checkpoint_keep=job.checkpoint_keep,
        async_checkpoint=job.async_checkpoint,
        checkpoint_max_failures=job.checkpoint_max_failures,
        step_delay=args.step_delay,
        export_dir=args.export_dir,
    )
    print(f"elastrain: {job.name}: {pods} pods x {ranks} ranks, {job.trainer.steps} steps", file=sys.stderr)
    cluster = LocalCluster(pods=pods, ranks_per_pod=ranks)
    kills, adds = sorted(args.kill_pod_at), sorted(args.add_pod_at)
    bar = tqdm(total=job.trainer.steps, unit="step", dynamic_ncols=True)

    def hook(driver: Driver, step: int) -> None:
        while kills and step >= kills[0]:
            kills.pop(0)
            victim = _pick_victim(driver, cluster.pod_ids())
            cluster.remove_pod(victim)
            driver.event("pod_removed", node=victim)
        while adds and step >= adds[0]:
            adds.pop(0)
            # Ray starts a node only from the main thread; the new raylet registers while training goes on.
            started = time.monotonic()
            node = cluster.add_pod(wait=False)
            driver.event("pod_added", node=node, blocked_seconds=time.monotonic() - started)

    def on_step(m: StepMetrics) -> None:
        if m.committed:
            bar.n = m.step
            bar.set_postfix(loss=f"{m.loss:.4f}", tok_s=f"{m.tokens_per_second:.0f}", groups=m.groups)
            bar.refresh()

    driver: Driver | None = None
    try:
        driver = Driver(job.trainer, options)
        result = driver.run(hook=hook, on_step=on_step)
    except (SpecError, GroupSetupError, StepFailureError) as err:  # worded: field, value, fix
        print(f"elastrain: {job.name}: {err}", file=sys.stderr)
        return 1
    finally:
        bar.close()
        if driver is not None:
            driver.shutdown()
        cluster.shutdown()
    print(render_loss_curve(result.metrics))
    if args.metrics_out:
        Path(args.metrics_out).write_text(
            json.dumps({"metrics": [m.to_dict() for m in result.metrics], "events": result.events}, default=str)
        )
    curve = Path(args.curve_out or f"{job.name}-loss.png")
    write_loss_curve_png(result.metrics, result.events, curve, title=f"{job.name}: loss and participating groups")
    print(f"loss curve: {curve}")
    audit = result.ledger.audit(0)
    print(
        f"finished: step {result.step}/{job.trainer.steps}, epoch 0 trained {audit.trained}/{audit.num_samples} "
        f"samples, duplicated {audit.duplicated}"
    )
    failed = [e for e in result.events if e["kind"] == "checkpoint_failed"]
    if failed:
        print(f"checkpoints: {len(failed)} save(s) failed; the last: {failed[-1]['message']}")
    if result.export_path is not None:
        print(f"exported: {result.export_path}")
    return 0 if result.step >= job.trainer.steps else 1
