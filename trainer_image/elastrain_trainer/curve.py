"""Loss curves of a run: as text for the terminal, and as a PNG with resize markers (matplotlib, Agg).

Both read the committed steps only, one per step: when steps are redone after a restore, the
later attempt replaces the earlier one (:func:`committed_steps`). A resize marker sits at the
first committed step whose number of participating groups differs from the step before it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from elastrain_trainer.metrics import StepMetrics

#: Width of the bar of the largest loss.
BAR_WIDTH = 50

ResizeKind = Literal["shrink", "grow"]

#: Colour of each kind of resize marker.
RESIZE_COLOURS: dict[ResizeKind, str] = {"shrink": "tab:red", "grow": "tab:green"}

#: Driver events drawn on the groups panel: kind -> (matplotlib marker, colour). Other kinds are not drawn.
EVENT_STYLES: dict[str, tuple[str, str]] = {
    "pod_removed": ("v", "tab:red"),
    "group_lost": ("x", "tab:red"),
    "pod_added": ("^", "tab:green"),
    "group_healed": ("P", "tab:green"),
    "state_lost": ("X", "tab:purple"),
    "restored": ("D", "tab:purple"),
    "restart_from_scratch": ("X", "black"),
    "checkpoint": ("|", "tab:gray"),
}


@dataclass(frozen=True)
class ResizeMarker:
    """The number of participating groups changed from ``from_groups`` to ``to_groups`` at ``step``."""

    step: int
    """First committed step with ``to_groups`` groups."""
    from_groups: int
    to_groups: int

    @property
    def kind(self) -> ResizeKind:
        return "grow" if self.to_groups > self.from_groups else "shrink"


def committed_steps(metrics: Sequence[StepMetrics]) -> list[StepMetrics]:
    """The committed steps in step order; of a step committed twice (redone after a restore) the last one."""
    latest: dict[int, StepMetrics] = {}
    for m in metrics:
        if m.committed:
            latest[m.step] = m
    return [latest[step] for step in sorted(latest)]


def compute_resize_markers(metrics: Sequence[StepMetrics]) -> list[ResizeMarker]:
    """Where the number of participating groups changes between consecutive committed steps."""
    committed = committed_steps(metrics)
    return [
        ResizeMarker(step=after.step, from_groups=before.groups, to_groups=after.groups)
        for before, after in pairwise(committed)
        if after.groups != before.groups
    ]


def render_loss_curve(metrics: Sequence[StepMetrics], *, rows: int = 20) -> str:
    """The loss as about ``rows`` rows of bars, averaged over buckets of steps; ``|`` where groups changed."""
    committed = committed_steps(metrics)
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


def _event_steps(events: Sequence[Mapping[str, Any]]) -> dict[str, list[int]]:
    """Distinct steps of each drawn event kind; events without an integer step are skipped."""
    steps: dict[str, set[int]] = {}
    for event in events:
        kind, step = event.get("kind"), event.get("step")
        if kind in EVENT_STYLES and isinstance(step, int) and not isinstance(step, bool):
            steps.setdefault(str(kind), set()).add(step)
    return {kind: sorted(values) for kind, values in steps.items()}


def write_loss_curve_png(
    metrics: Sequence[StepMetrics],
    events: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    title: str = "",
) -> list[ResizeMarker]:
    """Plot loss (and validation loss) and participating groups per step to a PNG at ``path``.

    Dashed vertical lines mark resizes (shrink red, grow green), between the last step with the
    old number of groups and the first with the new one; driver events (``{"kind", "step", ...}``,
    the step being the number of committed steps when they happened) are drawn on the groups
    panel. Returns the resize markers drawn. Parent directories are created.
    """
    committed = committed_steps(metrics)
    markers = compute_resize_markers(committed)
    # A bare Figure on an Agg canvas: no pyplot, so no global state and no display needed.
    figure = Figure(figsize=(10, 6.5), layout="constrained")
    FigureCanvasAgg(figure)
    loss_ax, groups_ax = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    figure.suptitle(title or f"loss over {len(committed)} committed steps, {len(markers)} resizes")
    _plot_loss(loss_ax, committed)
    _plot_groups(groups_ax, committed)
    _draw_resizes(loss_ax, groups_ax, markers)
    _draw_events(groups_ax, events)
    for ax in (loss_ax, groups_ax):
        if ax.get_legend_handles_labels()[0]:
            # Outside on the right: a legend inside would hide the curve wherever it is.
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, format="png", dpi=100)
    return markers


def _plot_loss(ax: Axes, committed: Sequence[StepMetrics]) -> None:
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    if not committed:
        ax.text(0.5, 0.5, "no committed steps", ha="center", va="center", transform=ax.transAxes)
        return
    ax.plot([m.step for m in committed], [m.loss for m in committed], color="tab:blue", label="training loss")
    evaluated = [(m.step, m.val_loss) for m in committed if m.val_loss is not None]
    if evaluated:
        steps, losses = zip(*evaluated, strict=True)
        ax.plot(steps, losses, "o", color="tab:orange", markersize=5, label="validation loss")


def _plot_groups(ax: Axes, committed: Sequence[StepMetrics]) -> None:
    ax.set_ylabel("groups")
    ax.set_xlabel("step")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if committed:
        groups = [m.groups for m in committed]
        # Changes half-way between steps, where the resize lines are.
        ax.step([m.step for m in committed], groups, where="mid", color="tab:blue", label="participating groups")
        ax.set_ylim(0, max(groups) + 1)


def _draw_resizes(loss_ax: Axes, groups_ax: Axes, markers: Sequence[ResizeMarker]) -> None:
    """A dashed line per resize on both panels, labelled ``from→to`` above the loss panel."""
    labelled: set[ResizeKind] = set()
    for marker in markers:
        colour, x = RESIZE_COLOURS[marker.kind], marker.step - 0.5
        label = None if marker.kind in labelled else f"groups {marker.kind}"
        labelled.add(marker.kind)
        loss_ax.axvline(x, color=colour, linestyle="--", linewidth=1.0, label=label)
        groups_ax.axvline(x, color=colour, linestyle="--", linewidth=1.0)
        loss_ax.text(
            x,
            1.0,
            f"{marker.from_groups}\u2192{marker.to_groups}",
            color=colour,
            fontsize="small",
            ha="center",
            va="bottom",
            transform=loss_ax.get_xaxis_transform(),
        )


def _draw_events(ax: Axes, events: Sequence[Mapping[str, Any]]) -> None:
    """Event symbols near the top of the groups panel, half a step after the step they happened at."""
    for kind, steps in _event_steps(events).items():
        symbol, colour = EVENT_STYLES[kind]
        ax.plot(
            [s + 0.5 for s in steps],
            [0.92] * len(steps),
            symbol,
            color=colour,
            linestyle="none",
            transform=ax.get_xaxis_transform(),
            label=kind,
        )
