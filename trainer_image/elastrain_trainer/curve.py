"""A loss curve as text (matplotlib is not a dependency): one row per bucket of steps, resize markers."""

from __future__ import annotations

from collections.abc import Sequence

from elastrain_trainer.metrics import StepMetrics

#: Width of the bar of the largest loss.
BAR_WIDTH = 50


def render_loss_curve(metrics: Sequence[StepMetrics], *, rows: int = 20) -> str:
    committed = [m for m in metrics if m.committed]
    if not committed:
        return "(no committed steps)"
    bucket = max(1, -(-len(committed) // rows))
    top = max(m.loss for m in committed)
    bottom = min(m.loss for m in committed)
    span = max(top - bottom, 1e-12)
    lines = [f"loss  {bottom:.4f} .. {top:.4f}   (| = groups changed)"]
    previous_groups = committed[0].groups
    for start in range(0, len(committed), bucket):
        chunk = committed[start : start + bucket]
        loss = sum(m.loss for m in chunk) / len(chunk)
        marker = "|" if any(m.groups != previous_groups for m in chunk) else " "
        previous_groups = chunk[-1].groups
        bar = "#" * max(1, round(BAR_WIDTH * (loss - bottom) / span))
        lines.append(f"step {chunk[0].step:>6} {marker} groups {chunk[-1].groups} {loss:8.4f} {bar}")
    return "\n".join(lines)
