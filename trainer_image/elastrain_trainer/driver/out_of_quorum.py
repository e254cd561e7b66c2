"""Worker pods still Running whose replica group the driver dropped: what kubectl's READY leaves out.

A group fenced by the step watchdog, or whose rank crashed, is restarted in the same pod; until the new
group has trained a committed step the pod is Running but not training. The driver counts such pods here
and reports them (``ProgressReport.groups_out``, with the newest drop's reason); the operator subtracts
them from ``status.workers.ready`` and records the drop in ``status.resizes`` (``WorkerHung`` or
``WorkerLost``). A group lost with its node is not counted: its pod is gone, and pod readiness says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

#: Reasons of a drop, as the operator's ``status.resizes`` spells them.
WORKER_HUNG = "WorkerHung"
WORKER_LOST = "WorkerLost"


@dataclass
class OutOfQuorum:
    """Per node (worker pod) whose group was dropped while the node stayed, the drop's reason."""

    nodes: dict[str, str] = field(default_factory=dict)
    last_reason: str | None = None
    """Why the newest drop still counted happened (None when none is)."""

    def dropped(self, node_id: str, *, hung: bool, node_gone: bool) -> None:
        if node_gone:
            self.nodes.pop(node_id, None)
        else:
            self.nodes[node_id] = self.last_reason = WORKER_HUNG if hung else WORKER_LOST
        if not self.nodes:
            self.last_reason = None

    def trained(self, node_ids: Iterable[str]) -> None:
        """These nodes' groups trained a committed step: back in the quorum."""
        for node_id in node_ids:
            self.nodes.pop(node_id, None)
        if not self.nodes:
            self.last_reason = None

    @property
    def count(self) -> int:
        return len(self.nodes)
