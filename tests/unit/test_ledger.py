"""The shard ledger: hand-out, give-back, serialisation and the exactly-once audit."""

from __future__ import annotations

import json
import random

import pytest

from elastrain_trainer.ledger import Piece, ShardLedger, shard_bounds


def make(num_samples: int = 100, num_shards: int = 7, seed: int = 3) -> ShardLedger:
    return ShardLedger(num_samples=num_samples, num_shards=num_shards, seed=seed)


def samples(pieces: list[Piece]) -> list[tuple[int, int]]:
    return [(p.epoch, i) for p in pieces for i in range(p.start, p.stop)]


def test_shards_cover_the_data_once() -> None:
    covered = [i for s in range(7) for i in range(*shard_bounds(100, 7, s))]
    assert covered == list(range(100))


def test_assign_gives_exact_shares_and_pieces_stay_inside_shards() -> None:
    ledger = make()
    out = ledger.assign(0, {"a": 13, "b": 5})
    assert sum(p.size for p in out["a"]) == 13
    assert sum(p.size for p in out["b"]) == 5
    bounds = [shard_bounds(100, 7, s) for s in range(7)]
    for piece in out["a"] + out["b"]:
        assert any(lo <= piece.start < piece.stop <= hi for lo, hi in bounds)


def test_shard_order_is_seeded_and_differs_by_epoch() -> None:
    ledger = ShardLedger(num_samples=1000, num_shards=50, seed=1)
    assert ledger.shard_order(0) == ShardLedger(num_samples=1000, num_shards=50, seed=1).shard_order(0)
    assert ledger.shard_order(0) != ledger.shard_order(1)
    assert ShardLedger(num_samples=10, num_shards=5, seed=1, shuffle=False).shard_order(3) == [0, 1, 2, 3, 4]


def test_given_back_step_is_handed_out_again_first() -> None:
    ledger = make()
    first = ledger.assign(0, {"a": 10, "b": 10})
    assert ledger.give_back(0) == 20
    again = ledger.assign(1, {"c": 20})
    assert samples(again["c"]) == samples(first["a"]) + samples(first["b"])


def test_commit_with_groups_returns_the_others_pieces() -> None:
    ledger = make()
    out = ledger.assign(0, {"a": 10, "b": 10})
    assert ledger.commit(0, groups=["a"]) == 10
    assert samples(ledger.assign(1, {"a": 10})["a"]) == samples(out["b"])


def test_lost_group_pieces_come_back() -> None:
    ledger = make()
    out = ledger.assign(0, {"a": 4, "b": 6})
    assert ledger.give_back_group("b") == 6
    ledger.commit(0)
    assert ledger.trained(0) == 4
    assert samples(ledger.assign(1, {"a": 6})["a"]) == samples(out["b"])


def test_group_lost_during_a_committed_step_is_trained_by_it() -> None:
    """The step's all-reduce completed with the lost group's gradient: its pieces count, once."""
    ledger = make(num_samples=20, num_shards=2)
    out = ledger.assign(0, {"a": 4, "b": 6})
    assert ledger.give_back_group("b", during_step=0) == 0
    assert ledger.in_flight(0) == out
    assert ledger.commit(0) == 10
    assert ledger.trained(0) == 10
    rest = ledger.assign(1, {"a": 10})["a"]
    assert not set(samples(rest)) & set(samples(out["a"] + out["b"]))
    ledger.commit(1)
    assert ledger.audit(0).exact, ledger.audit(0)


def test_group_lost_during_an_uncommitted_step_goes_back_with_it() -> None:
    ledger = make()
    out = ledger.assign(0, {"a": 4, "b": 6})
    assert ledger.give_back_group("b", during_step=0) == 0
    assert ledger.give_back(0) == 10
    assert ledger.trained(0) == 0
    assert samples(ledger.assign(1, {"c": 10})["c"]) == samples(out["a"]) + samples(out["b"])


def test_group_lost_during_a_step_gives_back_its_pieces_of_other_steps() -> None:
    ledger = make()
    earlier = ledger.assign(0, {"a": 3, "b": 5})
    ledger.assign(1, {"a": 2, "b": 4})
    assert ledger.give_back_group("b", during_step=1) == 5
    assert "b" not in ledger.in_flight(0) and "b" in ledger.in_flight(1)
    assert ledger.pending()[0] == earlier["b"][0]


def test_lost_group_pieces_in_flight_are_saved_as_pending() -> None:
    """A checkpoint taken while a lost group's pieces wait for the step is unchanged: they are redone."""
    ledger = make()
    out = ledger.assign(0, {"a": 4, "b": 6})
    ledger.give_back_group("b", during_step=0)
    restored = ShardLedger.from_state_dict(json.loads(json.dumps(ledger.state_dict())))
    assert samples(restored.assign(0, {"x": 10})["x"]) == samples(out["a"]) + samples(out["b"])


def test_a_checkpoint_written_before_still_loads() -> None:
    """The state_dict format is fixed: a ledger state as checkpoints store it today must load."""
    state = {
        "num_samples": 10,
        "num_shards": 2,
        "seed": 3,
        "shuffle": False,
        "next_epoch": 1,
        "queue": [[0, 5, 10]],
        "done": {"0": [[0, 5]]},
        "duplicated": {},
    }
    ledger = ShardLedger.from_state_dict(state)
    assert ledger.state_dict() == state
    out = ledger.assign(0, {"a": 2, "b": 3})
    ledger.give_back_group("b", during_step=0)
    ledger.commit(0)
    assert samples(out["a"] + out["b"]) == [(0, i) for i in range(5, 10)]
    assert ledger.audit(0).exact, ledger.audit(0)


def test_audit_detects_a_duplicate_and_a_gap() -> None:
    ledger = make(num_samples=20, num_shards=2)
    ledger.assign(0, {"a": 20})
    ledger.commit(0)
    assert ledger.audit(0).exact
    ledger._record(Piece(0, 3, 5))  # a bug that trains samples twice must show up
    assert ledger.audit(0).duplicated == 2
    gap = make(num_samples=20, num_shards=2)
    gap.assign(0, {"a": 15})
    gap.commit(0)
    assert gap.audit(0).missing == 5
    assert not gap.audit(0).exact


def test_steps_cross_epoch_boundaries() -> None:
    ledger = make(num_samples=10, num_shards=3)
    out = ledger.assign(0, {"a": 8, "b": 8})
    ledger.commit(0)
    assert {p.epoch for p in out["a"]} == {0}
    assert {p.epoch for p in out["b"]} == {0, 1}
    assert ledger.audit(0).exact
    assert ledger.trained(1) == 6


def test_assign_twice_for_one_step_is_refused() -> None:
    ledger = make()
    ledger.assign(0, {"a": 1})
    with pytest.raises(ValueError, match="already has work in flight"):
        ledger.assign(0, {"a": 1})


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="num_shards=11, num_samples=10"):
        ShardLedger(num_samples=10, num_shards=11, seed=0)


def test_state_dict_is_json_and_folds_in_flight_work_back() -> None:
    ledger = make()
    ledger.assign(0, {"a": 30})
    ledger.commit(0)
    in_flight = ledger.assign(1, {"a": 7, "b": 9})
    state = json.loads(json.dumps(ledger.state_dict()))
    restored = ShardLedger.from_state_dict(state)
    assert restored.trained(0) == 30
    redo = restored.assign(1, {"x": 16})
    assert samples(redo["x"]) == samples(in_flight["a"]) + samples(in_flight["b"])


def test_load_state_dict_refuses_another_data_set() -> None:
    with pytest.raises(ValueError, match="num_samples=100"):
        make(num_samples=50).load_state_dict(make().state_dict())


@pytest.mark.parametrize("trial", range(25))
def test_random_failures_train_every_sample_exactly_once(trial: int) -> None:
    """Random groups, shares, lost groups, uncommitted steps and checkpoint restores (fixed seed)."""
    rng = random.Random(1000 + trial)
    num_samples = rng.randint(50, 400)
    ledger = ShardLedger(num_samples=num_samples, num_shards=rng.randint(1, 40), seed=trial)
    trained: dict[int, list[int]] = {}
    checkpoint: tuple[dict[str, object], dict[int, list[int]]] | None = None
    step = 0
    while ledger.audit(0).trained < num_samples or ledger.epochs_started < 2:
        groups = [f"g{i}" for i in range(rng.randint(1, 4))]
        out = ledger.assign(step, {g: rng.randint(0, 17) for g in groups})
        event = rng.random()
        if event < 0.15:
            ledger.give_back(step)  # the step did not commit
            continue
        if event < 0.3:
            lost = rng.choice(groups)  # a group died before the step resolved
            ledger.give_back_group(lost)
            out.pop(lost)
        elif event < 0.35 and checkpoint is not None:
            ledger.give_back(step)  # every group lost: restore the last durable checkpoint
            state, kept = checkpoint
            ledger = ShardLedger.from_state_dict(json.loads(json.dumps(state)))
            trained = {e: list(v) for e, v in kept.items()}
            continue
        ledger.commit(step)
        for pieces in out.values():
            for epoch, index in samples(pieces):
                trained.setdefault(epoch, []).append(index)
        if rng.random() < 0.1:
            checkpoint = (ledger.state_dict(), {e: list(v) for e, v in trained.items()})
        step += 1
    assert sorted(trained[0]) == list(range(num_samples))
    audit = ledger.audit(0)
    assert audit.exact, audit


@pytest.mark.parametrize("trial", range(25))
def test_random_losses_during_steps_settle_with_the_step(trial: int) -> None:
    """Groups lost in the quorum phase give back; groups lost while training settle with the step."""
    rng = random.Random(2000 + trial)
    num_samples = rng.randint(50, 400)
    ledger = ShardLedger(num_samples=num_samples, num_shards=rng.randint(1, 40), seed=trial)
    trained: list[tuple[int, int]] = []
    step = 0
    while ledger.audit(0).trained < num_samples or ledger.epochs_started < 2:
        groups = [f"g{i}" for i in range(rng.randint(1, 4))]
        out = ledger.assign(step, {g: rng.randint(0, 17) for g in groups})
        for group in groups:
            if rng.random() < 0.2:
                ledger.give_back_group(group, during_step=step)  # lost while training the step
        if rng.random() < 0.3:
            ledger.give_back(step)  # the all-reduce failed: nobody committed
            continue
        ledger.commit(step)
        trained.extend(sample for pieces in out.values() for sample in samples(pieces))
        step += 1
        if rng.random() < 0.2:
            assert ledger.give_back_group(rng.choice(groups)) == 0  # lost outside a step: nothing in flight
    assert sorted(i for epoch, i in trained if epoch == 0) == list(range(num_samples))
    assert ledger.audit(0).exact, ledger.audit(0)
