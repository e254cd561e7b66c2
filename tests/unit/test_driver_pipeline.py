"""Pipelined control: the quorum the last step's members formed right after it, without a Ray call.

``form_quorum`` gets the members' answers from their step results (``answered``); when nothing
changed they make a complete quorum at once and no group is asked again. The groups here have no
actors: a call on one would fail the test.
"""

from __future__ import annotations

from typing import Any

import pytest

from elastrain_trainer.driver.groups import GroupHandle
from elastrain_trainer.driver.quorum import decide_ahead, form_quorum
from elastrain_trainer.group import QuorumInfo


def _group(group_id: str) -> GroupHandle:
    return GroupHandle(
        group_id=group_id, node_id=f"node-{group_id}", actors=[], setup_refs=[], started_at=0.0, ready=True
    )


def _info(group_id: str, *, quorum_id: int = 4, participants: int = 2, step: int = 7) -> QuorumInfo:
    return QuorumInfo(group_id, 0, quorum_id, participants, None, step, healed=False, heal_seconds=0.0)


def _never_lose(group_id: str, *, reason: str, error: BaseException | None = None) -> None:
    raise AssertionError(f"{group_id} lost: {reason}")


def _form(groups: dict[str, GroupHandle], answered: dict[str, QuorumInfo]) -> tuple[dict[str, QuorumInfo], list[Any]]:
    events: list[Any] = []
    members = form_quorum(
        groups,
        timeout_seconds=5.0,
        poll_setup=lambda: None,
        lose_group=_never_lose,
        event=lambda kind, **data: events.append((kind, data)),
        answered=answered,
    )
    return members, events


def test_the_quorum_formed_after_the_last_step_is_complete_without_asking_anyone() -> None:
    groups = {g: _group(g) for g in ("group1", "group2")}
    members, events = _form(groups, {g: _info(g) for g in groups})
    assert sorted(members) == ["group1", "group2"]
    assert events == []
    assert all(g.quorum_refs is None and not g.follow_refs for g in groups.values())  # no call was made


def test_a_member_lost_since_makes_the_quorum_abandoned_so_the_survivors_ask_again() -> None:
    groups = {"group1": _group("group1")}  # group2 formed the quorum, then was lost
    members, events = _form(groups, {g: _info(g) for g in ("group1", "group2")})
    assert members == {}
    assert events == [("quorum_abandoned", {"answered": ["group1"], "participants": 2})]


@pytest.mark.parametrize(
    ("ahead", "ready", "used"),
    [
        (["group1", "group2"], ["group1", "group2"], ["group1", "group2"]),  # nothing changed
        (["group1", "group2"], ["group1"], ["group1", "group2"]),  # group2 lost: form_quorum abandons it
        (["group1"], ["group1", "group3"], []),  # group3 just set up: everyone asks, it joins now
        ([], ["group1"], []),  # the last step formed none (the last step, or it failed)
    ],
)
def test_decide_ahead(ahead: list[str], ready: list[str], used: list[str]) -> None:
    assert sorted(decide_ahead({g: _info(g) for g in ahead}, ready)) == used
