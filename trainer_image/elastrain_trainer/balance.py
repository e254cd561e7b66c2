"""Load balance: each replica group's share of the global batch follows its measured throughput.

Pure functions. The global batch stays ``global_batch`` whatever the number of groups; a group that
computes the mean loss over its ``n_g`` samples multiplies its gradient by ``weight = n_g * P / B``
(P groups, B global batch), so the plain average over the P groups that torchft computes equals
the gradient of the mean loss over all B samples, exactly what an equal split would give.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

#: Weight of the newest measurement in the running throughput estimate.
THROUGHPUT_EMA_ALPHA = 0.5


@dataclass(frozen=True)
class BalancePlan:
    """Samples per group for one step and the gradient weight of each group."""

    shares: dict[str, int]
    weights: dict[str, float]


def compute_shares(global_batch: int, throughput: Mapping[str, float | None], *, min_share: int = 1) -> dict[str, int]:
    """Split ``global_batch`` over groups in proportion to throughput (samples/s).

    Groups without a measurement yet (None) count as the mean of the measured ones (all equal if
    none is measured). Every group gets at least ``min_share`` (e.g. one sample per rank); the
    shares add up to ``global_batch`` exactly (largest-remainder rounding, ties by group name).
    """
    groups = sorted(throughput)
    if not groups:
        raise ValueError("cannot split the global batch over zero groups")
    if global_batch < min_share * len(groups):
        raise ValueError(
            f"global batch {global_batch} is smaller than {len(groups)} groups x min share {min_share}; "
            "raise globalBatchSize or run fewer groups"
        )
    known = [t for t in throughput.values() if t is not None and t > 0]
    default = sum(known) / len(known) if known else 1.0
    rates = {g: _rate(throughput[g], default) for g in groups}
    spare = global_batch - min_share * len(groups)
    total = sum(rates.values())
    exact = {g: spare * rates[g] / total for g in groups}
    shares = {g: math.floor(exact[g]) for g in groups}
    left = spare - sum(shares.values())
    for g in sorted(groups, key=lambda g: (-(exact[g] - shares[g]), g))[:left]:
        shares[g] += 1
    return {g: shares[g] + min_share for g in groups}


def _rate(measured: float | None, default: float) -> float:
    return measured if measured is not None and measured > 0 else default


def compute_weights(shares: Mapping[str, int]) -> dict[str, float]:
    """Gradient weight per group: ``n_g * P / B``, so the average of weighted group means is the global mean."""
    total = sum(shares.values())
    count = len(shares)
    return {g: n * count / total for g, n in shares.items()}


def plan_step(global_batch: int, throughput: Mapping[str, float | None], *, min_share: int = 1) -> BalancePlan:
    shares = compute_shares(global_batch, throughput, min_share=min_share)
    return BalancePlan(shares=shares, weights=compute_weights(shares))


def update_throughput(
    previous: float | None, samples: int, seconds: float, *, alpha: float = THROUGHPUT_EMA_ALPHA
) -> float:
    """Running estimate of a group's samples per second of compute."""
    measured = samples / max(seconds, 1e-9)
    return measured if previous is None else alpha * measured + (1 - alpha) * previous
