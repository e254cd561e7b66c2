"""Which group exports the trained model at the end of a run (a pure choice of the driver)."""

from __future__ import annotations

import pytest

from elastrain_trainer.driver.export import decide_export_group
from elastrain_trainer.driver.groups import GroupHandle


def group(group_id: str, *, ready: bool) -> GroupHandle:
    return GroupHandle(
        group_id=group_id, node_id=f"node-{group_id}", actors=[], setup_refs=[], started_at=0.0, ready=ready
    )


@pytest.mark.parametrize(
    ("groups", "step", "expected"),
    [
        ({"g2": True, "g1": True}, 10, "g1"),  # the first ready group by name
        ({"g1": False, "g2": True}, 10, "g2"),  # a group still setting up cannot gather
        ({"g1": False}, 10, None),  # nobody to export
        ({"g1": True}, 9, None),  # training stopped short: no export of an unfinished model
        ({}, 10, None),
    ],
)
def test_decide_export_group(groups: dict[str, bool], step: int, expected: str | None) -> None:
    handles = {g: group(g, ready=ready) for g, ready in groups.items()}
    assert decide_export_group(handles, step=step, total_steps=10) == expected


def test_local_train_takes_an_export_dir() -> None:
    from elastrain_trainer.cli import build_parser

    assert build_parser().parse_args(["train", "job.yaml", "--export-dir", "/tmp/out"]).export_dir == "/tmp/out"
    assert build_parser().parse_args(["train", "job.yaml"]).export_dir is None
