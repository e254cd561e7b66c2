"""Storage faults in words, the room policy, and the driver's record of failed saves (pure, no cluster)."""

from __future__ import annotations

import errno
import logging
import traceback
from pathlib import Path
from typing import Any

import pytest
from torch.distributed.checkpoint.api import CheckpointException

from elastrain_trainer.checkpoint.faults import (
    MIN_COMPLETE_KEPT,
    Room,
    SaveFailure,
    decide_room,
    describe_failure,
    describe_fault,
    free_bytes,
    human_bytes,
    root_cause,
)
from elastrain_trainer.driver.checkpoint_health import (
    CHECKPOINT_FAILED,
    CheckpointHealth,
    decide_checkpoint_give_up,
    first_failure,
    record_saves,
)
from elastrain_trainer.driver.story import StoryLog, describe_event, event_level
from elastrain_trainer.errors import SpecError
from elastrain_trainer.pod.summary import checkpoint_failures

pytestmark = pytest.mark.unit

AT = "file:///ckpt"
MB = 1_000_000


# -- the cause in words -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.ENOSPC, "no space left on device"),
        (errno.EDQUOT, "disk quota exceeded"),
        (errno.EROFS, "read-only file system"),
        (errno.EACCES, "permission denied"),
        (errno.EIO, "input/output error"),
        (errno.ENOTCONN, "transport endpoint is not connected"),  # not in the table: strerror's words
    ],
)
def test_an_os_error_is_worded_by_its_errno_and_place(code: int, words: str) -> None:
    assert describe_fault(OSError(code, "whatever"), location=AT) == f"{words} at {AT}"


def test_dcp_checkpoint_exception_is_worded_by_the_first_failed_ranks_own_error() -> None:
    full = OSError(errno.ENOSPC, "No space left on device")
    trace = traceback.StackSummary()
    wrapped = CheckpointException("write", {1: (RuntimeError("other"), trace), 0: (full, trace)})
    assert root_cause(wrapped) is full
    assert describe_fault(wrapped, location=AT) == f"no space left on device at {AT}"


def test_an_os_error_in_the_chain_of_causes_names_the_problem() -> None:
    try:
        try:
            raise OSError(errno.EROFS, "Read-only file system")
        except OSError as inner:
            raise RuntimeError("writer failed") from inner
    except RuntimeError as outer:
        assert describe_fault(outer, location=AT) == f"read-only file system at {AT}"


def test_an_error_without_errno_says_its_type_and_first_line() -> None:
    assert describe_fault(ValueError("bad\nmore"), location=AT) == f"ValueError: bad at {AT}"


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0 bytes"), (999, "999 bytes"), (1700, "1.7 kB"), (512_000, "512 kB"), (1_700_000, "1.7 MB")],
)
def test_human_bytes(count: int, text: str) -> None:
    assert human_bytes(count) == text


def test_free_bytes_of_a_directory_not_yet_made_is_its_file_systems(tmp_path: Path) -> None:
    free = free_bytes(tmp_path / "not" / "yet")
    assert free is not None and free == free_bytes(tmp_path)


def test_the_log_line_names_cause_detail_and_last_good_step() -> None:
    failure = SaveFailure(step=15, cause=f"no space left on device at {AT}", detail="0 bytes free")
    assert failure.describe(last_good=10) == (
        f"checkpoint of step 15 failed: no space left on device at {AT}, 0 bytes free; the last complete "
        "checkpoint is step 10; training goes on and the next scheduled save tries again"
    )
    kept = SaveFailure(step=15, cause="x", removed=False).describe(last_good=None)
    assert "none (a restart begins at step 0)" in kept and "partial files could not be removed" in kept


# -- room before writing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("free", "needed", "complete", "room"),
    [
        (None, 5 * MB, [(5, MB)], Room(fits=True)),  # the store cannot tell: the save finds out
        (2 * MB, 2 * MB, [(5, MB)], Room(fits=True)),
        # keep 3: the oldest may go, 2 remain complete
        (MB // 2, 2 * MB, [(5, 2 * MB), (10, 2 * MB), (15, 2 * MB)], Room(fits=True, delete=(5,))),
        # keep 2: deleting one would leave only 1 complete checkpoint
        (MB // 2, 2 * MB, [(10, 2 * MB), (15, 2 * MB)], Room(fits=False, detail="500 kB free, 2.0 MB needed")),
        # deleting the oldest two of four leaves two
        (0, 3 * MB, [(5, 2 * MB), (10, 2 * MB), (15, 2 * MB), (20, 2 * MB)], Room(fits=True, delete=(5, 10))),
        # even deleting all that may go is not enough: nothing is deleted
        (0, 9 * MB, [(5, MB), (10, MB), (15, MB)], Room(fits=False, detail="0 bytes free, 9.0 MB needed")),
    ],
)
def test_room_policy(free: int | None, needed: int, complete: list[tuple[int, int]], room: Room) -> None:
    decided = decide_room(free=free, needed=needed, complete=complete)
    assert decided == room
    assert len(complete) - len(decided.delete) >= min(len(complete), MIN_COMPLETE_KEPT)


# -- the driver's record ----------------------------------------------------------------------------


class Events:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def __call__(self, kind: str, **data: Any) -> None:
        self.items.append({"kind": kind, **data})


def _failure(step: int, cause: str = f"no space left on device at {AT}") -> SaveFailure:
    return SaveFailure(step=step, cause=cause, detail="0 bytes free")


def test_failures_are_counted_in_a_row_reported_and_cleared_by_a_save() -> None:
    health = CheckpointHealth(location=AT, last_good=10)
    events = Events()
    record_saves(health, group="group1", marked=None, failures=[_failure(15)], event=events)
    record_saves(health, group="group1", marked=None, failures=[_failure(20)], event=events)
    report = health.report()
    assert report is not None
    assert (report.step, report.cause, report.detail, report.consecutive_failures) == (
        20,
        f"no space left on device at {AT}",
        "0 bytes free",
        2,
    )
    assert [e["kind"] for e in events.items] == [CHECKPOINT_FAILED, CHECKPOINT_FAILED]
    assert events.items[1]["failures_in_a_row"] == 2 and events.items[1]["last_good"] == 10
    assert events.items[1]["message"].startswith("checkpoint of step 20 failed: no space left on device")
    record_saves(health, group="group1", marked=25, failures=[], event=events)
    assert health.report() is None and health.in_a_row == 0 and health.last_good == 25
    assert events.items[-1] == {"kind": "checkpoint", "group": "group1", "checkpoint_step": 25}


def test_a_failure_then_a_save_in_one_report_ends_clear() -> None:
    health = CheckpointHealth(location=AT, last_good=10)
    record_saves(health, group="g", marked=20, failures=[_failure(15)], event=Events())
    assert health.report() is None and health.last_good == 20


def test_rank_zeros_failure_is_the_groups() -> None:
    own, other = _failure(15), SaveFailure(step=15, cause="another rank of the group failed to write at x")
    assert first_failure([[own], [other]]) == [own]
    assert first_failure([[], [other]]) == [other]
    assert first_failure([[], []]) == []


def test_by_default_failing_saves_never_stop_the_driver() -> None:
    health = CheckpointHealth(location=AT, last_good=10)
    for step in range(15, 500, 5):
        health.failed(_failure(step))
    assert decide_checkpoint_give_up(health) is None


def test_after_max_failures_in_a_row_the_driver_stops_naming_the_cause() -> None:
    health = CheckpointHealth(location=AT, max_failures=3, last_good=10)
    health.failed(_failure(15))
    health.failed(_failure(20))
    assert decide_checkpoint_give_up(health) is None
    health.saved(25)
    health.failed(_failure(30))
    health.failed(_failure(35))
    assert decide_checkpoint_give_up(health) is None  # the save at 25 reset the count
    health.failed(_failure(40))
    error = decide_checkpoint_give_up(health)
    assert isinstance(error, SpecError)
    assert (error.field, error.value) == ("spec.checkpoint", AT)
    assert str(error).startswith(
        f"spec.checkpoint: 3 checkpoint saves in a row failed, the last at step 40: no space left on device at {AT} "
        "(0 bytes free); the last complete checkpoint is step 25"
    )
    assert "maxConsecutiveFailures" in error.fix


def test_the_story_logs_a_failed_save_as_a_warning_in_words(caplog: pytest.LogCaptureFixture) -> None:
    health = CheckpointHealth(location=AT, last_good=10)
    events = Events()
    record_saves(health, group="group1", marked=None, failures=[_failure(15)], event=events)
    [event] = events.items
    assert event_level(CHECKPOINT_FAILED) == logging.WARNING
    assert describe_event(CHECKPOINT_FAILED, event) == event["message"]
    with caplog.at_level(logging.INFO, logger="elastrain.driver"):
        StoryLog().record(CHECKPOINT_FAILED, event, now=0.0)
    [line] = [r for r in caplog.records if r.name == "elastrain.driver"]
    assert line.levelno == logging.WARNING
    assert line.getMessage() == (
        f"checkpoint of step 15 failed: no space left on device at {AT}, 0 bytes free; the last complete "
        "checkpoint is step 10; training goes on and the next scheduled save tries again"
    )


def test_the_run_summary_lists_every_failed_save() -> None:
    health = CheckpointHealth(location=AT, last_good=10)
    events = Events()
    record_saves(health, group="g", marked=None, failures=[_failure(15)], event=events)
    record_saves(health, group="g", marked=20, failures=[], event=events)
    assert checkpoint_failures(events.items) == [
        {
            "step": 15,
            "cause": f"no space left on device at {AT}",
            "detail": "0 bytes free",
            "removed": True,
            "lastGood": 10,
        }
    ]


def test_a_short_write_without_errno_on_a_full_volume_is_called_a_full_volume() -> None:
    """torch's stream writer (DCP's non-tensor items) reports a full tmpfs as a RuntimeError, not an OSError."""
    short = RuntimeError("[enforce fail at inline_container.cc:671] . unexpected pos 704 vs 598")
    cause, detail = describe_failure(short, location=AT, free=0)
    assert cause == f"no space left on device at {AT}"
    assert (
        detail == "0 bytes free; the write failed with RuntimeError: [enforce fail at inline_container.cc:671] . "
        "unexpected pos 704 vs 598"
    )
    # The short write is one whatever room is measured after it (the save's partial files may be gone by then).
    assert describe_failure(short, location=AT, free=5 * MB)[0] == f"no space left on device at {AT}"
    assert describe_failure(short, location=AT, free=None) == (
        f"no space left on device at {AT}",
        "the write failed with RuntimeError: [enforce fail at inline_container.cc:671] . unexpected pos 704 vs 598",
    )
    # Another error with room left, or not knowing, is said as it is; on a full volume it is a full volume.
    other = RuntimeError("[enforce fail at inline_container.cc:600] . file not found")
    assert describe_failure(other, location=AT, free=5 * MB)[0].startswith("RuntimeError: [enforce fail")
    assert describe_failure(other, location=AT, free=None) == (describe_fault(other, location=AT), "")
    assert describe_failure(other, location=AT, free=0)[0] == f"no space left on device at {AT}"
    # An errno says it all, whatever the room.
    assert describe_failure(OSError(errno.EROFS, "x"), location=AT, free=5 * MB) == (
        f"read-only file system at {AT}",
        "5.0 MB free",
    )
