"""The head's log tells the story live: each driver event's line, its level, the rate limit, tracebacks once."""

from __future__ import annotations

import logging

import pytest

from elastrain_trainer.driver.story import LogRateLimit, StoryLog, describe_event, event_level


@pytest.mark.parametrize(
    ("kind", "data", "line"),
    [
        (
            "group_started",
            {"group": "group3", "node": "a" * 56, "resume_step": None},
            "group started: group3 on node aaaaaaaaaaaa",
        ),
        (
            "group_started",
            {"group": "group3", "node": "n1", "resume_step": 8},
            "group started: group3 on node n1, resuming from the checkpoint of step 8",
        ),
        ("group_ready", {"group": "group3", "setup_seconds": 2.04}, "group ready: group3 after 2.0 s of set-up"),
        (
            "group_healed",
            {"group": "group3", "heal_seconds": 0.25, "step": 7},
            "group healed: group3 from a live peer in 0.25 s at step 7",
        ),
        (
            "group_lost",
            {"group": "group2", "step": 4, "during_step": 4, "reason": "train failed: IndexError: index out of range"},
            "group lost: group2 during step 4: train failed: IndexError: index out of range",
        ),
        ("group_lost", {"group": "group2", "step": 4, "during_step": None, "reason": "node gone"}, None),
        (
            "group_hung",
            {"group": "group1", "step": 6, "waited_seconds": 10.04, "bound_seconds": 10.0},
            "group hung: group1 at step 6: no step result after 10.0 s (watchdog bound 10.0 s); fencing it",
        ),
        (
            "group_hung",
            {"group": "g1", "node": "n2", "step": 9, "phase": "quorum", "waited_seconds": 12.0, "bound_seconds": 10.0},
            "group hung: g1 on node n2 at step 9: no quorum answer after 12.0 s (watchdog bound 10.0 s); fencing it",
        ),
        (
            "train_timeout",
            {"step": 9, "waiting": ["group1"]},
            "step timeout at step 9: no result from ['group1']; losing them",
        ),
        ("checkpoint", {"group": "group1", "checkpoint_step": 10}, "checkpoint: step 10 saved by group1"),
        ("state_lost", {"step": 3, "quorum_step": 0}, "state lost: step 3, quorum_step 0"),
    ],
    ids=["started", "started-resuming", "ready", "healed", "lost-in-a-step", "lost-between-steps", "hung",
         "hung-between-steps", "timeout", "checkpoint", "unknown-kind-lists-its-data"],
)  # fmt: skip
def test_describe_event(kind: str, data: dict[str, object], line: str | None) -> None:
    described = describe_event(kind, data)
    if line is None:  # lost outside a step: the step it happened at
        assert described == "group lost: group2 at step 4: node gone"
    else:
        assert described == line


def test_levels_warn_on_losses_and_error_when_giving_up() -> None:
    assert event_level("group_ready") == logging.INFO
    assert event_level("group_lost") == logging.WARNING
    assert event_level("steps_given_up") == logging.ERROR


def test_the_rate_limit_drops_a_flood_and_says_how_many_on_the_next_line() -> None:
    limit = LogRateLimit(burst=2, window=10.0)
    assert [limit.admit("group_lost", t) for t in (0.0, 1.0, 2.0, 3.0)] == [0, 0, None, None]
    assert limit.admit("group_ready", 3.0) == 0, "each kind has its own budget"
    assert limit.admit("group_lost", 10.5) == 2, "the window moved on: the next line says 2 were dropped"
    assert limit.admit("group_lost", 11.5) == 0


def test_story_log_logs_each_event_and_each_distinct_traceback_once(caplog: pytest.LogCaptureFixture) -> None:
    story = StoryLog(limit=LogRateLimit(burst=1, window=60.0))
    with caplog.at_level(logging.INFO, logger="elastrain.driver"):
        story.record("group_lost", {"group": "g1", "reason": "x", "step": 1}, now=0.0)
        story.record("group_lost", {"group": "g2", "reason": "x", "step": 1}, now=1.0)
        story.record("group_lost", {"group": "g3", "reason": "x", "step": 1}, now=61.0)
        story.traceback("IndexError: boom", "Traceback ...\nIndexError: boom")
        story.traceback("IndexError: boom", "Traceback ...\nIndexError: boom")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "group lost: g1 at step 1: x"
    assert lines[1] == "group lost: g3 at step 1: x (1 more group lost line(s) not logged)"
    assert [line.startswith("traceback of IndexError: boom") for line in lines[2:]] == [True]
