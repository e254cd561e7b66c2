"""fp16 loss scaling in the group step: one replica group of 2 gloo ranks, a real torchft Manager.

Two spawned processes run the trainer's own :class:`RankWorker` (FSDP2 in fp16 on fp32 master
weights) and drive it like the driver does: a :class:`ShardLedger` hands out each step's samples,
an uncommitted step is given back, a committed one recorded. The initial scale 2^24 overflows
fp16 gradients on the first step. The assertions run here:

- forward computes in fp16, the loss falls, and no parameter becomes inf/nan;
- an overflow is not committed (torchft's step stays, parameters stay), the scale backs off by
  backoffFactor; every committed step changes the parameters, and the scale grows after
  growthInterval committed steps; both ranks agree on every decision;
- an overflowed step's samples are given back, retrained in the next step, and the epoch ends
  with every sample trained exactly once;
- the scaler state travels in the live state a healing group loads (into a fresh replica) and in
  a durable checkpoint (``grad_scaler.json``, listed in the manifest).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from tests.trainer.helpers import setup_spawned_rank, tiny_config
from torch import nn
from torch.multiprocessing.spawn import spawn

from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.group import FaultTimeouts, GroupAddress, RankWorker, StepPlan
from elastrain_trainer.group.checkpoints import GRAD_SCALER_FILE, load_scaler_state
from elastrain_trainer.group.state import LiveState
from elastrain_trainer.ledger import ShardLedger
from elastrain_trainer.models import build_model
from elastrain_trainer.optim import build_lr_scheduler, build_optimizer
from elastrain_trainer.parallel import parallelize
from elastrain_trainer.precision import build_grad_scaler

RANKS = 2
SAMPLES = 64
GROUP_BATCH = 8
COMMITS = SAMPLES // GROUP_BATCH  # one epoch
MAX_ATTEMPTS = 16
INIT_SCALE = 2.0**24
BACKOFF = 2.0**-8
GROWTH = 2.0
GROWTH_INTERVAL = 2
CHECKPOINT_ATTEMPT = 3
#: Epoch loss after one epoch relative to before it (measured: 0.89).
LOSS_DROP = 0.97


def _config() -> TrainerConfig:
    return tiny_config(
        steps=COMMITS,
        globalBatchSize=GROUP_BATCH,
        optimizer={"lr": 0.01},
        precision={
            "dtype": "fp16",
            "lossScaling": {
                "initScale": INIT_SCALE,
                "backoffFactor": BACKOFF,
                "growthFactor": GROWTH,
                "growthInterval": GROWTH_INTERVAL,
            },
        },
    )


def _model_state(worker: RankWorker) -> dict[str, torch.Tensor]:
    return {name: t.clone() for name, t in worker.state_fingerprint()["model"].items()}


def _fresh_replica_loads(worker: RankWorker, cfg: TrainerConfig) -> dict[str, Any]:
    """What a healing group does: a replica built from scratch loads this rank's live state."""
    model = parallelize(build_model(cfg.model, seed=cfg.seed + 1), worker.mesh, cfg)
    optimizer = build_optimizer(model.parameters(), cfg.optimizer)
    scheduler = build_lr_scheduler(optimizer, cfg.lr_schedule, total_steps=cfg.steps)
    scaler = build_grad_scaler(cfg.precision)
    assert scaler is not None
    before = scaler.state_dict()
    fresh = LiveState(model, optimizer, scheduler, scaler=scaler)
    fresh.load_live_state(worker.live.live_state())
    return {"before": before, "after": scaler.state_dict(), "model": fresh.live_state()["model"]}


def _process(rank: int, lighthouse: str, ports: Any, barrier: Any, out: str) -> None:
    torch.set_num_threads(1)
    cfg = _config()
    address = GroupAddress(
        group_id="group1", store_host="127.0.0.1", store_port=0, lighthouse=lighthouse, world_size=RANKS
    )
    worker = RankWorker(
        cfg.model_dump_json(),
        address,
        rank,
        checkpoint_dir=str(Path(out) / "checkpoints"),
        async_checkpoint=False,
        timeouts=FaultTimeouts(collective_seconds=30, quorum_seconds=60, connect_seconds=30),
    )
    setup_spawned_rank(worker, ports=ports, slot=0, barrier=barrier)
    assert worker.scaler is not None
    seen: set[str] = set()
    first_linear = next(m for m in worker.model.modules() if isinstance(m, nn.Linear))
    first_linear.register_forward_pre_hook(lambda module, args: seen.add(str(module.weight.dtype)))
    ledger = ShardLedger(num_samples=SAMPLES, num_shards=cfg.data.num_shards, seed=cfg.seed)
    initial = _model_state(worker)
    before = worker.evaluate(0, SAMPLES)
    attempts: list[dict[str, Any]] = []
    step = 0
    while step < COMMITS and len(attempts) < MAX_ATTEMPTS:
        info = worker.quorum()
        checkpoint = len(attempts) == CHECKPOINT_ATTEMPT
        scaler_before = worker.scaler.state_dict()
        ledger_state = ledger.state_dict() if checkpoint else None
        pieces = ledger.assign(step, {"group1": GROUP_BATCH})["group1"]
        plan = StepPlan(
            step=info.step,
            pieces=pieces,
            weight=1.0,
            participants=1,
            checkpoint=checkpoint,
            ledger_state=ledger_state,
        )
        result = worker.train(plan)
        if result.committed:
            ledger.commit(step)
            step += 1
        else:
            ledger.give_back(step)
        attempts.append(
            {
                "result": dataclasses.asdict(result),
                "pieces": [p.to_list() for p in pieces],
                "scaler_before": scaler_before,
                "scaler": worker.scaler.state_dict(),
                "model": _model_state(worker),
            }
        )
    report = {
        "forward_dtypes": sorted(seen),
        "initial": initial,
        "attempts": attempts,
        "before": before,
        "after": worker.evaluate(0, SAMPLES),
        "audit": dataclasses.asdict(ledger.audit(0)),
        "healed_replica": _fresh_replica_loads(worker, cfg),
    }
    worker.flush()
    torch.save(report, Path(out) / f"rank{rank}.pt")
    # Leave together: a rank tearing gloo down while its peer still talks to it aborts the peer.
    torch.distributed.barrier()
    worker.shutdown()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each rank's report, and the directory the checkpoint was written to."""
    from torchft.coordination import LighthouseServer

    out = tmp_path_factory.mktemp("fp16_scaling")
    server = LighthouseServer(
        bind="[::]:0", min_replicas=1, join_timeout_ms=100, quorum_tick_ms=20, heartbeat_timeout_ms=2000
    )
    try:
        lighthouse = f"http://127.0.0.1:{str(server.address()).rsplit(':', 1)[1]}"
        context = mp.get_context("spawn")
        ports, barrier = context.Array("i", 1), context.Barrier(RANKS)
        spawn(_process, args=(lighthouse, ports, barrier, str(out)), nprocs=RANKS)  # type: ignore[no-untyped-call]
    finally:
        server.shutdown()
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(RANKS)]
    return {"ranks": ranks, "checkpoints": out / "checkpoints"}


def _decisions(report: dict[str, Any]) -> list[tuple[bool, float, float]]:
    return [
        (a["result"]["committed"], a["result"]["extra"]["overflow"], a["scaler"]["scale"]) for a in report["attempts"]
    ]


def test_fp16_trains_and_stays_finite(run: dict[str, Any]) -> None:
    for report in run["ranks"]:
        assert report["forward_dtypes"] == ["torch.float16"]
        assert sum(a["result"]["committed"] for a in report["attempts"]) == COMMITS
        final = report["attempts"][-1]["model"]
        assert all(torch.isfinite(t).all() for t in final.values())
    loss = [
        sum(float(r[when][0]) for r in run["ranks"]) / sum(int(r[when][1]) for r in run["ranks"])
        for when in ("before", "after")
    ]
    assert loss[1] < LOSS_DROP * loss[0], loss


def test_overflow_is_not_committed_and_backs_off(run: dict[str, Any]) -> None:
    first, second = run["ranks"]
    assert _decisions(first) == _decisions(second)
    attempts = first["attempts"]
    # 2^24 overflows the first step: nothing changes but the scale.
    assert attempts[0]["result"]["extra"]["overflow"] == 1.0
    assert attempts[0]["result"]["committed"] is False
    assert attempts[0]["result"]["step"] == 0
    assert attempts[0]["scaler"]["scale"] == INIT_SCALE * BACKOFF
    previous = first["initial"]
    grew = 0
    for attempt in attempts:
        result, scale, prior = attempt["result"], attempt["scaler"]["scale"], attempt["scaler_before"]["scale"]
        unchanged = all(torch.equal(attempt["model"][n], t) for n, t in previous.items())
        assert result["committed"] == (not result["extra"]["overflow"])
        assert unchanged == (not result["committed"])
        if result["committed"]:
            assert scale in (prior, prior * GROWTH)
            grew += scale > prior
        else:
            assert scale == prior * BACKOFF
        assert result["extra"]["loss_scale"] == scale
        previous = attempt["model"]
    assert grew >= 1, "growthInterval committed steps must grow the scale"
    assert [a["result"]["step"] for a in attempts if a["result"]["committed"]] == list(range(1, COMMITS + 1))


def test_overflowed_samples_are_retrained(run: dict[str, Any]) -> None:
    attempts = run["ranks"][0]["attempts"]
    overflowed = [i for i, a in enumerate(attempts) if not a["result"]["committed"]]
    assert overflowed
    for i in overflowed:
        assert attempts[i + 1]["pieces"] == attempts[i]["pieces"]
    assert run["ranks"][0]["audit"] == {
        "epoch": 0,
        "num_samples": SAMPLES,
        "trained": SAMPLES,
        "missing": 0,
        "duplicated": 0,
    }


def test_a_healing_replica_receives_the_scaler_state(run: dict[str, Any]) -> None:
    for report in run["ranks"]:
        healed, final = report["healed_replica"], report["attempts"][-1]
        assert healed["before"]["scale"] == INIT_SCALE
        assert healed["after"] == final["scaler"]
        assert healed["after"]["scale"] != INIT_SCALE
        for name, tensor in final["model"].items():
            assert torch.equal(healed["model"][name], tensor)


def test_a_checkpoint_holds_the_scaler_state(run: dict[str, Any]) -> None:
    saved_at = run["ranks"][0]["attempts"][CHECKPOINT_ATTEMPT]
    directory = run["checkpoints"] / f"step-{saved_at['result']['step'] - int(saved_at['result']['committed']):09d}"
    assert json.loads((directory / GRAD_SCALER_FILE).read_text()) == saved_at["scaler_before"]
    assert GRAD_SCALER_FILE in json.loads((directory / "manifest.json").read_text())["files"]
    scaler = build_grad_scaler(_config().precision, process_group=None)
    assert scaler is not None
    assert load_scaler_state(directory, scaler)
    assert math.isclose(scaler.get_scale(), saved_at["scaler_before"]["scale"])
