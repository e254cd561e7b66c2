"""What the operator saw of a job's pods, as plain values (converted from API objects by the kube layer)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from elastrain_operator.api import Role


@dataclass(frozen=True)
class ObservedPod:
    """One pod of a job, reduced to what decisions need."""

    name: str
    role: Role
    index: int
    phase: str
    """Pending, Running, Succeeded, Failed or Unknown."""
    ready: bool = False
    terminating: bool = False
    exit_code: int | None = None
    """Exit code of the trainer container once it terminated."""
    reason: str | None = None
    """status.reason of the pod (e.g. Evicted) or of its container's termination (e.g. OOMKilled)."""
    message: str | None = None
    """Why the trainer container stopped, in its own words (its termination message, or the log's tail)."""
    unschedulable: str | None = None
    """The scheduler's message while the pod cannot be placed."""
    node: str | None = None
    attempt: int = 0
    """How many pods held this role and index before this one."""
    node_lost: str | None = None
    """Why the pod's node is gone ("node N NotReady", "node N deleted"); None while it is healthy."""
    lost_since: datetime | None = None
    """When the node stopped being Ready (unknown for a deleted node)."""
    ip: str | None = None
    """status.podIP once the pod runs (the head's serves the driver's progress)."""

    @property
    def lost(self) -> bool:
        """Alive as far as the API knows, but its node is NotReady or gone: its processes are lost."""
        return self.active and self.node_lost is not None

    @property
    def active(self) -> bool:
        """Counts as a live member of the job: not finished, not being deleted."""
        return not self.terminating and self.phase in ("Pending", "Running", "Unknown")


@dataclass(frozen=True)
class Observed:
    """A job's pods and whether its head Service and NetworkPolicy exist."""

    pods: tuple[ObservedPod, ...] = ()
    service_exists: bool = False
    network_policy_exists: bool = False

    @property
    def head(self) -> ObservedPod | None:
        """The current head pod: the live one if any, else the newest."""
        heads = sorted((p for p in self.pods if p.role is Role.HEAD), key=lambda p: (p.active, p.attempt))
        return heads[-1] if heads else None

    def head_live(self, doomed: Collection[str] = ()) -> ObservedPod | None:
        """The head pod that is alive, on a healthy node and not being deleted this round."""
        return next(
            (p for p in self.pods if p.role is Role.HEAD and p.active and not p.lost and p.name not in doomed), None
        )

    @property
    def workers(self) -> tuple[ObservedPod, ...]:
        return tuple(sorted((p for p in self.pods if p.role is Role.WORKER), key=lambda p: p.index))

    @property
    def ready_workers(self) -> int:
        return sum(1 for p in self.workers if p.active and not p.lost and p.phase == "Running" and p.ready)

    def next_attempt(self, role: Role, index: int) -> int:
        """The attempt number of a new pod for ``role``/``index``: one past every pod seen for it."""
        seen = [p.attempt for p in self.pods if p.role is role and p.index == index]
        return max(seen) + 1 if seen else 0
