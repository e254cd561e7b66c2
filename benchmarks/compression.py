"""What each gradient codec costs and buys on the cross-pod link.

    make bench BENCH=compression [ARGS='--steps 60 --width 256']

4 gloo ranks on this machine as 2 pods x 2: 1-D FSDP2 inside each pod, the cross-pod average
through a codec (elastrain_trainer.compression) in the bucketed reducer (elastrain_trainer.overlap),
SGD with momentum on a fixed teacher-student regression. Per codec:
  bytes/step     bytes one rank sent across pods per step (ring wire model, see compression.stats)
  ratio          those bytes over an exact fp32 all-reduce's
  step ms        median step time (forward, backward, reductions, optimizer)
  comm ms        median time per step inside cross-pod reductions
  hidden ms      median communication time per step not waited for (async reduction only)
  loss           full-dataset loss after --steps steps, and its change against codec none
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

from elastrain_trainer.compression import build_codec
from elastrain_trainer.config.compression import CompressionConfig
from elastrain_trainer.overlap import build_cross_pod_reducer
from report import print_table, summarise, write_json

WORLD, PODS = 4, 2
SAMPLES = 2048
BUCKET_MB = 0.25

#: (row label, codec config, asynchronous reduction)
CASES: list[tuple[str, CompressionConfig, bool]] = [
    ("none sync", CompressionConfig(), False),
    ("none async", CompressionConfig(), True),
    ("bf16", CompressionConfig(codec="bf16"), True),
    ("fp16", CompressionConfig(codec="fp16"), True),
    ("int8_block", CompressionConfig(codec="int8_block"), True),
    ("topk 10%", CompressionConfig(codec="topk", topk_ratio=0.1), True),
    ("topk 1%", CompressionConfig(codec="topk", topk_ratio=0.01), True),
    ("powersgd r4", CompressionConfig(codec="powersgd", powersgd_rank=4), True),
]


def _model(width: int) -> torch.nn.Sequential:
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = [torch.nn.Linear(32, width), torch.nn.Tanh()]
    for _ in range(3):
        layers += [torch.nn.Linear(width, width), torch.nn.Tanh()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, 8))


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    inputs = torch.randn(SAMPLES, 32, generator=generator)
    teacher = torch.randn(8, 32, generator=generator) / 6
    return inputs, (inputs @ teacher.t()).tanh() + 0.05 * torch.randn(SAMPLES, 8, generator=generator)


def _worker(rank: int, port: int, args: argparse.Namespace, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    mesh = init_device_mesh("cpu", (PODS, WORLD // PODS), mesh_dim_names=("pod", "shard"))
    inputs, targets = _data()
    rows: dict[str, dict[str, Any]] = {}
    for label, cfg, async_reduce in CASES:
        model = _model(args.width)
        for layer in model:
            if isinstance(layer, torch.nn.Linear):
                fully_shard(layer, mesh=mesh["shard"])
        fully_shard(model, mesh=mesh["shard"])
        codec = build_codec(cfg)
        reducer = build_cross_pod_reducer(
            codec, mesh.get_group("pod"), bucket_size_mb=BUCKET_MB, async_reduce=async_reduce
        )
        reducer.attach(model.modules())
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        step_times = []
        for step in range(args.steps):
            dist.barrier()
            start = time.perf_counter()
            index = torch.arange(step * args.batch * WORLD, (step + 1) * args.batch * WORLD) % SAMPLES
            mine = index[rank * args.batch : (rank + 1) * args.batch]
            torch.nn.functional.mse_loss(model(inputs[mine]), targets[mine]).backward()
            reducer.finish()
            optimizer.step()
            optimizer.zero_grad()
            step_times.append(time.perf_counter() - start)
            codec.end_step(step_seconds=step_times[-1])
        reducer.close()
        with torch.no_grad():
            loss = torch.nn.functional.mse_loss(model(inputs), targets).item()
        warm = slice(min(5, args.steps - 1), None)  # first steps include lazy init
        rows[label] = {
            "bytes_per_step": codec.stats.bytes_sent / args.steps,
            "ratio": codec.stats.ratio,
            "step_seconds": summarise(step_times[warm]),
            "comm_seconds": summarise(reducer.timings.comm_seconds[warm]),
            "hidden_seconds": summarise(reducer.timings.hidden_seconds[warm]),
            "loss": loss,
        }
    if rank == 0:
        torch.save(rows, Path(out) / "rows.pt")
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64, help="samples per rank per step")
    args = parser.parse_args()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_worker, args=(port, args, out), nprocs=WORLD)
        rows: dict[str, dict[str, Any]] = torch.load(Path(out) / "rows.pt")
    reference = rows["none sync"]["loss"]
    table = [
        [
            label,
            int(row["bytes_per_step"]),
            row["ratio"],
            row["step_seconds"]["median"] * 1000,
            row["comm_seconds"]["median"] * 1000,
            row["hidden_seconds"]["median"] * 1000,
            f"{row['loss']:.5f}",
            f"{(row['loss'] / reference - 1) * 100:+.2f}%",
        ]
        for label, row in rows.items()
    ]
    header = ["codec", "bytes/step", "ratio", "step ms", "comm ms", "hidden ms", "loss", "vs none"]
    print_table(f"Cross-pod compression, 2 pods x 2 ranks, {args.steps} steps, width {args.width}", header, table)
    path = write_json("compression", {"args": vars(args), "rows": rows})
    print(f"wrote {path}", file=sys.stderr)
    best = min((r for r in rows.items() if r[0] != "none sync"), key=lambda r: r[1]["ratio"])
    within = [label for label, row in rows.items() if row["loss"] <= reference * 1.01]
    print(
        f"summary: {len(rows)} codecs; lowest traffic {best[0]} at {best[1]['ratio']:.1%} of fp32; "
        f"within 1% of uncompressed loss: {', '.join(within)}; "
        f"median hidden comm (none async) {rows['none async']['hidden_seconds']['median'] * 1000:.2f} ms/step"
    )


if __name__ == "__main__":
    main()
