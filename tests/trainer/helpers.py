"""Shared pieces of the trainer tests: a tiny config, a single-process reference, shard reassembly."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp
from torch.multiprocessing.spawn import spawn
from torch.nn import functional as F  # noqa: N812

from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.data import build_samples
from elastrain_trainer.driver import Driver, DriverOptions
from elastrain_trainer.driver.lighthouse import LighthouseOptions
from elastrain_trainer.group.worker import FaultTimeouts, RankWorker
from elastrain_trainer.ledger import Piece, ShardLedger
from elastrain_trainer.models import build_model
from elastrain_trainer.optim import build_lr_scheduler, build_optimizer


def tiny_config(**overrides: Any) -> TrainerConfig:
    data: dict[str, Any] = {
        "model": {"dim": 32, "numHeads": 2, "numLayers": 2, "seqLen": 16, "vocabSize": 64},
        "data": {"syntheticTokens": 16 * 64, "numShards": 8},
        "steps": 6,
        "globalBatchSize": 8,
        "lrSchedule": {"warmupSteps": 2},
        "optimizer": {"lr": 0.003},
        "seed": 7,
    }
    data.update(overrides)
    return TrainerConfig.model_validate(data)


def fast_options(**overrides: Any) -> DriverOptions:
    values: dict[str, Any] = {
        "lighthouse": LighthouseOptions(heartbeat_timeout_ms=500, join_timeout_ms=500),
        "timeouts": FaultTimeouts(collective_seconds=10, quorum_seconds=60, connect_seconds=10),
        "step_timeout_seconds": 60,
    }
    values.update(overrides)
    return DriverOptions(**values)


def reference_run(
    cfg: TrainerConfig, steps: list[dict[str, list[Piece]]], held_out: range = range(0)
) -> tuple[list[float], dict[str, torch.Tensor], float]:
    """Train the same model in one process on the same samples per step; losses and final parameters."""
    torch.manual_seed(0)
    model = build_model(cfg.model, seed=cfg.seed)
    optimizer = build_optimizer(model.parameters(), cfg.optimizer)
    scheduler = build_lr_scheduler(optimizer, cfg.lr_schedule, total_steps=cfg.steps)
    samples = build_samples(cfg.data, cfg.model, seed=cfg.seed)
    losses = []
    for assignment in steps:
        inputs, targets = samples.pieces_batch(p for pieces in assignment.values() for p in pieces)
        loss = F.cross_entropy(model(inputs).flatten(0, 1), targets.flatten())
        loss.backward()
        if cfg.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    val_loss = float("nan")
    if len(held_out):
        with torch.no_grad():
            inputs, targets = samples.batch(held_out)
            val_loss = float(F.cross_entropy(model.eval()(inputs).flatten(0, 1), targets.flatten()))
    return losses, {name: p.detach().clone() for name, p in model.named_parameters()}, val_loss


def full_parameters(ranks: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Reassemble FSDP2 dim-0 shards of one group's ranks (in rank order)."""
    return {name: torch.cat([r["model"][name] for r in ranks], dim=0) for name in ranks[0]["model"]}


def assert_bit_identical(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    """Two groups' per-rank parameter and optimizer shards are equal bit for bit."""
    for rank_a, rank_b in zip(a, b, strict=True):
        for name, tensor in rank_a["model"].items():
            assert torch.equal(tensor, rank_b["model"][name]), f"parameter {name} differs"
        state_a, state_b = rank_a["optimizer"]["state"], rank_b["optimizer"]["state"]
        assert state_a.keys() == state_b.keys()
        for name, values in state_a.items():
            for key, value in values.items():
                other = state_b[name][key]
                same = torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other
                assert same, f"optimizer state {name}.{key} differs"


def count_samples(committed: list[dict[str, list[Piece]]]) -> dict[int, Counter[int]]:
    """How often each sample of each epoch was in a committed step."""
    counts: dict[int, Counter[int]] = {}
    for assignment in committed:
        for pieces in assignment.values():
            for piece in pieces:
                counts.setdefault(piece.epoch, Counter()).update(range(piece.start, piece.stop))
    return counts


#: The DCP data file of rank 0 in a checkpoint directory (what the damage tests break).
DATA_FILE = "__0_0.distcp"


def assert_finished_epochs_exact(committed: list[dict[str, list[Piece]]], ledger: ShardLedger) -> None:
    """Every sample of each finished epoch trained exactly once (the ledger's audit and a recount agree)."""
    counts = count_samples(committed)
    finished = [e for e in counts if ledger.audit(e).trained == ledger.num_samples]
    assert finished
    for epoch in finished:
        assert ledger.audit(epoch).exact
        assert sorted(counts[epoch].values()) == [1] * ledger.num_samples


def truncate_half(path: Path) -> None:
    """Cut a file to half its length, as a save interrupted mid-write would leave it."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def setup_spawned_rank(worker: RankWorker, *, ports: Any, slot: int, barrier: Any) -> None:
    """Set a spawned rank up as the driver does: rank 0 opens the group's store, the others get its port.

    ``ports`` is a shared ``multiprocessing`` int array, ``slot`` this group's entry in it, and
    ``barrier`` is passed by every process that calls this at the same point.
    """
    if worker.rank == 0:
        ports[slot] = worker.open_store()
    barrier.wait()
    worker.setup(store_port=int(ports[slot]))


def wait_for_replacement(driver: Driver, node: object, victim: object, timeout: float = 180.0) -> None:
    """From a step hook: keep the job from finishing before a group other than ``victim`` is ready on
    ``node`` (the restarted group; the machine is slow)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not any(
        g.ready and g.node_id == node and g.group_id != victim for g in driver.groups.values()
    ):
        driver.reconcile()
        driver._poll_setup()
        time.sleep(0.1)


def kill_every_group(driver: Driver) -> None:
    """Every rank of every group killed (from a step hook): the run can only go on from a checkpoint."""
    for group in driver.groups.values():
        group.kill()


def spawn_with_lighthouses(
    process: Callable[..., None], cases: Sequence[str], *, groups: int, processes: int, out: Path
) -> list[dict[str, Any]]:
    """Run ``process(index, lighthouses, ports, barrier, out)`` in ``processes`` spawned processes beside one
    torchft Lighthouse per case (``groups`` replica groups each); return what each process saved to
    ``out/process{index}.pt`` (case -> its report), in process order."""
    from torchft.coordination import LighthouseServer

    servers = {
        case: LighthouseServer(
            bind="[::]:0", min_replicas=groups, join_timeout_ms=1000, quorum_tick_ms=20, heartbeat_timeout_ms=2000
        )
        for case in cases
    }
    try:
        lighthouses = {case: f"http://127.0.0.1:{str(s.address()).rsplit(':', 1)[1]}" for case, s in servers.items()}
        context = mp.get_context("spawn")
        ports = context.Array("i", len(cases) * groups)  # each group's store port, opened by its rank 0
        barrier = context.Barrier(processes)
        spawn(process, args=(lighthouses, ports, barrier, str(out)), nprocs=processes)  # type: ignore[no-untyped-call]
    finally:
        for server in servers.values():
            server.shutdown()
    return [torch.load(out / f"process{i}.pt", weights_only=False) for i in range(processes)]
