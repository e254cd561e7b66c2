"""``parallelize`` applies the TrainerConfig's precision and overlap settings (one gloo rank, in process).

What each forward and backward actually sees is recorded with hooks on the real GPT: the dtype
of the weights a Linear computes with, of the logits, of the stored (sharded) parameters and of
the gradient shards FSDP2 hands to the cross-group reduction; prefetch targets and resharding
are read from the FSDP modules after ``parallelize``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor

from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.models import GPT, build_model
from elastrain_trainer.parallel import fsdp_modules, parallelize, set_cross_group_reduce

F32, BF16, F16 = torch.float32, torch.bfloat16, torch.float16
LAYERS = 3


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeviceMesh]:
    assert not dist.is_initialized(), "another test left a default process group in this process"
    init_file = tmp_path_factory.mktemp("pg") / "init"
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=0, world_size=1)
    try:
        yield init_device_mesh("cpu", (1,))
    finally:
        dist.destroy_process_group()


def _config(**sections: Any) -> TrainerConfig:
    data: dict[str, Any] = {
        "model": {"dim": 32, "numHeads": 2, "numLayers": LAYERS, "seqLen": 16, "vocabSize": 64},
        "lrSchedule": {"warmupSteps": 0},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return TrainerConfig.model_validate(data)


def _tokens() -> torch.Tensor:
    return torch.randint(0, 64, (4, 16), generator=torch.Generator().manual_seed(3))


def _qkv(model: GPT, index: int = 0) -> nn.Linear:
    """The attention input projection of block ``index``, under any wrappers."""
    found = [m for name, m in model.blocks[index].named_modules() if name.endswith("attn.qkv")]
    assert len(found) == 1 and isinstance(found[0], nn.Linear)
    return found[0]


def _observe(model: GPT) -> dict[str, Any]:
    """One forward and backward; what dtypes the computation and the reductions saw."""
    seen: dict[str, Any] = {"compute": set(), "reduce": set()}
    _qkv(model).register_forward_hook(lambda m, args, out: seen["compute"].update({m.weight.dtype, out.dtype}))
    set_cross_group_reduce(model, lambda shard: seen["reduce"].add(shard.dtype))
    logits = model(_tokens())
    logits.float().sum().backward()
    seen["logits"] = logits.dtype
    seen["stored"] = {p.dtype for p in model.parameters()}
    seen["grads"] = {p.grad.dtype for p in model.parameters() if p.grad is not None}
    seen["logits_value"] = logits.detach().float()
    return seen


@dataclass(frozen=True)
class Case:
    sections: dict[str, dict[str, Any]]
    """TrainerConfig sections (camelCase) on top of the tiny model."""
    compute: set[torch.dtype]
    """Dtypes of a Linear's weight and output in forward."""
    stored: torch.dtype
    """Dtype of the sharded parameters (and of their gradients)."""
    reduced: torch.dtype
    """Dtype of the gradient shards FSDP2 hands to the cross-group reduction."""
    logits: torch.dtype


FSDP_CASES = {
    "fp32": Case({}, {F32}, F32, F32, F32),
    "bf16_master": Case({"precision": {"dtype": "bf16"}}, {BF16}, F32, F32, BF16),
    "bf16_reduce_bf16": Case({"precision": {"dtype": "bf16", "reduceDtype": "bf16"}}, {BF16}, F32, BF16, BF16),
    "bf16_no_master": Case({"precision": {"dtype": "bf16", "masterWeights": False}}, {BF16}, BF16, F32, BF16),
    "fp16_master": Case({"precision": {"dtype": "fp16"}}, {F16}, F32, F32, F16),
    "bf16_full_ac": Case(
        {"precision": {"dtype": "bf16"}, "model": {"activationCheckpointing": "full"}}, {BF16}, F32, F32, BF16
    ),
}


@pytest.mark.parametrize("name", list(FSDP_CASES))
def test_fsdp_applies_the_precision_policy(mesh: DeviceMesh, name: str) -> None:
    case = FSDP_CASES[name]
    cfg = _config(**case.sections)
    model = parallelize(build_model(cfg.model, seed=0), mesh, cfg)
    assert len(fsdp_modules(model)) == LAYERS + 1
    seen = _observe(model)
    assert seen["compute"] == case.compute
    assert seen["stored"] == seen["grads"] == {case.stored}  # gradients land on the stored (master) parameters
    assert seen["reduce"] == {case.reduced}
    assert seen["logits"] == case.logits


def test_low_precision_changes_the_numbers_but_not_the_model(mesh: DeviceMesh) -> None:
    reference = build_model(_config().model, seed=0)(_tokens()).detach()
    fp32 = _observe(parallelize(build_model(_config().model, seed=0), mesh, _config()))["logits_value"]
    bf16_cfg = _config(precision={"dtype": "bf16"})
    bf16 = _observe(parallelize(build_model(bf16_cfg.model, seed=0), mesh, bf16_cfg))["logits_value"]
    torch.testing.assert_close(fp32, reference, rtol=1e-6, atol=1e-6)
    assert not torch.equal(bf16, reference)
    torch.testing.assert_close(bf16, reference, rtol=0.05, atol=0.05)


def _targets(blocks: Sequence[FSDPModule], direction: str) -> list[list[int]]:
    """Indices of the blocks each block prefetches in ``direction`` (FSDP2 keeps them on its state)."""
    index = {id(b._get_fsdp_state()): i for i, b in enumerate(blocks)}
    attribute = f"_states_to_{direction}_prefetch"
    return [[index[id(state)] for state in getattr(b._get_fsdp_state(), attribute)] for b in blocks]


@pytest.mark.parametrize(
    ("overlap", "forward", "backward"),
    [
        ({}, [[1], [2], []], [[], [0], [1]]),
        ({"prefetchLayers": 2}, [[1, 2], [2], []], [[], [0], [1, 0]]),
        ({"prefetch": False, "prefetchLayers": 2}, [[], [], []], [[], [], []]),
    ],
)
def test_fsdp_applies_prefetching(
    mesh: DeviceMesh, overlap: dict[str, Any], forward: list[list[int]], backward: list[list[int]]
) -> None:
    cfg = _config(overlap=overlap)
    model = parallelize(build_model(cfg.model, seed=0), mesh, cfg)
    blocks = [b for b in model.blocks if isinstance(b, FSDPModule)]
    assert len(blocks) == LAYERS
    assert _targets(blocks, "forward") == forward
    assert _targets(blocks, "backward") == backward


@pytest.mark.parametrize("reshard", [True, False])
def test_fsdp_applies_reshard_after_forward(mesh: DeviceMesh, reshard: bool) -> None:
    cfg = _config(parallelism={"reshardAfterForward": reshard})
    model = parallelize(build_model(cfg.model, seed=0), mesh, cfg)
    model(_tokens())
    # Resharded: the block's Linear holds its DTensor shard again; kept: the gathered plain tensor.
    assert isinstance(_qkv(model).weight, DTensor) is reshard


@pytest.mark.parametrize(
    ("precision", "compute", "stored"),
    [
        ({}, {F32}, {F32}),
        ({"dtype": "bf16"}, {F32, BF16}, {F32}),  # fp32 weights, bf16 matmul output under autocast
        ({"dtype": "bf16", "masterWeights": False}, {BF16}, {BF16}),
    ],
)
def test_ddp_applies_the_precision(
    mesh: DeviceMesh, precision: dict[str, Any], compute: set[torch.dtype], stored: set[torch.dtype]
) -> None:
    cfg = _config(precision=precision, parallelism={"strategy": "ddp"})
    model = parallelize(build_model(cfg.model, seed=0), mesh, cfg)
    assert fsdp_modules(model) == []
    seen = _observe(model)
    assert seen["compute"] == compute
    assert seen["stored"] == seen["grads"] == stored
    assert seen["logits"] == (F32 if precision.get("dtype", "fp32") == "fp32" else BF16)
