"""What a driver run is told (the TrainingJob's checkpoint and runtime sections) and what it hands back."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from elastrain_trainer.config import FaultToleranceConfig
from elastrain_trainer.driver.groups import GroupHandle
from elastrain_trainer.driver.lighthouse import LighthouseOptions
from elastrain_trainer.driver.watchdog import HangPolicy
from elastrain_trainer.group.worker import FaultTimeouts
from elastrain_trainer.ledger import Piece, ShardLedger
from elastrain_trainer.metrics import StepMetrics


@dataclass(frozen=True)
class ExitAfterReduce:
    """Fault injection: every rank of ``group_id`` exits right after step ``step``'s cross-group reduction.

    The survivors' update then holds the group's gradient while the group never reports the step.
    """

    group_id: str
    step: int


@dataclass(frozen=True)
class StopInStep:
    """Fault injection: every rank of ``group_id`` freezes itself (``SIGSTOP``) in step ``step``, before its forward.

    The other groups wait in the step's cross-group reduction: the step watchdog must fence the group.
    """

    group_id: str
    step: int


@dataclass(frozen=True)
class RaiseInStep:
    """Fault injection: every rank of a group on ``node_id`` (any node when None) raises in its steps.

    Steps listed in ``steps`` only (every step when None). The error is the one an embedding raises on
    an out-of-range token id, so the crash-loop limit and its message are tested on a real group.
    """

    node_id: str | None = None
    steps: frozenset[int] | None = None

    def applies(self, *, node_id: str, step: int) -> bool:
        return (self.node_id is None or self.node_id == node_id) and (self.steps is None or step in self.steps)


@dataclass(frozen=True)
class WorkerSeam:
    """Test-only seam: the class of every rank actor instead of RankWorker, with extra keyword arguments.

    The control-path benchmark runs :class:`~elastrain_trainer.group.null_worker.NullRankWorker` here.
    """

    cls: type[Any]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DriverOptions:
    """What the TrainingJob's checkpoint and runtime sections say (not part of TrainerConfig)."""

    checkpoint_dir: str | None = None
    checkpoint_interval: int = 0
    export_dir: str | None = None
    """Write the trained model as a Hugging Face model directory under this path at the end (None: no export)."""
    checkpoint_keep: int = 3
    async_checkpoint: bool = True
    checkpoint_max_failures: int = 0
    """Saves failing in a row before the driver stops with the cause (``spec.checkpoint.maxConsecutiveFailures``;
    0: never, training goes on and the failures are reported)."""
    checkpoint_space_check: bool = True
    """Check the room left before each save (tests and drills turn it off to make the write itself fail)."""
    lighthouse: LighthouseOptions = field(default_factory=LighthouseOptions)
    timeouts: FaultTimeouts = field(default_factory=FaultTimeouts)
    hang: HangPolicy = field(default_factory=HangPolicy)
    """The step watchdog: when a group whose step has not finished is hung (see :mod:`.watchdog`)."""
    step_timeout_seconds: float = 120.0
    max_attempts: int = 10000
    max_setup_errors: int = 6
    """Group set-ups that raise, with no step committed in between, before the driver stops (0: never)."""
    max_step_errors: int = 6
    """Step calls (quorum or train) that raise, with no step committed in between, before the driver stops
    (0: never). The head reads it from ``ELASTRAIN_MAX_STEP_ERRORS`` (set through ``spec.pod`` env)."""
    start_groups: int = 1
    """Groups that must be ready before the first step of a fresh start (e.g. elastic.minReplicas)."""
    group_delays: dict[str, float] = field(default_factory=dict)
    """Artificial per-step slowdown by node id (load-balance tests and benchmarks)."""
    step_delay: float = 0.0
    """Artificial per-step slowdown of every group (local mode: watch resizes on a fast model)."""
    exit_after_reduce: ExitAfterReduce | None = None
    """Fault-injection seam for tests and chaos drills: one group's ranks exit after one step's all-reduce."""
    raise_in_step: RaiseInStep | None = None
    """Fault-injection seam for tests and chaos drills: groups' ranks raise in their steps (a crash loop)."""
    stop_in_step: StopInStep | None = None
    """Fault-injection seam for tests and chaos drills: one group's ranks freeze in one step (a hang)."""
    quorum_ahead: bool = False
    """Pipelined control (experimental, off): every rank forms the next step's quorum right after its
    step, so a step with nothing changed is one call per group. A survivor's quorum was seen to hang
    when a replacement group joined, so it stays off until that is understood."""
    worker_seam: WorkerSeam | None = None
    """Test-only seam: rank actors of another class (the control-path benchmark's ranks that do nothing)."""

    def worker_kwargs(self) -> dict[str, Any]:
        """What every rank worker of every group is told: checkpointing and fault timeouts."""
        return {
            "checkpoint_dir": self.checkpoint_dir,
            "checkpoint_keep": self.checkpoint_keep,
            "async_checkpoint": self.async_checkpoint,
            "checkpoint_space_check": self.checkpoint_space_check,
            "timeouts": self.timeouts,
            **(self.worker_seam.kwargs if self.worker_seam is not None else {}),
        }


def apply_fault_tolerance(options: DriverOptions, spec: FaultToleranceConfig) -> DriverOptions:
    """``options`` with the step watchdog and every timeout ``spec.faultTolerance`` sets."""
    return replace(
        options,
        hang=replace(
            options.hang,
            factor=spec.hang_factor,
            floor_seconds=spec.hang_floor_seconds,
            startup_seconds=spec.hang_startup_seconds,
        ),
        timeouts=replace(
            options.timeouts,
            collective_seconds=spec.collective_timeout_seconds,
            quorum_seconds=spec.quorum_timeout_seconds,
        ),
        lighthouse=replace(options.lighthouse, heartbeat_timeout_ms=round(spec.heartbeat_timeout_seconds * 1000)),
        step_timeout_seconds=spec.step_timeout_seconds,
    )


@dataclass
class RunResult:
    metrics: list[StepMetrics]
    ledger: ShardLedger
    step: int
    events: list[dict[str, Any]]
    groups: dict[str, GroupHandle]
    committed: list[dict[str, list[Piece]]]
    """Per committed step (in order), the pieces each group trained."""
    export_path: str | None = None
    """The exported model directory (``<export_dir>/final``); None without export_dir or if it failed."""
