"""Rank processes of the pretrained-load test (imports neither Ray nor pytest: spawned processes load this).

Each rank builds the Hugging Face model on the meta device, shards it, materialises its shards and
loads the pretrained safetensors into them; rank 0 saves the logits of a fixed batch and every rank
reports how much of the model it holds, and every rank writes its slices of an export of the loaded
weights (``export-<world>/final``). Then each rank builds a Llama from an inline config whose sizes
FSDP pads (the architecture's init from the seed, activation checkpointing on) and rank 0 saves the
gathered initial weights.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor
from torch.multiprocessing.spawn import start_processes

from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.export import export_model
from elastrain_trainer.models import build_built_model, materialize
from elastrain_trainer.parallel import parallelize

SEQ = 16
VOCAB = 256
#: A tiny Llama (tied embeddings) whose vocabulary (259) and MLP width (90) do not divide by 2 or 4.
UNEVEN_LLAMA = {
    "model_type": "llama",
    "vocab_size": 259,
    "hidden_size": 64,
    "intermediate_size": 90,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 64,
    "tie_word_embeddings": True,
}


def hf_trainer_config(model_dir: Path, *, weights: bool = True, **model: object) -> TrainerConfig:
    return TrainerConfig.model_validate(
        {
            "model": {
                "source": "huggingface",
                "seqLen": SEQ,
                "vocabSize": VOCAB,
                "huggingface": {"path": str(model_dir), "weights": weights},
                **model,
            },
            "seed": 3,
        }
    )


def fixed_batch() -> torch.Tensor:
    return torch.randint(0, VOCAB, (3, SEQ), generator=torch.Generator().manual_seed(11))


def _rank(rank: int, world: int, rendezvous: str, model_dir: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    try:
        cfg = hf_trainer_config(Path(model_dir))
        built = build_built_model(cfg)
        model = parallelize(built, init_device_mesh("cpu", (world,)), cfg)
        materialize(built, seed=cfg.seed)
        held = sum(p.to_local().numel() if isinstance(p, DTensor) else p.numel() for p in model.parameters())
        total = sum(p.numel() for p in model.parameters())
        model.eval()
        with torch.no_grad():
            logits = built.logits(fixed_batch())
        shares = [0] * world
        dist.all_gather_object(shares, held)
        export_model(built, str(Path(out).parent / f"export-{world}"), rank=rank, cfg=cfg)
        initial = initial_weights(world)
        if rank == 0:
            torch.save({"logits": logits, "held": shares, "total": total, "initial": initial}, out)
    finally:
        dist.destroy_process_group()


def random_init_config(**model: object) -> TrainerConfig:
    """A Llama from an inline config, no weights, whose sizes do not divide by 4 (FSDP pads those shards)."""
    return TrainerConfig.model_validate(
        {
            "model": {
                "source": "huggingface",
                "seqLen": SEQ,
                "vocabSize": VOCAB,
                "huggingface": {"config": UNEVEN_LLAMA},
                **model,
            },
            "seed": 3,
        }
    )


def initial_weights(world: int) -> dict[str, torch.Tensor]:
    """The architecture's init from the seed, sharded over ``world`` ranks, gathered (a collective; rank 0 gets it)."""
    cfg = random_init_config(activationCheckpointing="selective")
    built = build_built_model(cfg)
    parallelize(built, init_device_mesh("cpu", (world,)), cfg)
    materialize(built, seed=cfg.seed)
    state = get_model_state_dict(built.module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def spawn(world: int, model_dir: Path, out: Path) -> None:
    rendezvous = Path(tempfile.mkdtemp(dir=out.parent, prefix="rendezvous-")) / "store"
    start_processes(  # type: ignore[no-untyped-call]
        _rank, args=(world, str(rendezvous), str(model_dir), str(out)), nprocs=world, start_method="spawn"
    )
