"""Mixed precision on FSDP2 (2 gloo ranks): bf16 compute on fp32 masters, fp16 with a sharded
gradient scaler, and global-norm clipping of gradient shards against one process.

One spawned run does all cases and returns what it saw; the assertions run here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import fully_shard

from elastrain_trainer.config.precision import LossScalingConfig, PrecisionConfig
from elastrain_trainer.precision import (
    build_grad_scaler,
    build_mixed_precision_policy,
    clip_grad_norm,
    sharded_param_dtype,
)

WORLD = 2
BATCH = 8
STEPS = 16
MAX_NORM = 0.05


def _model() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    """The same batch every step, so the loss falls steadily and runs are comparable step by step."""
    generator = torch.Generator().manual_seed(2000)
    return torch.randn(BATCH, 6, generator=generator), torch.randn(BATCH, 3, generator=generator)


def _shard(model: torch.nn.Sequential, mesh: DeviceMesh, cfg: PrecisionConfig) -> torch.nn.Sequential:
    model.to(sharded_param_dtype(cfg))
    policy = build_mixed_precision_policy(cfg)
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def _train(cfg: PrecisionConfig, mesh: DeviceMesh, shard: slice) -> dict[str, Any]:
    """Train STEPS steps with SGD; record dtypes seen in forward, losses, scales and parameters."""
    model = _shard(_model(), mesh, cfg)
    seen: set[torch.dtype] = set()
    # Registered after fully_shard, so it runs after FSDP has all-gathered (and cast) the weight.
    model[0].register_forward_pre_hook(lambda module, args: seen.add(module.weight.dtype))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = build_grad_scaler(cfg)
    losses, scales, params = [], [], []
    for _ in range(STEPS):
        inputs, targets = _batch()
        out = model(inputs[shard])
        loss = torch.nn.functional.mse_loss(out.float(), targets[shard])
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scales.append(scaler.get_scale())
        optimizer.zero_grad()
        losses.append(loss.item())
        params.append(model[0].weight.full_tensor().detach().float().clone())
    return {
        "forward_dtypes": sorted(str(d) for d in seen),
        "stored_dtype": str(model[0].weight.dtype),
        "state_dtype": str(optimizer.param_groups[0]["params"][0].dtype),
        "losses": losses,
        "scales": scales,
        "params": params,
    }


CASES = {
    "fp32": PrecisionConfig(),
    "bf16": PrecisionConfig(dtype="bf16"),
    "bf16_no_master": PrecisionConfig(dtype="bf16", master_weights=False),
    # 2^24 overflows fp16 gradients on the first step: it must be skipped and the scale backed off.
    "fp16_dynamic": PrecisionConfig(dtype="fp16", loss_scaling=LossScalingConfig(init_scale=2.0**24)),
    "fp16_static": PrecisionConfig(dtype="fp16", loss_scaling=LossScalingConfig(mode="static", static_scale=256.0)),
}


def _worker(rank: int, out: str) -> None:
    torch.set_num_threads(1)
    # A file rendezvous in the run's own directory: no TCP port to reserve and lose to another socket.
    dist.init_process_group("gloo", init_method=f"file://{out}/rendezvous", rank=rank, world_size=WORLD)
    mesh = init_device_mesh("cpu", (WORLD,))
    shard = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
    results: dict[str, Any] = {name: _train(cfg, mesh, shard) for name, cfg in CASES.items()}

    model = _shard(_model(), mesh, PrecisionConfig())
    inputs, targets = _batch()
    torch.nn.functional.mse_loss(model(inputs[shard]), targets[shard]).backward()
    norm = clip_grad_norm(model.parameters(), MAX_NORM)
    results["clip"] = {
        "norm": norm,
        "grads": [p.grad.full_tensor() for p in model.parameters() if p.grad is not None],
    }
    if rank == 0:
        torch.save(results, Path(out) / "results.pt")
    # Leave together: a rank tearing gloo down while a peer still talks to it aborts the peer.
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("precision")
    mp.spawn(_worker, args=(str(out),), nprocs=WORLD)
    loaded: dict[str, Any] = torch.load(out / "results.pt")
    return loaded


def test_bf16_computes_in_bf16_on_fp32_master_weights(results: dict[str, Any]) -> None:
    fp32, bf16 = results["fp32"], results["bf16"]
    assert fp32["forward_dtypes"] == ["torch.float32"]
    assert bf16["forward_dtypes"] == ["torch.bfloat16"]
    assert bf16["stored_dtype"] == "torch.float32"
    # bf16 compute changes the numbers, but not the training: losses within 2% of fp32.
    assert bf16["losses"] != fp32["losses"]
    assert bf16["losses"] == pytest.approx(fp32["losses"], rel=2e-2)


def test_bf16_without_master_weights_stores_bf16(results: dict[str, Any]) -> None:
    assert results["bf16_no_master"]["stored_dtype"] == "torch.bfloat16"
    assert results["bf16_no_master"]["state_dtype"] == "torch.bfloat16"
    assert results["bf16_no_master"]["forward_dtypes"] == ["torch.bfloat16"]


def test_fp16_dynamic_scaler_skips_overflow_and_backs_off(results: dict[str, Any]) -> None:
    run = results["fp16_dynamic"]
    assert run["forward_dtypes"] == ["torch.float16"]
    assert run["stored_dtype"] == "torch.float32"
    initial = _model()[0].weight.detach()
    # The first step overflowed: parameters unchanged, scale halved.
    torch.testing.assert_close(run["params"][0], initial, rtol=0, atol=0)
    assert run["scales"][0] == 2.0**23
    # Every backoff is a skipped step (parameters unchanged), every other step trains.
    before = [initial, *run["params"][:-1]]
    skipped = [torch.equal(a, b) for a, b in zip(before, run["params"], strict=True)]
    backed_off = [s < p for s, p in zip(run["scales"], [2.0**24, *run["scales"][:-1]], strict=True)]
    assert skipped == backed_off
    assert 1 <= sum(skipped) < STEPS - 4, run["scales"]
    assert run["losses"][-1] < 0.9 * run["losses"][0]


def test_fp16_static_scale_never_changes(results: dict[str, Any]) -> None:
    assert results["fp16_static"]["scales"] == [256.0] * STEPS
    # No overflow at 256: every step trains, tracking fp32 within fp16's precision.
    assert results["fp16_static"]["losses"] != results["fp32"]["losses"]
    assert results["fp16_static"]["losses"] == pytest.approx(results["fp32"]["losses"], rel=1e-2)


def test_clipping_shards_equals_clipping_the_whole_model(results: dict[str, Any]) -> None:
    reference = _model()
    inputs, targets = _batch()
    torch.nn.functional.mse_loss(reference(inputs), targets).backward()
    norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), MAX_NORM)
    assert norm > MAX_NORM * 2, "the case must actually clip"
    torch.testing.assert_close(results["clip"]["norm"], norm, rtol=1e-5, atol=1e-6)
    for got, param in zip(results["clip"]["grads"], reference.parameters(), strict=True):
        torch.testing.assert_close(got, param.grad, rtol=1e-5, atol=1e-7)
