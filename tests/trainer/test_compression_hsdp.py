"""Cross-pod gradient compression on 4 gloo ranks as 2 pods x 2 (1-D FSDP2 inside each pod).

One spawned run does everything and returns what it measured; the assertions run here:
- each codec's collective on fixed tensors: every rank of a cross-pod group ends bit-identical,
  the error is within the codec's bound, and the byte counters follow the wire model;
- training a small MLP with SGD with momentum: codec none (and a compressing codec before its
  startStep) is bit-exact with FSDP2's native HSDP over EXACT_STEPS steps; after STEPS steps the
  bf16 cast and the error-feedback codecs end with a loss at most 1% above the uncompressed run's,
  top-k without error feedback does not;
- the dynamic policy turns top-k's ratio, and reset() drops the residuals;
- overlap: the asynchronous bucketed reducer is bit-exact (codec none) and keeps top-k within 1%,
  refuses gradients that do not alias FSDP2's output, and prefetching reaches prefetchLayers ahead.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

from elastrain_trainer.compression import Codec, attach_codec, build_codec
from elastrain_trainer.config.compression import CompressionConfig, DynamicCompressionConfig
from elastrain_trainer.config.overlap import OverlapConfig
from elastrain_trainer.optim import compute_norms
from elastrain_trainer.overlap import CrossPodReducer, apply_prefetch, build_cross_pod_reducer

WORLD, PODS = 4, 2
STEPS = 150
EXACT_STEPS = 20  # bit-exactness needs no long run
BATCH = 32  # per rank
SAMPLES = 512
LOSS_TOLERANCE = 0.01  # a compressed run's final loss may exceed the uncompressed run's by at most 1%

COLLECTIVE_CASES: dict[str, CompressionConfig] = {
    "none": CompressionConfig(),
    "bf16": CompressionConfig(codec="bf16"),
    "fp16": CompressionConfig(codec="fp16"),
    "int8_block": CompressionConfig(codec="int8_block", block_size=64),
    "topk_all": CompressionConfig(codec="topk", topk_ratio=1.0),
    "topk": CompressionConfig(codec="topk", topk_ratio=0.25),
    "powersgd": CompressionConfig(codec="powersgd", powersgd_rank=2),
}

TRAINING_CASES: dict[str, CompressionConfig] = {
    "none": CompressionConfig(),
    "none_exact": CompressionConfig(),
    "int8_before_start": CompressionConfig(codec="int8_block", start_step=EXACT_STEPS),
    "bf16": CompressionConfig(codec="bf16"),
    "int8_block": CompressionConfig(codec="int8_block", block_size=64),
    "topk": CompressionConfig(codec="topk", topk_ratio=0.1),
    "topk_no_feedback": CompressionConfig(codec="topk", topk_ratio=0.1, error_feedback=False),
    "powersgd": CompressionConfig(codec="powersgd", powersgd_rank=2),
    "topk_dynamic": CompressionConfig(
        codec="topk",
        topk_ratio=0.1,
        dynamic=DynamicCompressionConfig(
            enabled=True, target_comm_fraction=0.01, adjust_interval_steps=30, min_topk_ratio=0.02
        ),
    ),
}
ERROR_FEEDBACK_CASES = ("int8_block", "topk", "powersgd")
SHORT_CASES = ("none_exact", "int8_before_start")
DYNAMIC_STEPS = 90  # three adjustments


def _tensor(rank: int) -> torch.Tensor:
    """A gradient-like matrix: a rank-2 part shared by all ranks plus per-rank noise."""
    shared = torch.Generator().manual_seed(99)
    low_rank = torch.randn(64, 2, generator=shared) @ torch.randn(2, 48, generator=shared)
    return low_rank + 0.3 * torch.randn(64, 48, generator=torch.Generator().manual_seed(rank))


def _model() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(16, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 8)
    )


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    """A noisy teacher-student regression: fixed inputs, targets from a random linear teacher."""
    generator = torch.Generator().manual_seed(7)
    inputs = torch.randn(SAMPLES, 16, generator=generator)
    teacher = torch.randn(8, 16, generator=generator) / 4
    targets = (inputs @ teacher.t()).tanh() + 0.05 * torch.randn(SAMPLES, 8, generator=generator)
    return inputs, targets


def _shard(
    model: torch.nn.Sequential, mesh: DeviceMesh, policy: MixedPrecisionPolicy | None = None
) -> torch.nn.Sequential:
    policy = policy or MixedPrecisionPolicy()
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def _train(
    model: torch.nn.Sequential,
    codec: Codec | None,
    rank: int,
    reducer: CrossPodReducer | None = None,
    steps: int = STEPS,
) -> dict[str, Any]:
    inputs, targets = _data()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(steps):
        start = time.perf_counter()
        index = torch.arange(step * BATCH * WORLD, (step + 1) * BATCH * WORLD) % SAMPLES
        mine = index[rank * BATCH : (rank + 1) * BATCH]
        torch.nn.functional.mse_loss(model(inputs[mine]), targets[mine]).backward()
        if reducer is not None:
            reducer.finish(step_seconds=time.perf_counter() - start)
        optimizer.step()
        optimizer.zero_grad()
        if codec is not None and reducer is None:
            codec.end_step(step_seconds=time.perf_counter() - start)
    with torch.no_grad():
        loss = torch.nn.functional.mse_loss(model(inputs), targets).item()
    return {"loss": loss, "params": [p.full_tensor().detach().clone() for p in model.parameters()]}


def _worker(rank: int, out: str) -> None:
    torch.set_num_threads(1)
    # A file rendezvous in the run's own directory: no TCP port to reserve and lose to another socket.
    dist.init_process_group("gloo", init_method=f"file://{out}/rendezvous", rank=rank, world_size=WORLD)
    mesh = init_device_mesh("cpu", (PODS, WORLD // PODS), mesh_dim_names=("pod", "shard"))
    cross_pod = mesh.get_group("pod")
    results: dict[str, Any] = {"collective": {}, "training": {}}

    for name, cfg in COLLECTIVE_CASES.items():
        codec = build_codec(cfg)
        tensor = _tensor(rank)
        codec.allreduce_mean(tensor, cross_pod, key="t")
        results["collective"][name] = {"result": tensor, "sent": codec.stats.bytes_sent, "ratio": codec.stats.ratio}

    # Norms of native-HSDP parameters (Replicate, Shard): reduced over the shard dimension only.
    hsdp = _shard(_model(), mesh)
    results["hsdp_norms"] = (
        torch.stack(compute_norms(list(hsdp.parameters()))),
        torch.stack([p.full_tensor().norm() for p in hsdp.parameters()]),
    )
    results["training"]["native_hsdp"] = _train(_shard(_model(), mesh), None, rank, steps=EXACT_STEPS)
    for name, cfg in TRAINING_CASES.items():
        model = _shard(_model(), mesh["shard"])
        codec = build_codec(cfg)
        attached = attach_codec(model.modules(), codec, cross_pod)
        steps = EXACT_STEPS if name in SHORT_CASES else DYNAMIC_STEPS if name == "topk_dynamic" else STEPS
        run = _train(model, codec, rank, steps=steps)
        run.update(attached=attached, ratio=codec.stats.ratio, history=codec.measurements.history)
        run["residuals_before_reset"] = codec.residual_count
        codec.reset()
        run["residuals_after_reset"] = codec.residual_count
        results["training"][name] = run
    results["overlap"] = _overlap_cases(mesh, cross_pod, rank)
    torch.save(results, Path(out) / f"rank{rank}.pt")
    # Leave together: a rank tearing gloo down while a peer still talks to it aborts the peer.
    dist.barrier()
    dist.destroy_process_group()


#: (codec, bucketSizeMB): a tiny bucket reduces each unit on its own, as the synchronous hooks do;
#: 25 MiB puts the whole model in one bucket.
ASYNC_CASES: dict[str, tuple[CompressionConfig, float, int]] = {
    "none_per_unit": (CompressionConfig(), 1e-6, EXACT_STEPS),
    "none_one_bucket": (CompressionConfig(), 25.0, EXACT_STEPS),
    "topk_one_bucket": (CompressionConfig(codec="topk", topk_ratio=0.1), 25.0, STEPS),
}


def _overlap_cases(mesh: DeviceMesh, cross_pod: dist.ProcessGroup, rank: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, (cfg, bucket_mb, steps) in ASYNC_CASES.items():
        model = _shard(_model(), mesh["shard"])
        reducer = build_cross_pod_reducer(build_codec(cfg), cross_pod, bucket_size_mb=bucket_mb, async_reduce=True)
        attached = reducer.attach(model.modules())
        run = _train(model, None, rank, reducer=reducer, steps=steps)
        reducer.close()
        run.update(attached=attached, comm=reducer.timings.comm_seconds, exposed=reducer.timings.exposed_seconds)
        results[name] = run

    # bf16 reduction makes FSDP2 cast (copy) the reduced shard: the background result cannot reach it.
    model = _shard(_model(), mesh["shard"], MixedPrecisionPolicy(reduce_dtype=torch.bfloat16))
    reducer = build_cross_pod_reducer(build_codec(CompressionConfig()), cross_pod, bucket_size_mb=25, async_reduce=True)
    reducer.attach(model.modules())
    try:
        _train(model, None, rank, reducer=reducer, steps=1)
        results["cast_error"] = ""
    except RuntimeError as error:
        results["cast_error"] = str(error)
    reducer.close()

    # Prefetching: at each block's forward, the next prefetchLayers blocks' all-gathers are already issued.
    model = _shard(_model(), mesh["shard"])
    blocks = [m for m in model if isinstance(m, FSDPModule)]
    apply_prefetch(blocks, OverlapConfig(prefetch=True, prefetch_layers=2))
    issued: list[list[bool]] = []

    def record(module: torch.nn.Module, args: object) -> None:
        # FSDP2 internals: an issued, not yet waited-for all-gather is held in _all_gather_result.
        issued.append([b._get_fsdp_state()._fsdp_param_group._all_gather_result is not None for b in blocks])

    for block in blocks:
        block.register_forward_pre_hook(record)  # type: ignore[attr-defined]
    reducer = build_cross_pod_reducer(
        build_codec(CompressionConfig()), cross_pod, bucket_size_mb=25, async_reduce=False
    )
    reducer.attach(model.modules())
    run = _train(model, None, rank, reducer=reducer, steps=EXACT_STEPS)
    run.update(issued=issued[:3], sync_comm=reducer.timings.comm_seconds, sync_exposed=reducer.timings.exposed_seconds)
    results["prefetch"] = run
    return results


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("compression")
    mp.spawn(_worker, args=(str(out),), nprocs=WORLD)
    return [torch.load(out / f"rank{rank}.pt") for rank in range(WORLD)]


# Cross-pod groups: rank r of pod 0 pairs with rank r of pod 1.
GROUPS = [(0, 2), (1, 3)]


@pytest.mark.parametrize("name", list(COLLECTIVE_CASES))
def test_collective_leaves_every_rank_of_a_group_with_the_same_mean(ranks: list[dict[str, Any]], name: str) -> None:
    # (lowest, highest) relative error: exact codecs 0, casts and int8 tiny, top-k 25% and rank 2 lossy.
    bounds = {
        "none": (0.0, 0.0),
        "bf16": (0.0, 1e-2),
        "fp16": (0.0, 1e-3),
        "int8_block": (0.0, 1e-2),
        "topk_all": (0.0, 1e-6),
        "topk": (0.1, 0.7),
        "powersgd": (0.02, 0.3),
    }
    for a, b in GROUPS:
        got_a, got_b = ranks[a]["collective"][name]["result"], ranks[b]["collective"][name]["result"]
        assert torch.equal(got_a, got_b), f"{name}: ranks {a} and {b} disagree"
        exact = (_tensor(a) + _tensor(b)) / 2
        error = float((got_a - exact).norm() / exact.norm())
        lowest, highest = bounds[name]
        assert lowest <= error <= highest, f"{name}: relative error {error}"


def test_collective_byte_counters_follow_the_wire_model(ranks: list[dict[str, Any]]) -> None:
    numel = 64 * 48
    exact = numel * 4  # ring all-reduce over 2 ranks: 2 (W-1)/W * bytes
    sent = {name: case["sent"] for name, case in ranks[0]["collective"].items()}
    assert sent["none"] == exact
    assert sent["bf16"] == sent["fp16"] == numel * 2
    assert sent["int8_block"] == numel + (numel // 64) * 4
    assert sent["topk"] == (numel // 4) * 8
    assert sent["powersgd"] == (64 + 48) * 2 * 4
    assert ranks[0]["collective"]["int8_block"]["ratio"] == pytest.approx((numel + numel // 16) / exact)


def test_codec_none_and_codecs_before_start_step_are_bit_exact_with_native_hsdp(
    ranks: list[dict[str, Any]],
) -> None:
    native = ranks[0]["training"]["native_hsdp"]["params"]
    for name in SHORT_CASES:
        run = ranks[0]["training"][name]
        assert run["attached"] == 3  # the three Linear layers; the root holds no parameters
        for got, want in zip(run["params"], native, strict=True):
            assert torch.equal(got, want), name


@pytest.mark.parametrize("name", ["bf16", *ERROR_FEEDBACK_CASES])
def test_compressed_training_reaches_the_uncompressed_loss(ranks: list[dict[str, Any]], name: str) -> None:
    reference = ranks[0]["training"]["none"]["loss"]
    run = ranks[0]["training"][name]
    assert run["ratio"] < 0.55, f"{name} sent {run['ratio']:.0%} of the uncompressed bytes"
    assert run["loss"] <= reference * (1 + LOSS_TOLERANCE), f"{name}: {run['loss']} vs {reference}"
    # Replicas stay in sync: every rank ends with the same parameters.
    for rank in ranks[1:]:
        for got, want in zip(rank["training"][name]["params"], run["params"], strict=True):
            assert torch.equal(got, want), name


def test_error_feedback_is_what_keeps_topk_on_track(ranks: list[dict[str, Any]]) -> None:
    reference = ranks[0]["training"]["none"]["loss"]
    without = ranks[0]["training"]["topk_no_feedback"]["loss"]
    assert without > reference * (1 + LOSS_TOLERANCE)


def test_dynamic_policy_compresses_harder_when_communication_dominates(ranks: list[dict[str, Any]]) -> None:
    # A 1% communication target is never met on CPU gloo: every adjustment compresses harder, down to the floor.
    history = ranks[0]["training"]["topk_dynamic"]["history"]
    assert [(step, decision) for step, decision, _ in history] == [(30, "harder"), (60, "harder"), (90, "harder")]
    assert [strength for _, _, strength in history] == ["topk=0.05", "topk=0.025", "topk=0.02"]


def test_reset_drops_every_residual(ranks: list[dict[str, Any]]) -> None:
    for name in ERROR_FEEDBACK_CASES:
        run = ranks[0]["training"][name]
        assert (run["residuals_before_reset"], run["residuals_after_reset"]) == (3, 0), name


@pytest.mark.parametrize("name", ["none_per_unit", "none_one_bucket"])
def test_async_bucketed_reduction_is_bit_exact_with_native_hsdp(ranks: list[dict[str, Any]], name: str) -> None:
    native = ranks[0]["training"]["native_hsdp"]["params"]
    run = ranks[0]["overlap"][name]
    assert run["attached"] == 3
    assert len(run["comm"]) == len(run["exposed"]) == EXACT_STEPS
    assert all(c > 0 for c in run["comm"])
    for got, want in zip(run["params"], native, strict=True):
        assert torch.equal(got, want), name


def test_async_bucketed_topk_reaches_the_uncompressed_loss(ranks: list[dict[str, Any]]) -> None:
    reference = ranks[0]["training"]["none"]["loss"]
    # One bucket means one top-k over the whole model rather than per unit: a different selection.
    assert ranks[0]["overlap"]["topk_one_bucket"]["loss"] <= reference * (1 + LOSS_TOLERANCE)
    for rank in ranks[1:]:
        for got, want in zip(
            rank["overlap"]["topk_one_bucket"]["params"], ranks[0]["overlap"]["topk_one_bucket"]["params"], strict=True
        ):
            assert torch.equal(got, want)


def test_async_reduction_refuses_gradients_that_are_copies(ranks: list[dict[str, Any]]) -> None:
    message = ranks[0]["overlap"]["cast_error"]
    assert "is a copy of FSDP2's reduce-scatter output" in message
    assert "set overlap.asyncReduce: false" in message


def test_prefetch_issues_all_gathers_prefetch_layers_ahead(ranks: list[dict[str, Any]]) -> None:
    run = ranks[0]["overlap"]["prefetch"]
    # Forward of block 0: blocks 1 and 2 already gathering; block 1: block 2; block 2: nothing left.
    assert run["issued"] == [[False, True, True], [False, False, True], [False, False, False]]
    native = ranks[0]["training"]["native_hsdp"]["params"]
    for got, want in zip(run["params"], native, strict=True):
        assert torch.equal(got, want)
    # Synchronous reduction: every second of communication is exposed.
    assert run["sync_exposed"] == run["sync_comm"]


def test_norms_of_native_hsdp_parameters_are_full_norms(ranks: list[dict[str, Any]]) -> None:
    for rank in ranks:
        sharded, full = rank["hsdp_norms"]
        torch.testing.assert_close(sharded, full, rtol=1e-6, atol=1e-7)
