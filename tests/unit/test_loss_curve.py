"""The loss curve: resize markers computed from step metrics, the PNG writer, metrics rebuilt from JSON."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread

from elastrain_trainer.cli import build_parser
from elastrain_trainer.curve import (
    RESIZE_COLOURS,
    ResizeMarker,
    compute_resize_markers,
    write_loss_curve_png,
)
from elastrain_trainer.metrics import StepMetrics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _metric(step: int, groups: int, *, committed: bool = True, loss: float | None = None) -> StepMetrics:
    return StepMetrics(
        step=step,
        committed=committed,
        loss=4.0 - 0.1 * step if loss is None else loss,
        tokens_per_second=1000.0,
        step_seconds=0.1,
        compute_seconds=0.06,
        comm_seconds=0.04,
        groups=groups,
        world_size=2 * groups,
        wall_time=0.1 * step,
        val_loss=3.9 - 0.1 * step if step % 4 == 0 else None,
    )


def _scripted() -> list[StepMetrics]:
    """Steps 1-4 on 2 groups, a failed attempt, 5-8 on 1 group (shrink at 5), 9-12 on 3 (grow at 9)."""
    metrics = [_metric(s, 2) for s in range(1, 5)]
    metrics.append(_metric(5, 2, committed=False))  # the attempt that lost a group commits nothing
    metrics += [_metric(s, 1) for s in range(5, 9)]
    metrics += [_metric(s, 3) for s in range(9, 13)]
    return metrics


EXPECTED = [ResizeMarker(step=5, from_groups=2, to_groups=1), ResizeMarker(step=9, from_groups=1, to_groups=3)]


def test_markers_of_a_shrink_then_a_grow() -> None:
    markers = compute_resize_markers(_scripted())
    assert markers == EXPECTED
    assert [m.kind for m in markers] == ["shrink", "grow"]


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        pytest.param([], [], id="no-steps"),
        pytest.param([_metric(s, 2) for s in range(1, 6)], [], id="constant-groups"),
        # An uncommitted attempt with fewer groups is not a resize of the curve.
        pytest.param([_metric(1, 2), _metric(2, 1, committed=False), _metric(2, 2)], [], id="failed-attempt"),
        # Steps 3-4 redone on 1 group after a restore replace the attempts on 2 groups.
        pytest.param(
            [_metric(1, 2), _metric(2, 2), _metric(3, 2), _metric(4, 2), _metric(3, 1), _metric(4, 1)],
            [ResizeMarker(step=3, from_groups=2, to_groups=1)],
            id="redone-after-restore",
        ),
    ],
)
def test_markers_follow_the_committed_steps(metrics: list[StepMetrics], expected: list[ResizeMarker]) -> None:
    assert compute_resize_markers(metrics) == expected


def _pixels_near(image: np.ndarray, colour: str) -> int:
    """How many pixels of ``image`` (RGBA floats) are within a small distance of a matplotlib colour."""
    from matplotlib.colors import to_rgb

    distance = np.abs(image[..., :3] - np.array(to_rgb(colour))).max(axis=-1)
    return int((distance < 0.06).sum())


def _png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])  # the IHDR chunk follows the signature
    return int(width), int(height)


def test_png_has_the_markers_and_returns_them(tmp_path: Path) -> None:
    path = tmp_path / "plots" / "run-loss.png"
    markers = write_loss_curve_png(_scripted(), [], path, title="scripted run")
    assert markers == EXPECTED
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert _png_size(path) == (1000, 650)
    image = imread(path)
    # The dashed shrink and grow lines are drawn (red and green appear nowhere else without events).
    assert _pixels_near(image, RESIZE_COLOURS["shrink"]) > 100
    assert _pixels_near(image, RESIZE_COLOURS["grow"]) > 100


def test_png_without_resizes_has_no_marker_colours(tmp_path: Path) -> None:
    path = tmp_path / "flat.png"
    assert write_loss_curve_png([_metric(s, 2) for s in range(1, 9)], [], path) == []
    image = imread(path)
    assert _pixels_near(image, RESIZE_COLOURS["shrink"]) == 0
    assert _pixels_near(image, RESIZE_COLOURS["grow"]) == 0
    assert _pixels_near(image, "tab:blue") > 100  # the loss and groups lines
    assert _pixels_near(image, "tab:purple") == 0


def test_png_draws_driver_events(tmp_path: Path) -> None:
    path = tmp_path / "events.png"
    events = [{"kind": "restored", "step": 4, "time": 1.0, "from_step": 6, "checkpoint_step": 4}]
    write_loss_curve_png([_metric(s, 2) for s in range(1, 9)], events, path)
    assert _pixels_near(imread(path), "tab:purple") > 10


def test_png_of_a_run_without_committed_steps(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    assert write_loss_curve_png([_metric(1, 2, committed=False)], [], path) == []
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_png_from_metrics_and_events_read_back_from_json(tmp_path: Path) -> None:
    """What the demo does: write --metrics-out JSON, read it back, plot it."""
    events: list[dict[str, Any]] = [
        {"kind": "group_lost", "step": 4, "time": 1.5, "group": "group2", "reason": "node gone"},
        {"kind": "checkpoint", "step": 6, "time": 2.0, "group": "group1", "checkpoint_step": 6},
        {"kind": "quorum_timeout", "step": 7, "time": 2.5, "answered": {"group1": [3, 1]}},
        {"kind": "pod_added", "step": "not a step", "time": 3.0},
    ]
    blob = json.dumps({"metrics": [m.to_dict() for m in _scripted()], "events": events}, default=str)
    loaded = json.loads(blob)
    metrics = [StepMetrics.from_dict(m) for m in loaded["metrics"]]
    assert metrics == _scripted()
    markers = write_loss_curve_png(metrics, loaded["events"], tmp_path / "demo.png")
    assert markers == EXPECTED


def test_step_metrics_round_trip_every_field() -> None:
    metrics = StepMetrics(
        step=12,
        committed=False,
        loss=2.5,
        tokens_per_second=12345.5,
        step_seconds=0.25,
        compute_seconds=0.125,
        comm_seconds=0.0625,
        groups=3,
        world_size=6,
        wall_time=99.5,
        val_loss=2.75,
        perplexity=15.6,
    )
    assert StepMetrics.from_dict(json.loads(json.dumps(metrics.to_dict()))) == metrics
    # Keys of a newer writer are ignored; absent optional fields are None.
    minimal = {k: v for k, v in metrics.to_dict().items() if k not in {"val_loss", "perplexity"}}
    rebuilt = StepMetrics.from_dict({**minimal, "future_field": 1})
    assert (rebuilt.val_loss, rebuilt.perplexity, rebuilt.loss) == (None, None, 2.5)


def test_step_metrics_without_a_required_field_are_refused() -> None:
    data = _metric(3, 2).to_dict()
    del data["groups"]
    with pytest.raises(ValueError, match=r"lack \['groups'\]; pass a dict written by StepMetrics.to_dict"):
        StepMetrics.from_dict(data)


def test_train_takes_a_curve_path() -> None:
    assert build_parser().parse_args(["train", "job.yaml"]).curve_out is None
    assert build_parser().parse_args(["train", "job.yaml", "--curve-out", "out/c.png"]).curve_out == "out/c.png"
