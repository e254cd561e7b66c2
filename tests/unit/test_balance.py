"""Load balance: throughput-proportional shares, exact gradient weights, a constant global batch."""

from __future__ import annotations

import random

import pytest

from elastrain_trainer.balance import compute_shares, compute_weights, plan_step, update_throughput


def test_equal_throughput_splits_evenly() -> None:
    assert compute_shares(64, {"a": 1.0, "b": 1.0}) == {"a": 32, "b": 32}


def test_slow_group_gets_a_smaller_share() -> None:
    shares = compute_shares(60, {"fast": 3.0, "slow": 1.0})
    assert shares == {"fast": 45, "slow": 15}


def test_unmeasured_group_counts_as_the_mean() -> None:
    assert compute_shares(30, {"a": 2.0, "b": 4.0, "new": None}) == {"a": 7, "b": 13, "new": 10}
    assert compute_shares(9, {"a": None, "b": None, "c": None}) == {"a": 3, "b": 3, "c": 3}


def test_min_share_is_respected() -> None:
    shares = compute_shares(10, {"fast": 1000.0, "slow": 1.0}, min_share=4)
    assert shares["slow"] >= 4
    assert sum(shares.values()) == 10


def test_too_small_a_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="global batch 3 is smaller than 2 groups x min share 2"):
        compute_shares(3, {"a": 1.0, "b": 1.0}, min_share=2)


@pytest.mark.parametrize("trial", range(50))
def test_shares_sum_to_the_global_batch_and_follow_throughput(trial: int) -> None:
    rng = random.Random(trial)
    rates: dict[str, float | None] = {f"g{i}": rng.uniform(0.1, 10.0) for i in range(rng.randint(1, 8))}
    batch = rng.randint(len(rates) * 2, 4096)
    shares = compute_shares(batch, rates, min_share=2)
    assert sum(shares.values()) == batch
    spare = batch - 2 * len(rates)
    total = sum(r for r in rates.values() if r is not None)
    for g, r in rates.items():
        assert r is not None
        assert abs((shares[g] - 2) - spare * r / total) < 1.0


@pytest.mark.parametrize("trial", range(20))
def test_weighted_group_means_average_to_the_global_mean(trial: int) -> None:
    rng = random.Random(trial)
    shares = compute_shares(rng.randint(8, 200), {f"g{i}": rng.uniform(0.5, 5) for i in range(rng.randint(2, 6))})
    weights = compute_weights(shares)
    values = {g: [rng.gauss(0, 1) for _ in range(n)] for g, n in shares.items()}
    group_means = {g: sum(v) / len(v) for g, v in values.items()}
    averaged = sum(weights[g] * group_means[g] for g in shares) / len(shares)
    everything = [x for v in values.values() for x in v]
    assert averaged == pytest.approx(sum(everything) / len(everything), rel=1e-12, abs=1e-12)


def test_plan_step_bundles_shares_and_weights() -> None:
    plan = plan_step(12, {"a": 1.0, "b": 2.0})
    assert plan.shares == {"a": 4, "b": 8}
    assert plan.weights == {"a": pytest.approx(2 / 3), "b": pytest.approx(4 / 3)}


def test_throughput_estimate_moves_toward_new_measurements() -> None:
    assert update_throughput(None, 10, 2.0) == 5.0
    assert update_throughput(5.0, 30, 2.0, alpha=0.5) == 10.0
