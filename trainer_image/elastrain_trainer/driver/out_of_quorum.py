"""Worker pods still Running whose replica group the driver fenced: what kubectl's READY leaves out.

A group fenced by the step watchdog is restarted in the same pod, which stays Running (its process was
frozen, not gone); until the new group has trained a committed step the pod does not train. The driver
counts such pods here and reports them (``ProgressReport.groups_out``, with the reason ``WorkerHung``);
the operator subtracts them from ``status.workers.ready`` and records the drop in ``status.resizes``.

A group whose rank died is not counted: its pod may be going away with its node (a process killed
with its pod looks the same to the driver), and pod readiness already says that. A node that left the
Ray cluster is forgotten.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

#: The reason of a counted drop, as the operator's ``status.resizes`` spells it.
WORKER_HUNG = "WorkerHung"


@dataclass
class OutOfQuorum:
    """Per node (worker pod) whose group was fenced while the node stayed, the drop's reason."""

    nodes: dict[str, str] = field(default_factory=dict)

    def dropped(self, node_id: str, *, hung: bool) -> None:
        """A group of ``node_id`` was lost; only a hung one leaves its pod out of training but Running."""
        if hung:
            self.nodes[node_id] = WORKER_HUNG
        else:
            self.nodes.pop(node_id, None)

    def trained(self, node_ids: Iterable[str]) -> None:
        """These nodes' groups trained a committed step: back in the quorum."""
        for node_id in node_ids:
            self.nodes.pop(node_id, None)

    def keep(self, alive: Collection[str]) -> None:
        """Forget nodes that left the Ray cluster (their pods are gone or going)."""
        for node_id in [n for n in self.nodes if n not in alive]:
            del self.nodes[node_id]

    @property
    def count(self) -> int:
        return len(self.nodes)

    @property
    def last_reason(self) -> str | None:
        """The reason of the newest counted drop (None when none is counted)."""
        return next(reversed(self.nodes.values()), None)
