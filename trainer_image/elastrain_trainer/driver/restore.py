"""Where training resumes when the trained state is gone: no live group, or only fresh ones.

When no group is left, new groups resume from the newest readable durable checkpoint (never
silently from step 0 if one exists): every newer checkpoint passed over (truncated, corrupted,
unreadable) is an event with its reason, and so is a restart from scratch.

When the quorum holds only fresh groups (every group that held the trained state is gone), the
fresh groups are restarted to load the checkpoint if there is one; without one training starts
over (the ledger too), which is recorded as an event rather than done silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from elastrain_trainer.checkpoint import CheckpointChoice, CheckpointStore
from elastrain_trainer.driver.calls import EventSink, LoseGroup
from elastrain_trainer.driver.groups import GroupHandle
from elastrain_trainer.group import QuorumInfo

#: Why the driver drops fresh groups when the trained state is lost: to restart them from a checkpoint.
STATE_LOST_REASON = "state lost: restart from checkpoint"

Event = tuple[str, dict[str, Any]]
"""A driver event to record: its kind and data."""


@dataclass(frozen=True)
class Resume:
    """Where new groups start when no group is alive."""

    step: int
    """The driver's step from now on."""
    resume_step: int | None
    """The checkpoint step the groups load (and the driver's last checkpoint); None: from scratch."""
    ledger_state: dict[str, Any] | None
    """The checkpoint's shard ledger; None: a fresh ledger."""
    events: tuple[Event, ...]
    """To record, in order, before the driver takes on the new state."""
    compression_strength: float | int | bool | None = None
    """The dynamic compression strength saved with the checkpoint; None: start from the configured one."""


def decide_resume(choice: CheckpointChoice | None, *, step: int) -> Resume:
    """Resume from the newest readable checkpoint of ``choice`` (None: no store), or from the start.

    ``step`` is the driver's step before: a restart that loses steps is an event.
    """
    events: list[Event] = [
        ("checkpoint_skipped", {"checkpoint_step": skipped.step, "path": str(skipped.path), "reason": skipped.reason})
        for skipped in (choice.skipped if choice else ())
    ]
    record = choice.record if choice else None
    if record is None:
        if step:
            events.append(("restart_from_scratch", {"lost_step": step}))
        return Resume(step=0, resume_step=None, ledger_state=None, events=tuple(events))
    if step != record.step:
        events.append(("restored", {"from_step": step, "checkpoint_step": record.step}))
    return Resume(
        step=record.step,
        resume_step=record.step,
        ledger_state=record.ledger,
        events=tuple(events),
        compression_strength=record.compression_strength,
    )


def handle_state_lost(
    members: Mapping[str, QuorumInfo],
    *,
    step: int,
    store: CheckpointStore | None,
    groups: Mapping[str, GroupHandle],
    lose_group: LoseGroup,
    event: EventSink,
) -> int | None:
    """The quorum has only fresh groups: restart them to load the checkpoint, or start over.

    Returns the step to start over at (the driver then takes a fresh ledger and forgets its committed
    steps), or None when every group was lost so that new ones load the newest readable checkpoint.
    ``step`` is the driver's step, the one lost when starting over.
    """
    newest = max(info.step for info in members.values())
    event("state_lost", quorum_step=newest, groups=sorted(members))
    if store is not None and store.newest_readable() is not None:
        for group_id in list(groups):
            lose_group(group_id, reason=STATE_LOST_REASON)
        return None
    event("restart_from_scratch", lost_step=step)
    return newest
