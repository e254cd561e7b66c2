"""Phase 1 of a step, ``quorum``: form one complete quorum from the groups' answers.

Every ready group's leader is called once (``lead_quorum``); it has every rank of its group call
torchft's quorum, and the lighthouse forms the quorum across groups. A group
that just started heals here from a live peer. A group the quorum left out keeps its call pending
and is in the next one. The answers so far either make one complete quorum (every participant the
newest quorum counts has answered), or can never make one (a group died after joining it and no
call is pending), or may still: :func:`decide_quorum` says which.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from elastrain_trainer.driver.calls import EventSink, LoseGroup, collect, pending_setup, wait_for_any
from elastrain_trainer.driver.groups import GroupHandle
from elastrain_trainer.group import QuorumInfo

#: ``GroupHandle.info`` key: when the group's pending ``quorum`` call was made (monotonic seconds).
QUORUM_CALLED_AT = "quorum_called_at"


@dataclass(frozen=True)
class QuorumComplete:
    """Every participant of the newest quorum answered: these groups train the step."""

    members: dict[str, QuorumInfo]


@dataclass(frozen=True)
class QuorumAbandoned:
    """The newest quorum counts a group that will never answer: the survivors must ask again."""

    participants: int


def decide_quorum(infos: Mapping[str, QuorumInfo], *, waiting: bool) -> QuorumComplete | QuorumAbandoned | None:
    """What the answers so far (rank 0's view per group) make; None while they may still complete a quorum.

    ``waiting``: some group still has a quorum call pending and has not answered.
    """
    if not infos:
        return None
    newest = max(info.quorum_id for info in infos.values())
    members = {g: i for g, i in infos.items() if i.quorum_id == newest}
    if len(members) == next(iter(members.values())).participants:
        return QuorumComplete(members)
    if not waiting:
        # The quorum counts a group that died after joining it: it can never complete. The
        # survivors ask again; the lighthouse drops the dead group after its heartbeat timeout.
        return QuorumAbandoned(participants=max(i.participants for i in members.values()))
    return None


def decide_ahead(ahead: Mapping[str, QuorumInfo], ready: Collection[str]) -> dict[str, QuorumInfo]:
    """What of the quorum formed right after the last step (``ahead``) the next step may use.

    All of it when every ready group is in it; none when a ready group is not (it just finished
    set-up, or the quorum left it out): then every group asks again, so the newcomer joins this
    step's quorum as it would without pipelining, instead of a step or two later.
    """
    if any(group_id not in ahead for group_id in ready):
        return {}
    return dict(ahead)


def form_quorum(
    groups: dict[str, GroupHandle],
    *,
    timeout_seconds: float,
    poll_setup: Callable[[], None],
    lose_group: LoseGroup,
    event: EventSink,
    answered: Mapping[str, QuorumInfo] | None = None,
) -> dict[str, QuorumInfo]:
    """The groups of one complete quorum (rank 0's view), {} if none formed.

    ``groups`` is the driver's live mapping: a group lost meanwhile (by ``lose_group``) leaves it.
    ``answered``: the quorum the last step's members formed right after it (pipelined control);
    those groups are not asked again, and when nothing changed the quorum is complete at once.
    """
    deadline = time.monotonic() + timeout_seconds
    infos = {g: info for g, info in (answered or {}).items() if g in groups}
    while time.monotonic() < deadline:
        # A group that finishes set-up now joins this quorum: torchft will not form a new quorum
        # while half of the heartbeating groups have not asked for one.
        poll_setup()
        ready = [g for g in groups.values() if g.ready]
        for group in ready:
            if group.quorum_refs is None and group.group_id not in infos:
                group.ensure_following()
                group.quorum_refs = [group.leader.lead_quorum.remote()]
                group.info[QUORUM_CALLED_AT] = time.monotonic()  # the step watchdog's start between steps
        for group in ready:
            if group.group_id in infos or group.group_id not in groups or group.quorum_refs is None:
                continue
            answers = collect(group, group.quorum_refs, "quorum", lose_group=lose_group)
            if answers is None:
                continue
            group.quorum_refs = None
            infos[group.group_id] = answers[0][0]  # rank 0's view
        waiting = any(g.quorum_refs is not None and g.group_id not in infos for g in groups.values())
        decision = decide_quorum(infos, waiting=waiting)
        if isinstance(decision, QuorumComplete):
            return decision.members
        if isinstance(decision, QuorumAbandoned):
            event("quorum_abandoned", answered=sorted(infos), participants=decision.participants)
            return {}
        if not any(g.group_id in groups for g in ready):
            return {}
        asked = [r for g in groups.values() if g.group_id not in infos for r in g.quorum_refs or []]
        wait_for_any(
            groups.values(), [*asked, *pending_setup(groups.values())], timeout_seconds=deadline - time.monotonic()
        )
    event(
        "quorum_timeout",
        answered={g: (i.quorum_id, i.participants) for g, i in infos.items()},
        waiting=sorted(g.group_id for g in groups.values() if g.quorum_refs is not None),
    )
    return {}
