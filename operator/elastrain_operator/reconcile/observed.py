"""What the operator saw of a job's pods, as plain values (converted from API objects by the kube layer)."""

from __future__ import annotations

from dataclasses import dataclass

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
    unschedulable: str | None = None
    """The scheduler's message while the pod cannot be placed."""
    node: str | None = None

    @property
    def active(self) -> bool:
        """Counts as a live member of the job: not finished, not being deleted."""
        return not self.terminating and self.phase in ("Pending", "Running", "Unknown")


@dataclass(frozen=True)
class Observed:
    """A job's pods and whether its head Service exists."""

    pods: tuple[ObservedPod, ...] = ()
    service_exists: bool = False

    @property
    def head(self) -> ObservedPod | None:
        return next((p for p in self.pods if p.role is Role.HEAD), None)

    @property
    def workers(self) -> tuple[ObservedPod, ...]:
        return tuple(sorted((p for p in self.pods if p.role is Role.WORKER), key=lambda p: p.index))

    @property
    def ready_workers(self) -> int:
        return sum(1 for p in self.workers if p.active and p.phase == "Running" and p.ready)
