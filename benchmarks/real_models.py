"""Real model sources: what an HF Llama costs against the built-in GPT, and what sharded loading saves.

    make bench BENCH=real_models [ARGS='--steps 8']

Sections (each a function returning table rows and a summary; the table, then JSON in
benchmarks/results/real_models.json, then a one-line summary):
  throughput   tokens/s of a training step (forward, backward, AdamW; one gloo rank, FSDP2 as in
               the trainer) of the built-in GPT and of a Hugging Face Llama of the same width, depth,
               heads and (within 1%) parameter count, interleaved in the same run; their ratio.
  sharded_load peak RSS growth per rank while building a pretrained Llama (~180 MB of fp32
               weights, saved by the benchmark) on meta, sharding it and loading its safetensors with
               DCP's Hugging Face reader into 1 rank and into 4 ranks (spawned processes); then
               while exporting it again (every rank writes its slices with DCP's Hugging Face
               writer, rank 0 consolidates them into one file).
  data_prepare ``elastrain data prepare`` MB/s against a plain ``datasets.map`` tokenization of the
               same generated jsonl files (``benchmarks/data_prepare.py``'s comparison, run here with
               --prepare-documents documents, one repeat, 1 and 2 workers; that file has the details
               and a longer run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("RUST_LOG", "warn")

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.device_mesh import init_device_mesh

from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.export import export_model
from elastrain_trainer.models import BuiltModel, build_built_model, count_parameters, materialize
from elastrain_trainer.optim import build_optimizer
from elastrain_trainer.parallel import parallelize
from report import print_table, write_json

#: The throughput model: small enough for a CPU, big enough that the matmuls dominate.
DIM, LAYERS, HEADS, VOCAB, SEQ, BATCH = 256, 4, 8, 8192, 128, 4
#: The pretrained model of the memory section (49M parameters, 188 MB in fp32).
LOAD_MODEL = {
    "vocab_size": 8192,
    "hidden_size": 512,
    "intermediate_size": 1536,
    "num_hidden_layers": 12,
    "num_attention_heads": 8,
    "num_key_value_heads": 8,
    "max_position_embeddings": 256,
    "tie_word_embeddings": False,
}

Section = Callable[[argparse.Namespace], tuple[list[list[Any]], dict[str, Any]]]


def throughput_configs() -> dict[str, TrainerConfig]:
    common = {"seqLen": SEQ, "vocabSize": VOCAB}
    # Llama's SwiGLU has three matrices: 8/3 x dim keeps the MLP the size of the GPT's 4 x dim two.
    llama = {
        "model_type": "llama",
        "vocab_size": VOCAB,
        "hidden_size": DIM,
        "intermediate_size": DIM * 8 // 3,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": HEADS,
        "max_position_embeddings": SEQ,
        "tie_word_embeddings": True,
    }
    return {
        "builtin GPT": TrainerConfig.model_validate(
            {"model": {**common, "dim": DIM, "numLayers": LAYERS, "numHeads": HEADS}, "seed": 0}
        ),
        "HF Llama": TrainerConfig.model_validate(
            {"model": {**common, "source": "huggingface", "huggingface": {"config": llama}}, "seed": 0}
        ),
    }


def _step_seconds(built: BuiltModel, module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> float:
    tokens = torch.randint(0, VOCAB, (BATCH, SEQ + 1))
    start = time.perf_counter()
    loss = built.loss(built.logits(tokens[:, :-1]), tokens[:, 1:])
    loss.backward()  # type: ignore[no-untyped-call]
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def throughput(args: argparse.Namespace) -> tuple[list[list[Any]], dict[str, Any]]:
    torch.set_num_threads(1)
    store = tempfile.mktemp(prefix="real-models-rdzv-")
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,))
        models = {}
        for name, cfg in throughput_configs().items():
            built = build_built_model(cfg)
            module = parallelize(built, mesh, cfg)
            materialize(built, seed=cfg.seed)
            models[name] = (built, module, build_optimizer(module.parameters(), cfg.optimizer))
        params = {name: count_parameters(m[1]) for name, m in models.items()}
        times: dict[str, list[float]] = {name: [] for name in models}
        for model in models.values():
            _step_seconds(*model)  # warm-up
        for _ in range(args.steps):  # interleaved: the machine's load hits both alike
            for name, model in models.items():
                times[name].append(_step_seconds(*model))
    finally:
        dist.destroy_process_group()
    tok_s = {name: BATCH * SEQ / statistics.median(t) for name, t in times.items()}
    rows = [[f"throughput {name}", f"{params[name] / 1e6:.2f} M params", f"{tok_s[name]:.0f} tok/s"] for name in times]
    ratio = tok_s["HF Llama"] / tok_s["builtin GPT"]
    rows.append(["throughput ratio", "HF Llama / builtin GPT", f"{ratio:.2f}"])
    return rows, {"params": params, "step_seconds": times, "tokens_per_second": tok_s, "ratio": ratio}


def _rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


class PeakRss:
    """The highest RSS of this process while the block runs, sampled every 2 ms by a thread.

    ``ru_maxrss`` cannot be used: the imports' transient peak is already higher than a sharded load.
    """

    def __init__(self) -> None:
        import threading

        self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss_mb())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def _load_rank(rank: int, world: int, rendezvous: str, model_dir: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    try:
        cfg = TrainerConfig.model_validate(
            {
                "model": {
                    "source": "huggingface",
                    "seqLen": 128,
                    "vocabSize": 256,
                    "huggingface": {"path": model_dir, "weights": True},
                }
            }
        )
        start = time.perf_counter()
        built = build_built_model(cfg)  # on meta: what it allocates is the architecture's code, not weights
        dist.barrier()
        baseline = _rss_mb()
        with PeakRss() as peak:
            parallelize(built, init_device_mesh("cpu", (world,)), cfg)
            materialize(built, seed=0)
        seconds = time.perf_counter() - start
        dist.barrier()
        before_export = _rss_mb()
        start = time.perf_counter()
        with PeakRss() as export_peak:
            export_model(built, str(Path(out).with_suffix(".export")), rank=rank, cfg=cfg)
        measured = {
            "growth_mb": peak.peak - baseline,
            "seconds": seconds,
            "export_growth_mb": export_peak.peak - before_export,
            "export_seconds": time.perf_counter() - start,
        }
        results: list[Any] = [None] * world
        dist.all_gather_object(results, measured)
        if rank == 0:
            torch.save(results, out)
    finally:
        dist.destroy_process_group()


def sharded_load(args: argparse.Namespace) -> tuple[list[list[Any]], dict[str, Any]]:
    from transformers import LlamaConfig, LlamaForCausalLM

    with tempfile.TemporaryDirectory(prefix="real-models-") as tmp:
        model_dir = Path(tmp) / "llama"
        torch.manual_seed(0)
        LlamaForCausalLM(LlamaConfig(**LOAD_MODEL)).save_pretrained(str(model_dir))
        weights_mb = sum(p.stat().st_size for p in model_dir.glob("*.safetensors")) / 2**20
        per_world: dict[int, list[dict[str, float]]] = {}
        for world in args.load_worlds:
            out = Path(tmp) / f"load-{world}.pt"
            rendezvous = Path(tempfile.mkdtemp(dir=tmp)) / "store"
            mp.start_processes(
                _load_rank, args=(world, str(rendezvous), str(model_dir), str(out)), nprocs=world, start_method="spawn"
            )
            per_world[world] = torch.load(str(out), weights_only=False)
    rows = [["sharded load weights", "safetensors", f"{weights_mb:.0f} MB"]]
    for world, ranks in per_world.items():
        peak = max(r["growth_mb"] for r in ranks)
        rows.append([f"sharded load {world} rank(s)", "peak RSS growth per rank", f"{peak:.0f} MB"])
        rows.append(
            [
                f"sharded load {world} rank(s)",
                "build + shard + load (RSS sampled)",
                f"{max(r['seconds'] for r in ranks):.1f} s",
            ]
        )
        export_peak = max(r["export_growth_mb"] for r in ranks)
        rows.append([f"export {world} rank(s)", "peak RSS growth per rank", f"{export_peak:.0f} MB"])
        rows.append(
            [f"export {world} rank(s)", "slices + consolidation", f"{max(r['export_seconds'] for r in ranks):.1f} s"]
        )
    return rows, {"weights_mb": weights_mb, "per_world": {str(w): r for w, r in per_world.items()}}


def data_prepare(args: argparse.Namespace) -> tuple[list[list[Any]], dict[str, Any]]:
    import data_prepare as bench

    measured, size = bench.measure(args.prepare_documents, 1, [1, 2])
    rows = [
        [f"data {label}", f"{size / 1e6:.2f} MB jsonl", f"{r['mb_per_second']:.2f} MB/s"]
        for label, r in measured.items()
    ]
    ratio = measured["prepare x2"]["mb_per_second"] / measured["datasets.map x2"]["mb_per_second"]
    rows.append(["data prepare / datasets.map", "2 workers, MB/s ratio", f"{ratio:.2f}"])
    return rows, {"input_bytes": size, "rows": measured, "ratio_2_workers": ratio}


SECTIONS: dict[str, Section] = {"throughput": throughput, "sharded_load": sharded_load, "data_prepare": data_prepare}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="timed training steps per model")
    parser.add_argument("--load-worlds", type=int, nargs="+", default=[1, 4], help="ranks to load the model into")
    parser.add_argument("--prepare-documents", type=int, default=5000, help="documents of the data_prepare corpus")
    parser.add_argument("--only", choices=sorted(SECTIONS), help="run one section")
    args = parser.parse_args()
    rows: list[list[Any]] = []
    results: dict[str, Any] = {}
    for name, section in SECTIONS.items():
        if args.only and name != args.only:
            continue
        section_rows, results[name] = section(args)
        rows.extend(section_rows)
        print(f"{name} done", file=sys.stderr, flush=True)
    print_table("real models (CPU, gloo)", ["measure", "what", "value"], rows)
    path = write_json("real_models", results)
    print(f"results: {path}")
    parts = []
    if "throughput" in results:
        t = results["throughput"]["tokens_per_second"]
        parts.append(
            f"HF Llama {t['HF Llama']:.0f} tok/s vs builtin GPT {t['builtin GPT']:.0f} tok/s "
            f"(ratio {results['throughput']['ratio']:.2f})"
        )
    if "sharded_load" in results:
        s = results["sharded_load"]
        peaks = {w: max(r["growth_mb"] for r in ranks) for w, ranks in s["per_world"].items()}
        parts.append(
            f"loading {s['weights_mb']:.0f} MB of weights: peak RSS growth per rank "
            + ", ".join(f"{v:.0f} MB at {w} rank(s)" for w, v in peaks.items())
        )
    if "data_prepare" in results:
        d = results["data_prepare"]["rows"]
        parts.append(
            f"data prepare {d['prepare x2']['mb_per_second']:.2f} MB/s vs datasets.map "
            f"{d['datasets.map x2']['mb_per_second']:.2f} MB/s at 2 workers"
        )
    print("; ".join(parts))


if __name__ == "__main__":
    main()
